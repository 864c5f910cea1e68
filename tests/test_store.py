"""FeatureStore: layout, reads (pandas, arrays, other Parquet readers), metadata, lock.

Stores are filled by :func:`featurekit.computers.runner.run_branch` with :class:`FakeBranch`, a
small
deterministic BranchComputer defined here (also used by ``test_runner.py``), so these tests do
not depend on the handcrafted extractor.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from featurekit.computers.base import BranchComputer
from featurekit.computers.runner import run_branch
from featurekit.errors import AudioError, StoreError
from featurekit.io.audio import load_audio_with_info
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipFailure, ClipResult

FAKE_RATE = 8000


class FakeBranch:
    """Deterministic stand-in for a feature computer.

    Values are a hash of the decoded waveform (so any change in the audio changes them) and
    of ``salt`` (the "configuration"). Silent clips raise, like a computer that rejects them;
    corrupt, empty, NaN and missing files raise in the real loader. ``delay_s`` slows each
    clip down so a test can interrupt a run.
    """

    process_parallel = True

    def __init__(self, *, salt: str = "a", branch: str = "fake", n_features: int = 5,
                 delay_s: float = 0.0, stem: str | None = None) -> None:
        self.salt = salt
        self.branch = branch
        self.stem = stem or branch
        self.n_features = n_features
        self.delay_s = delay_s

    @property
    def feature_names(self) -> list[str]:
        families = ("pitch", "timbre")
        return [f"{families[i % 2]}.{self.stem}_{i:02d}.mean" for i in range(self.n_features)]

    def config_hash(self) -> str:
        return hashlib.sha256(f"{self.salt}/{self.n_features}".encode()).hexdigest()[:16]

    def provenance(self) -> dict:
        return {"config": {"salt": self.salt, "n_features": self.n_features},
                "config_hash": self.config_hash(), "versions": {"fake": "1"},
                "untrained": self.salt == "untrained"}

    def compute_one(self, path: str, *, frames: bool = False) -> ClipResult:
        y, info = load_audio_with_info(path, sr=FAKE_RATE)
        if not np.any(y):
            raise AudioError(f"{path}: silent clip")
        digest = hashlib.sha256(self.salt.encode() + y.tobytes()).digest()
        values = np.frombuffer(digest, dtype=np.uint16)[:self.n_features] / 65535.0
        frame_table = None
        if frames:
            hop = 400
            energy = [float(np.sqrt(np.mean(y[i:i + hop] ** 2))) for i in range(0, y.size, hop)]
            frame_table = pd.DataFrame({"time_s": np.arange(len(energy)) * hop / FAKE_RATE,
                                        "rms": np.asarray(energy, dtype=np.float32)})
        return ClipResult(values.astype(np.float32), info.notes, frame_table)

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        outcomes: list[ClipResult | BaseException] = []
        for path in paths:
            time.sleep(self.delay_s)
            try:
                outcomes.append(self.compute_one(path, frames=frames))
            except AudioError as exc:
                outcomes.append(exc)
        return outcomes


def write_tone(path: Path, index: int, *, sr: int = FAKE_RATE, seconds: float = 0.25) -> Path:
    """A short sine whose frequency depends on ``index``."""
    t = np.arange(int(sr * seconds)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * (200 + 37 * index) * t), sr, subtype="PCM_16")
    return path


def make_dataset(root: Path, n_clips: int = 12, *, n_folds: int = 2, name: str = "mini",
                 bad: Sequence[str] = ()) -> SimpleNamespace:
    """A dataset object like ``load_dataset``'s: tones (every third at 16 kHz, so the loader
    resamples and leaves a note) plus the requested bad files:
    ``corrupt``, ``empty``, ``silent``, ``nan``, ``missing``."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(n_clips):
        path = write_tone(root / f"clip{index:03d}.wav", index,
                          sr=16000 if index % 3 == 0 else FAKE_RATE)
        rows.append((path.stem, str(path), f"class{index % 3}", index % 3,
                     1 + index % n_folds))
    for kind in bad:
        path = root / f"bad_{kind}.wav"
        if kind == "corrupt":
            path.write_bytes(b"RIFF\x00\x00garbage" + bytes(range(200)))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "silent":
            sf.write(path, np.zeros(2000), FAKE_RATE)
        elif kind == "nan":
            signal = np.full(2000, 0.1)
            signal[100] = np.nan
            sf.write(path, signal, FAKE_RATE, subtype="FLOAT")
        elif kind != "missing":
            raise ValueError(kind)
        rows.append((path.stem, str(path), "class0", 0, 1))
    clips = pd.DataFrame(rows, columns=["clip_id", "path", "label", "label_id", "fold"])
    return SimpleNamespace(name=name, clips=clips)


