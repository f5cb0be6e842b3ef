"""Rebalancing tests share helper modules (``rebalancing_*.py``) from this folder."""

import sys
from pathlib import Path

HERE = str(Path(__file__).parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
