"""The harness's modules (``report``, ``peers``, ...) live in ``bench/``, which is no package:
put it on ``sys.path`` so the tests import them as ``run.py`` does."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = str(Path(__file__).resolve().parent.parent)
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