def run(computer: FakeBranch, dataset: SimpleNamespace, store: FeatureStore | Path, **kwargs):
    return run_branch(computer, dataset, store, progress=False, **kwargs)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[FeatureStore, SimpleNamespace]:
    dataset = make_dataset(tmp_path / "audio", 12)
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(), dataset, store, batch_size=5, frames=True)
    return store, dataset


def test_fake_branch_is_a_branch_computer() -> None:
    assert isinstance(FakeBranch(), BranchComputer)


def test_round_trip_matches_direct_computation(filled) -> None:
    store, dataset = filled
    frame = store.read("mini", branches="fake")
    computer = FakeBranch()
    assert list(frame.columns) == ["clip_id", "fold", "label", "label_id",
                                   *computer.feature_names]
    assert frame["clip_id"].tolist() == sorted(dataset.clips["clip_id"])
    assert all(frame[name].dtype == np.float32 for name in computer.feature_names)
    expected = dataset.clips.set_index("clip_id").loc[frame["clip_id"]]
    assert frame["fold"].tolist() == expected["fold"].tolist()
    assert frame["label"].tolist() == expected["label"].tolist()
    assert frame["label_id"].tolist() == expected["label_id"].tolist()
    direct = np.stack([computer.compute_one(path).values for path in expected["path"]])
    np.testing.assert_array_equal(frame[computer.feature_names].to_numpy(), direct)


def test_layout_parts_and_companions(filled) -> None:
    store, _ = filled
    directory = store.branch_dir("mini", "fake")
    parts = sorted(path.name for path in directory.glob("part-*.parquet"))
    assert parts == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert sorted(path.name for path in (directory / "_frames").iterdir()) == parts
    # only batches with a resampled clip have notes
    assert set(path.name for path in (directory / "_notes").iterdir()) <= set(parts)
    assert not (directory / "_errors.parquet").exists()
    assert store.datasets() == ["mini"]
    assert store.branches("mini") == ["fake"]


def test_metadata_and_provenance(filled) -> None:
    store, _ = filled
    import featurekit

    part = store.parts("mini", "fake")[0]
    stored = json.loads(pq.read_schema(part).metadata[b"featurekit"])
    assert stored["featurekit_version"] == featurekit.__version__
    assert stored["dataset"] == "mini"
    assert stored["branch"] == "fake"
    assert stored["frames"] is True
    assert store.provenance("mini", "fake") == FakeBranch().provenance()


def test_folds_columns_and_patterns(filled) -> None:
    store, _ = filled
    names = FakeBranch().feature_names
    fold2 = store.read("mini", "fake", folds=[2])
    assert set(fold2["fold"]) == {2} and len(fold2) == 6
    exact = store.read("mini", "fake", columns=[names[3], names[0]])
    assert list(exact.columns)[4:] == [names[3], names[0]]
    pitch = store.read("mini", "fake", columns="pitch.*")
    assert list(pitch.columns)[4:] == [name for name in names if name.startswith("pitch.")]
    with pytest.raises(StoreError, match="did you mean"):
        store.read("mini", "fake", columns=["pitch.fake_00.mea"])
    with pytest.raises(StoreError, match=r"no feature column matches 'spectral\.\*'"):
        store.read("mini", "fake", columns="spectral.*")


def test_read_arrays(filled) -> None:
    store, _ = filled
    X, y, folds, names = store.read_arrays("mini", "fake", folds=[1])
    frame = store.read("mini", "fake", folds=[1])
    assert X.dtype == np.float32 and X.shape == (6, 5)
    assert names == FakeBranch().feature_names
    np.testing.assert_array_equal(X, frame[names].to_numpy())
    np.testing.assert_array_equal(y, frame["label_id"].to_numpy())
    assert set(folds) == {1}


