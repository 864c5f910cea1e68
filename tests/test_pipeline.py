"""pipeline.read_features: the dataset as loaded now, not the store, says each clip's fold,
label and recording."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from test_store import FakeBranch, make_dataset, run

from featurekit.datasets.base import DatasetWarning
from featurekit.pipeline import read_features
from featurekit.store.reader import FeatureStore


def test_folds_and_labels_come_from_the_dataset_not_the_store(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 6)
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(), dataset, store)
    # The user mends the split (clip002 moves to fold 2, clip003 gets another label), drops a
    # clip, and names recordings; the store still holds the keys of the first load.
    clips = dataset.clips[dataset.clips["clip_id"] != "clip005"].copy()
    clips.loc[clips["clip_id"] == "clip002", "fold"] = 2
    clips.loc[clips["clip_id"] == "clip003", ["label", "label_id"]] = ["class2", 2]
    clips["recording"] = ["r0", "r0", "r1", "r1", "r2"]
    with pytest.warns(DatasetWarning) as caught:
        table, _ = read_features(store, "mini", branches=["fake"], clips=clips)
    messages = " ".join(str(w.message) for w in caught)
    assert "1 stored clip(s) are no longer in the dataset" in messages
    assert "2 clip(s) have another fold or label" in messages
    by_clip = table.set_index("clip_id")
    assert sorted(by_clip.index) == sorted(clips["clip_id"])
    assert by_clip.loc["clip002", "fold"] == 2
    assert by_clip.loc["clip003", "label"] == "class2" and by_clip.loc["clip003", "label_id"] == 2
    assert by_clip["recording"].to_dict() == dict(zip(clips["clip_id"], clips["recording"],
                                                      strict=True))


def test_an_unchanged_dataset_reads_without_warnings(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 4)
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(), dataset, store)
    clips = dataset.clips.assign(recording=dataset.clips["clip_id"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table, _ = read_features(store, "mini", branches=["fake"], clips=clips)
    assert table[["clip_id", "fold", "label"]].sort_values("clip_id").to_numpy().tolist() == \
        clips[["clip_id", "fold", "label"]].sort_values("clip_id").to_numpy().tolist()
