"""``python -m taskkit``: the ``taskkit`` command (see :mod:`taskkit.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
