"""Shared fixtures: generated mini datasets (see fixtures_audio.py for the generators).

The session-scoped directories are shared by many tests: treat them as read-only and call
the ``make_*`` functions into ``tmp_path`` for a copy you modify.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fixtures_audio import make_esc50, make_urbansound8k


@pytest.fixture(scope="session")
def urbansound8k_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mini UrbanSound8K (folds 1-3, 6 clips each, 3 classes, mixed formats); read-only."""
    return make_urbansound8k(tmp_path_factory.mktemp("us8k"))


@pytest.fixture(scope="session")
def esc50_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Mini ESC-50 (5 folds, 4 clips each, dog/rooster/rain/pig, mixed formats); read-only."""
    return make_esc50(tmp_path_factory.mktemp("esc50"))


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real data of ../shared/data named by FEATUREKIT_TEST_DATA; skips when unset."""
    value = os.environ.get("FEATUREKIT_TEST_DATA")
    if not value or not Path(value).is_dir():
        pytest.skip(reason="real-data test: set FEATUREKIT_TEST_DATA to the shared data directory")
    return Path(value)