def test_several_branches_inner_join(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 8)
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(), dataset, store)
    partial = SimpleNamespace(name="mini", clips=dataset.clips.iloc[2:])
    other = FakeBranch(branch="other", salt="b", n_features=3)
    run(other, partial, store)
    joined = store.read("mini", ["fake", "other"])
    assert joined["clip_id"].tolist() == sorted(partial.clips["clip_id"])
    assert list(joined.columns)[4:] == FakeBranch().feature_names + other.feature_names
    only_pitch = store.read("mini", ["fake", "other"], columns="pitch.*")
    assert all(name.startswith("pitch.") for name in list(only_pitch.columns)[4:])
    assert {"pitch.other_00.mean", "pitch.fake_00.mean"} <= set(only_pitch.columns)
    run(FakeBranch(branch="twin", stem="fake", salt="b"), dataset, store)
    with pytest.raises(StoreError, match="in both branches"):
        store.read("mini", ["fake", "twin"])


def test_missing_dataset_or_branch_is_named(filled) -> None:
    store, _ = filled
    with pytest.raises(StoreError, match=r"no dataset 'esc50'.*datasets: mini"):
        store.read("esc50")
    with pytest.raises(StoreError, match=r"no branch 'handcrafted'.*branches: fake"):
        store.read("mini")
    with pytest.raises(StoreError, match="invalid dataset name"):
        store.read("../mini", "fake")


@pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside dask, pandas 3.1
def test_other_readers_see_the_same_rows(filled) -> None:
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    import dask.dataframe as dd
    import pyarrow.dataset as pads

    store, _ = filled
    reference = store.read("mini", "fake")
    directory = store.branch_dir("mini", "fake")
    glob = str(directory / "part-*.parquet")
    names = FakeBranch().feature_names

    def same(frame: pd.DataFrame) -> None:
        frame = frame.sort_values("clip_id").reset_index(drop=True)
        assert frame["clip_id"].tolist() == reference["clip_id"].tolist()
        np.testing.assert_array_equal(frame[names].to_numpy(np.float32),
                                      reference[names].to_numpy())

    same(pd.read_parquet(directory))  # _frames, _notes, _errors are skipped by name
    same(pads.dataset(directory, format="parquet").to_table().to_pandas())
    same(duckdb.sql(f"SELECT * FROM read_parquet('{glob}')").df())
    same(polars.read_parquet(glob).to_pandas())
    same(dd.read_parquet(glob).compute())


def test_notes_and_frames(filled) -> None:
    store, dataset = filled
    notes = store.notes("mini", "fake")
    resampled = sorted(dataset.clips["clip_id"][::3])
    assert sorted(set(notes["clip_id"])) == resampled
    assert notes["note"].str.contains("resampled").all()
    frames = store.frames("mini", "fake", clip_ids=["clip001", "clip004"])
    assert set(frames["clip_id"]) == {"clip001", "clip004"}
    direct = FakeBranch().compute_one(str(dataset.clips["path"][1]), frames=True).frames
    np.testing.assert_array_equal(frames.loc[frames["clip_id"] == "clip001", "rms"], direct["rms"])
    assert list(frames.columns) == ["clip_id", "time_s", "rms"]


def test_frames_of_a_branch_without_frames_is_an_error(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(), make_dataset(tmp_path / "audio", 3), store)
    with pytest.raises(StoreError, match="without frame-level descriptors"):
        store.frames("mini", "fake")


