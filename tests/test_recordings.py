"""Source recordings: adapters name them, and inner splits keep their clips together."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark.data import prepare_data
from featurekit.datasets import load_dataset
from featurekit.learn.splits import inner_splits


def test_official_adapters_name_the_source_recording(urbansound8k_dir, esc50_dir):
    with pytest.warns(UserWarning):
        clips = load_dataset("urbansound8k", urbansound8k_dir).clips
    assert (clips["recording"] == clips["fsID"].astype(str)).all()
    with pytest.warns(UserWarning):
        esc = load_dataset("esc50", esc50_dir).clips
    assert (esc["recording"] == esc["src_file"].astype(str)).all()


def test_inner_splits_never_divide_a_recording():
    rng = np.random.default_rng(0)
    recordings = np.repeat([f"rec{i}" for i in range(30)], 4)
    y = np.repeat(rng.integers(0, 3, 30), 4)
    data = pd.DataFrame({"clip_id": [f"c{i:03d}" for i in range(120)], "fold": 1,
                         "label_id": y, "recording": recordings, "pitch.d0.mean": 0.0})
    groups = prepare_data(data, BenchmarkConfig()).groups
    for train, test in inner_splits(y, groups, n_splits=3, random_state=0):
        assert not set(recordings[train]) & set(recordings[test])


def test_inner_groups_fall_back_to_folds():
    data = pd.DataFrame({"clip_id": ["a", "b"], "fold": [3, 5], "label_id": [0, 1],
                         "pitch.d0.mean": 0.0})
    prepared = prepare_data(data, BenchmarkConfig())
    assert prepared.groups.tolist() == [3, 5] and not prepared.recordings_known
