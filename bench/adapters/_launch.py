"""Entry point for every adapter: ``python _launch.py <module> '<json spec>'``.

The adapter is imported as a module (never run as ``__main__``), so the task functions it
defines have a stable importable name that worker processes, forked or spawned, resolve the
same way the producer does.
"""

from __future__ import annotations

import importlib
import os
import sys

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from _common import serve

    module = importlib.import_module(sys.argv[1])
    sys.exit(serve(module.ADAPTER, sys.argv[1:]))
