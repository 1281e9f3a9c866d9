"""Command-line tools run from the repository (`python -m scripts.<tool>`).

The casebridge package lives in the layer directory (layers/common), as Lambda loads it from /opt/python; the
tools put it on the path the way the runtime does, so `python -m scripts.redrive` works from a clone.
"""

from __future__ import annotations

import sys
from pathlib import Path

_LAYER_PATH = str(Path(__file__).resolve().parents[1] / "layers" / "common")
if _LAYER_PATH not in sys.path:
    sys.path.append(_LAYER_PATH)
