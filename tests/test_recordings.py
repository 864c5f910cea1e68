"""Source recordings: adapters name them, and inner splits keep their clips together."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_audio import make_folder_dataset

from featurekit import pipeline
from featurekit.benchmark import BenchmarkConfig, driver, run
from featurekit.benchmark.data import prepare_data
from featurekit.cli import main
from featurekit.datasets import DatasetWarning, assign_folds, load_dataset
from featurekit.errors import DatasetError
from featurekit.learn.splits import inner_splits
from featurekit.model.train import train as train_model


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


# --- the recording column of csv and folder datasets -------------------------------------------

def _takes(label: str, k: int) -> str:
    """The source recording of clip ``k`` of ``label`` in these tests: two clips a take."""
    return f"{label}_take{k // 2}"


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_and_folds_csv_name_each_clips_recording(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "data", clips_per_class=4)
    rows = [f"{label}/clip_{k:02d}.wav,{label},{k // 2 + 1},{_takes(label, k)}"
            for label in ("high", "low") for k in range(4)]
    listed = _write_csv(tmp_path / "list.csv", "path,label,fold,recording",
                        [f"data/{row}" for row in rows])
    expected = {f"{label}/clip_{k:02d}": _takes(label, k)
                for label in ("high", "low") for k in range(4)}
    clips = load_dataset("csv", listed).clips
    assert dict(zip(clips["clip_id"].str.removeprefix("data/"), clips["recording"])) == expected
    _write_csv(root / "folds.csv", "path,fold,recording",
               [row.split(",", 2)[0] + "," + row.split(",", 2)[2] for row in rows])
    clips = load_dataset("folder", root).clips
    assert dict(zip(clips["clip_id"], clips["recording"])) == expected
    # without the column every clip stays its own recording, as before
    (root / "folds.csv").write_text("path,fold\n" + "\n".join(
        f"{label}/clip_{k:02d}.wav,{k // 2 + 1}" for label in ("high", "low") for k in range(4)))
    clips = load_dataset("folder", root).clips
    assert (clips["recording"] == clips["clip_id"]).all()


@pytest.mark.parametrize("adapter", ["csv", "folder"])
def test_a_recording_in_two_folds_is_refused_naming_it(tmp_path: Path, adapter: str,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    """In the CSV of a csv dataset, or the folds.csv of a folder dataset."""
    root = make_folder_dataset(tmp_path / "data", clips_per_class=4)
    # clip 1 of each label leaves its take's fold: take0 of both labels is split
    folds = {0: 1, 1: 2, 2: 2, 3: 2}
    if adapter == "csv":
        data_dir = _write_csv(root / "list.csv", "path,label,fold,recording", [
            f"{label}/clip_{k:02d}.wav,{label},{folds[k]},{_takes(label, k)}"
            for label in ("high", "low") for k in range(4)])
    else:
        data_dir = root
        _write_csv(root / "folds.csv", "path,fold,recording", [
            f"{label}/clip_{k:02d}.wav,{folds[k]},{_takes(label, k)}"
            for label in ("high", "low") for k in range(4)])
    message = (r"recording\(s\) in more than one fold: high_take0 \(folds 1, 2\), "
               r"low_take0 \(folds 1, 2\);")
    with pytest.raises(DatasetError, match=message):
        load_dataset(adapter, data_dir)
    store = tmp_path / "store"
    assert main(["extract", "--dataset", adapter, "--data-dir", str(data_dir),
                 "--store", str(store)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and re.search(message, error)
    assert not store.exists()


def test_blank_recordings_and_a_folds_csv_without_either_column_are_refused(
        tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "data", clips_per_class=1)
    _write_csv(root / "list.csv", "path,label,recording",
               ["high/clip_00.wav,high,take0", "low/clip_00.wav,low, "])
    with pytest.raises(DatasetError, match=r"empty recording on line\(s\) 3; name the source "):
        load_dataset("csv", root / "list.csv")
    (root / "list.csv").unlink()
    _write_csv(root / "folds.csv", "path,take", ["high/clip_00.wav,0", "low/clip_00.wav,0"])
    with pytest.raises(DatasetError, match="needs a fold or a recording column beside path"):
        load_dataset("folder", root)


def test_assigned_folds_keep_each_recording_whole(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "data", clips_per_class=10, duration=0.05)
    _write_csv(root / "list.csv", "path,label,recording", [
        f"{label}/clip_{k:02d}.wav,{label},{_takes(label, k)}"
        for label in ("high", "low") for k in range(10)])
    with pytest.warns(DatasetWarning, match="assigned 5 folds by recording, each recording "
                                            "whole, stratified by label"):
        clips = load_dataset("csv", root / "list.csv").clips
    assert (clips.groupby("recording")["fold"].nunique() == 1).all()
    assert (clips.groupby(["label", "fold"]).size() == 2).all()  # 5 takes a label, 1 a fold
    (root / "list.csv").unlink()
    _write_csv(root / "folds.csv", "path,recording", [
        f"{label}/clip_{k:02d}.wav,{_takes(label, k)}"
        for label in ("high", "low") for k in range(10)])
    with pytest.warns(DatasetWarning, match="each recording whole"):
        folder = load_dataset("folder", root).clips
    assert dict(zip(folder["clip_id"], folder["fold"])) == dict(zip(clips["clip_id"],
                                                                    clips["fold"]))


def test_assign_folds_deals_whole_groups_balanced_within_each_label() -> None:
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 6, 60)
    groups = np.repeat([f"rec{i:02d}" for i in range(60)], sizes)
    labels = np.repeat(rng.choice(["a", "b", "c"], 60), sizes)
    keys = [f"clip{i:03d}" for i in range(groups.size)]
    folds = assign_folds(keys, labels, n_folds=5, groups=groups)
    frame = pd.DataFrame({"group": groups, "label": labels, "fold": folds})
    assert (frame.groupby("group")["fold"].nunique() == 1).all()
    per_label = frame.groupby(["label", "fold"]).size().unstack(fill_value=0)
    assert per_label.shape == (3, 5)
    # largest groups first, each to the emptiest fold: shares differ by at most the largest
    assert ((per_label.max(axis=1) - per_label.min(axis=1)) <= sizes.max()).all()
    order = rng.permutation(groups.size)
    again = assign_folds([keys[i] for i in order], labels[order], n_folds=5,
                         groups=groups[order])
    assert dict(zip(np.asarray(keys)[order], again)) == dict(zip(keys, folds))


def test_benchmark_and_train_read_the_csv_recordings(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The recordings reach the features table that inner splits and intervals group by
    (store filling and reading replaced: only what is passed to the read is looked at)."""
    root = make_folder_dataset(tmp_path / "data", clips_per_class=4, duration=0.05)
    listed = _write_csv(root / "list.csv", "path,label,fold,recording", [
        f"{label}/clip_{k:02d}.wav,{label},{k // 2 + 1},{_takes(label, k)}"
        for label in ("high", "low") for k in range(4)])
    seen = []

    class Read(Exception):
        """Stops the run once the read is asked for."""

    def read_features(store, dataset, *, clips=None, **kwargs):
        seen.append(dict(zip(clips["clip_id"], clips["recording"], strict=True)))
        raise Read

    for module in (driver, pipeline):
        monkeypatch.setattr(module, "fill_store", lambda *args, **kwargs: [])
        monkeypatch.setattr(module, "read_features", read_features)
    with pytest.raises(Read):
        run("csv", listed, tmp_path / "store", model=None)
    with pytest.raises(Read):
        train_model("csv", listed, tmp_path / "store", model=None, system="timbre/logreg")
    expected = {f"{label}/clip_{k:02d}": _takes(label, k)
                for label in ("high", "low") for k in range(4)}
    assert seen == [expected, expected]
