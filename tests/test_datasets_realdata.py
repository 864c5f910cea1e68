"""Adapters on the real subsets in ../shared/data (skipped unless FEATUREKIT_TEST_DATA is set)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from featurekit.datasets import DatasetWarning, load_dataset, verify_dataset

pytestmark = pytest.mark.realdata


def test_urbansound8k_subset(shared_data_dir: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = load_dataset("urbansound8k", shared_data_dir / "urbansound8k-subset")
    messages = [str(w.message) for w in caught if issubclass(w.category, DatasetWarning)]
    assert len(dataset.clips) == 1761 and dataset.folds == [1, 2]
    assert dataset.clips.groupby("fold").size().to_dict() == {1: 873, 2: 888}
    assert dataset.clips["path"].str.endswith(".flac").all()
    assert len(messages) == 1 and "1761 of 8732 clips, folds [1, 2]" in messages[0]


def test_esc10(shared_data_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DatasetWarning)  # a complete ESC-10: no warning
        dataset = load_dataset("esc10", shared_data_dir / "esc10")
    assert len(dataset.clips) == 400 and dataset.folds == [1, 2, 3, 4, 5]
    assert sorted(dataset.clips["label_id"].unique()) == list(range(10))
    assert dataset.clips["path"].str.endswith(".ogg").all()
    assert verify_dataset("esc10", shared_data_dir / "esc10").ok
