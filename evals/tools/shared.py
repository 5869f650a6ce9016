"""Where the tools find the project's shared data (``../shared``: data sets and corpora, kept beside the clone).

The one place the bench and calibration tools (and the tests) take that folder from: ``CITEQA_SHARED_DIR`` when
it is set, otherwise ``shared`` beside the repository.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DIR_ENV = "CITEQA_SHARED_DIR"


def shared_dir() -> Path:
    """``$CITEQA_SHARED_DIR``, or ``<repo>/../shared`` when that is unset or empty."""
    value = os.environ.get(SHARED_DIR_ENV, "").strip()
    return Path(value).expanduser() if value else REPO.parent / "shared"


def datasets_dir() -> Path:
    """The shared data sets (``hotpotqa-100``, ``squad-v2-small``, ...)."""
    return shared_dir() / "datasets"