def test_info_and_cli(filled, capsys) -> None:
    from featurekit.cli import main

    store, dataset = filled
    run(FakeBranch(salt="untrained", branch="raw"),
        make_dataset(dataset.clips["path"].map(Path).iloc[0].parent, 3, bad=["corrupt"]),
        store)
    info = store.info()
    assert info.to_dict(orient="records") == [
        {"dataset": "mini", "branch": "fake", "rows": 12, "features": 5, "folds": "1,2",
         "config_hash": FakeBranch().config_hash()[:12], "failures": 0, "frames": True,
         "untrained": False},
        {"dataset": "mini", "branch": "raw", "rows": 3, "features": 5, "folds": "1,2",
         "config_hash": FakeBranch(salt="untrained").config_hash()[:12], "failures": 1,
         "frames": False, "untrained": True},
    ]
    assert main(["store", "info", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "fake" in out and "raw" in out and "untrained" in out
    assert main(["store", "info", str(store.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[1]["failures"] == 1
    assert main(["store", "info", str(store.path / "nowhere")]) == 2


def test_lock_refuses_a_second_writer(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    computer = FakeBranch()
    dataset = make_dataset(tmp_path / "audio", 2)
    options = {"feature_names": computer.feature_names, "provenance": computer.provenance()}
    with store.writer("mini", "fake", **options):
        with pytest.raises(StoreError, match=f"another run \\(pid {os.getpid()}\\)"):
            run(computer, dataset, store)
        with store.writer("mini", "other", **options):  # other branches are independent
            pass
    assert run(computer, dataset, store).done == 2  # released on exit


def test_writer_clears_leftovers_of_a_killed_run(filled) -> None:
    store, _ = filled
    directory = store.branch_dir("mini", "fake")
    orphan = directory / "_frames" / "part-00007.parquet"
    orphan.write_bytes((directory / "_frames" / "part-00000.parquet").read_bytes())
    temporary = directory / ".part-00003.parquet.abc.parquet.tmp"
    temporary.write_bytes(b"half a part")
    before = store.frames("mini", "fake")
    assert len(before) == len(store.frames("mini", "fake"))  # readers ignore the orphan
    computer = FakeBranch()
    with store.writer("mini", "fake", feature_names=computer.feature_names,
                      provenance=computer.provenance(), frames=True) as writer:
        assert len(writer.done) == 12
    assert not orphan.exists() and not temporary.exists()
    pd.testing.assert_frame_equal(store.frames("mini", "fake"), before)


def test_writer_rejects_malformed_results(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    computer = FakeBranch()
    clips = make_dataset(tmp_path / "audio", 3).clips
    with store.writer("mini", "fake", feature_names=computer.feature_names,
                      provenance=computer.provenance()) as writer:
        stored, failures = writer.write_batch(clips, [
            ClipResult(np.zeros(5, np.float32)),
            ClipResult(np.zeros(4, np.float32)),
            ClipFailure("AudioError", "broken"),
        ])
    assert stored == 1
    assert [(clip, kind) for clip, kind, _ in failures] == [("clip001", "ValueError"),
                                                            ("clip002", "AudioError")]
    assert store.errors("mini", "fake")["clip_id"].tolist() == ["clip001", "clip002"]
    with pytest.raises(StoreError, match="outside its 'with' block"):
        writer.write_batch(clips, [])


def test_overwrite_with_the_same_configuration_resumes(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 6)
    store = FeatureStore(tmp_path / "store")
    first = run_branch(FakeBranch(), dataset, store, batch_size=2, progress=False)
    parts = sorted(p.name for p in store.parts("mini", "fake"))
    again = run_branch(FakeBranch(), dataset, store, batch_size=2, overwrite=True,
                       progress=False)
    assert first.done == 6 and again.done == 0 and again.skipped == 6
    assert sorted(p.name for p in store.parts("mini", "fake")) == parts
    replaced = run_branch(FakeBranch(salt="other"), dataset, store, batch_size=2,
                          overwrite=True, progress=False)
    assert replaced.done == 6


def test_damaged_metadata_is_a_store_error(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 2)
    store = FeatureStore(tmp_path / "store")
    run_branch(FakeBranch(), dataset, store, progress=False)
    part = store.parts("mini", "fake")[0]
    table = pq.read_table(part)
    pq.write_table(table.replace_schema_metadata({b"featurekit": b"{not json"}), part)
    with pytest.raises(StoreError, match="unreadable featurekit metadata"):
        store.provenance("mini", "fake")
    pq.write_table(table.replace_schema_metadata({b"featurekit": b"[1, 2]"}), part)
    with pytest.raises(StoreError, match="lacks its provenance"):
        run_branch(FakeBranch(), dataset, store, progress=False)
