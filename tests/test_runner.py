"""run_branch: failures, resumption (also after SIGKILL), config refusal, lock, backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_store import FakeBranch, make_dataset, run, write_tone

from featurekit.computers.runner import RunSummary, default_batch_size
from featurekit.errors import ConfigError, DatasetError, StoreError
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipResult

BAD_KINDS = ("corrupt", "empty", "silent", "nan", "missing")


class BatchCrash(FakeBranch):
    """Raises for the whole batch that contains ``clip001``."""

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        if any(Path(path).stem == "clip001" for path in paths):
            raise RuntimeError("model crashed")
        return super().compute_batch(paths, frames=frames)


class InProcessOnly(FakeBranch):
    """A computer that must run in the process that created it (like a torch model)."""

    process_parallel = False

    def __init__(self) -> None:
        super().__init__()
        self.owner_pid = os.getpid()

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        assert os.getpid() == self.owner_pid
        return super().compute_batch(paths, frames=frames)


class KillsItsWorker(FakeBranch):
    """Ends its worker process at once (like a decoder segfault or an OOM kill) on
    ``clip005``; raises instead in the process that created it, so a bug here cannot end
    the test session."""

    def __init__(self) -> None:
        super().__init__()
        self.owner_pid = os.getpid()

    def compute_batch(self, paths: Sequence[str], *,
                      frames: bool = False) -> list[ClipResult | BaseException]:
        if any(Path(path).stem == "clip005" for path in paths):
            if os.getpid() == self.owner_pid:
                raise AssertionError("KillsItsWorker ran outside a worker process")
            os._exit(3)
        return super().compute_batch(paths, frames=frames)


def snapshot(store: FeatureStore, branch: str = "fake") -> dict[str, pd.DataFrame]:
    """Everything a reader can get out of a branch."""
    return {"features": store.read("mini", branch), "errors": store.errors("mini", branch),
            "notes": store.notes("mini", branch)}


def assert_same_content(left: FeatureStore, right: FeatureStore) -> None:
    first, second = snapshot(left), snapshot(right)
    for key in first:
        pd.testing.assert_frame_equal(first[key], second[key], check_dtype=True)
    assert not first["features"]["clip_id"].duplicated().any()


def test_bad_files_are_recorded_and_skipped(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 6, bad=BAD_KINDS)
    store = FeatureStore(tmp_path / "store")
    summary = run(FakeBranch(), dataset, store, batch_size=4)
    assert (summary.total, summary.done, summary.skipped, summary.failed) == (11, 6, 0, 5)
    assert summary.exit_code == 0
    errors = store.errors("mini", "fake").set_index("clip_id")
    assert sorted(errors.index) == sorted(f"bad_{kind}" for kind in BAD_KINDS)
    assert set(errors["error_type"]) == {"AudioError"}
    assert "silent" in errors.loc["bad_silent", "message"]
    assert "NaN" in errors.loc["bad_nan", "message"]
    assert "not found" in errors.loc["bad_missing", "message"]
    assert errors.loc["bad_empty", "path"] == str(tmp_path / "audio" / "bad_empty.wav")
    assert len(store.read("mini", "fake")) == 6
    assert "5 failed" in str(summary) and "bad_" in str(summary)


def test_exit_codes() -> None:
    summary = RunSummary("d", "b", Path("s"), total=3, done=0, skipped=0, failed=3, seconds=1)
    assert summary.exit_code == 1
    assert RunSummary("d", "b", Path("s"), 3, 2, 0, 1, 1.0).exit_code == 0
    assert RunSummary("d", "b", Path("s"), 3, 2, 0, 1, 1.0, strict=True).exit_code == 1
    assert RunSummary("d", "b", Path("s"), 3, 0, 3, 0, 1.0, strict=True).exit_code == 0
    assert RunSummary("d", "b", Path("s"), 4, 0, 3, 1, 1.0).exit_code == 0


def test_every_clip_failing_or_strict_exits_1(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path / "store")
    all_bad = make_dataset(tmp_path / "bad", 0, bad=("corrupt", "empty"))
    summary = run(FakeBranch(), all_bad, store)
    assert (summary.done, summary.failed, summary.exit_code) == (0, 2, 1)
    assert store.branches("mini") == ["fake"]  # the failures are on record
    assert len(store.errors("mini", "fake")) == 2
    mixed = make_dataset(tmp_path / "mixed", 3, bad=("corrupt",), name="mixed")
    assert run(FakeBranch(), mixed, store, strict=True).exit_code == 1


def test_rerun_skips_stored_and_retries_failed_clips(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 5, bad=("corrupt", "silent"))
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(), dataset, store, batch_size=2)
    before = store.read("mini", "fake")
    again = run(FakeBranch(), dataset, store)
    assert (again.done, again.skipped, again.failed) == (0, 5, 2)
    write_tone(tmp_path / "audio" / "bad_corrupt.wav", 99)  # the user fixes one file
    fixed = run(FakeBranch(), dataset, store)
    assert (fixed.done, fixed.skipped, fixed.failed) == (1, 5, 1)
    assert store.errors("mini", "fake")["clip_id"].tolist() == ["bad_silent"]
    after = store.read("mini", "fake")
    assert len(after) == 6 and not after["clip_id"].duplicated().any()
    pd.testing.assert_frame_equal(after[after["clip_id"] != "bad_corrupt"].reset_index(drop=True),
                                  before)


def test_other_config_is_refused_unless_overwrite(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 4)
    store = FeatureStore(tmp_path / "store")
    run(FakeBranch(salt="a"), dataset, store)
    old = store.read("mini", "fake")
    with pytest.raises(StoreError, match="another store, or overwrite=True"):
        run(FakeBranch(salt="b"), dataset, store)
    pd.testing.assert_frame_equal(store.read("mini", "fake"), old)  # untouched
    with pytest.raises(StoreError, match="without frame-level descriptors"):
        run(FakeBranch(salt="a"), dataset, store, frames=True)
    summary = run(FakeBranch(salt="b"), dataset, store, overwrite=True)
    assert (summary.done, summary.skipped) == (4, 0)
    new = store.read("mini", "fake")
    assert new["clip_id"].tolist() == old["clip_id"].tolist()
    assert not np.array_equal(new.iloc[:, 4:].to_numpy(), old.iloc[:, 4:].to_numpy())
    assert store.provenance("mini", "fake")["config"]["salt"] == "b"


def test_whole_batch_exception_is_recorded(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 6)
    store = FeatureStore(tmp_path / "store")
    summary = run(BatchCrash(), dataset, store, batch_size=2)
    assert (summary.done, summary.failed) == (4, 2)
    errors = store.errors("mini", "fake")
    assert errors["clip_id"].tolist() == ["clip000", "clip001"]
    assert set(errors["message"]) == {"model crashed"}


def test_dataset_and_option_validation(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 2)
    store = tmp_path / "store"
    doubled = SimpleNamespace(name="mini", clips=pd.concat([dataset.clips] * 2))
    with pytest.raises(DatasetError, match="duplicate clip ids"):
        run(FakeBranch(), doubled, store)
    with pytest.raises(DatasetError, match=r"lacks columns \['fold'\]"):
        run(FakeBranch(), SimpleNamespace(name="mini", clips=dataset.clips.drop(columns="fold")),
            store)
    with pytest.raises(StoreError, match="n_jobs"):
        run(FakeBranch(), dataset, store, n_jobs=0)
    with pytest.raises(ConfigError, match="unknown backend"):
        run(FakeBranch(), dataset, store, backend="spark")
    with pytest.raises(ConfigError, match="needs backend='dask'"):
        run(FakeBranch(), dataset, store, scheduler="tcp://127.0.0.1:1")
    assert default_batch_size(1761, 2) == 32 and default_batch_size(10, 2) == 2


def test_progress_callback_and_in_process_computers(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 7)
    seen: list[tuple[int, int]] = []
    summary = run(InProcessOnly(), dataset, tmp_path / "store", n_jobs=2, batch_size=3,
                  on_progress=lambda finished, total: seen.append((finished, total)))
    assert summary.done == 7
    assert seen == [(3, 7), (6, 7), (7, 7)]


def test_a_computer_may_choose_its_clips_per_task(tmp_path: Path) -> None:
    """Like a neural branch on a GPU, which wants its decoding workers to keep ahead."""
    dataset = make_dataset(tmp_path / "audio", 7)
    computer = InProcessOnly()
    computer.clips_per_task = 4
    seen: list[tuple[int, int]] = []
    run(computer, dataset, tmp_path / "store", on_progress=lambda done, total:
        seen.append((done, total)))
    assert seen == [(4, 7), (7, 7)]
    seen.clear()
    run(computer, dataset, tmp_path / "other", batch_size=3, on_progress=lambda done, total:
        seen.append((done, total)))
    assert seen == [(3, 7), (6, 7), (7, 7)]  # the caller's choice comes first


def test_two_workers_give_identical_content(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 10, bad=("corrupt",))
    serial, parallel = FeatureStore(tmp_path / "one"), FeatureStore(tmp_path / "two")
    run(FakeBranch(), dataset, serial, n_jobs=1, batch_size=3, frames=True)
    run(FakeBranch(), dataset, parallel, n_jobs=2, batch_size=3, frames=True)
    assert_same_content(serial, parallel)
    pd.testing.assert_frame_equal(serial.frames("mini", "fake"), parallel.frames("mini", "fake"))


KILLED_RUN = """
import sys
from types import SimpleNamespace
import pandas as pd
sys.path.insert(0, {tests!r})
from test_store import FakeBranch
from featurekit.computers.runner import run_branch
clips = pd.read_csv({clips!r}, dtype={{"clip_id": str}})
run_branch(FakeBranch(delay_s=0.05), SimpleNamespace(name="mini", clips=clips), {store!r},
           batch_size=2, progress=False)
"""


def _start_and_kill(script: str, store: FeatureStore, kill_at_parts: int) -> int:
    """Run ``script`` in a subprocess, SIGKILL it once ``kill_at_parts`` parts exist."""
    process = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    try:
        while len(list(store.branch_dir("mini", "fake").glob("part-*.parquet"))) < kill_at_parts:
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.005)
        with pytest.raises(StoreError, match=f"another run \\(pid {process.pid}\\)"):
            run(FakeBranch(), SimpleNamespace(name="mini", clips=pd.DataFrame(
                columns=["clip_id", "path", "label", "label_id", "fold"])), store)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    return process.returncode


def test_resume_after_kill_matches_uninterrupted_run(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path / "audio", 16, bad=("corrupt", "silent"))
    clips_csv = tmp_path / "clips.csv"
    dataset.clips.to_csv(clips_csv, index=False)
    reference = FeatureStore(tmp_path / "reference")
    run(FakeBranch(), dataset, reference)
    store = FeatureStore(tmp_path / "killed")
    script = KILLED_RUN.format(tests=str(Path(__file__).parent), clips=str(clips_csv),
                               store=str(store.path))
    assert _start_and_kill(script, store, kill_at_parts=2) == -signal.SIGKILL
    assert _start_and_kill(script, store, kill_at_parts=5) == -signal.SIGKILL
    interrupted = store.read("mini", "fake")
    assert 5 * 2 <= len(interrupted) < 16
    summary = run(FakeBranch(), dataset, store)
    assert summary.skipped == len(interrupted)
    assert summary.skipped + summary.done == 16 and summary.failed == 2
    assert_same_content(reference, store)


def test_a_clip_that_kills_its_worker_is_isolated(tmp_path: Path) -> None:
    """The run goes on; the culprit is recorded with the cause; the good clips of its batch
    are stored with the values a clean run gives them; a rerun retries only the culprit."""
    dataset = make_dataset(tmp_path / "audio", 14)
    store = FeatureStore(tmp_path / "store")
    summary = run(KillsItsWorker(), dataset, store, n_jobs=2, batch_size=4)
    assert (summary.done, summary.failed, summary.exit_code) == (13, 1, 0)
    errors = store.errors("mini", "fake")
    assert errors["clip_id"].tolist() == ["clip005"]
    assert errors["error_type"].iloc[0] == "TerminatedWorkerError"
    assert "(exit code EXIT(3))" in errors["message"].iloc[0]
    clean = FeatureStore(tmp_path / "clean")
    run(FakeBranch(), dataset, clean, batch_size=4)
    expected = clean.read("mini", "fake").set_index("clip_id").drop(index="clip005")
    stored = store.read("mini", "fake").set_index("clip_id").loc[expected.index]
    pd.testing.assert_frame_equal(stored, expected)
    again = run(KillsItsWorker(), dataset, store, n_jobs=2, batch_size=4)
    assert (again.skipped, again.failed, again.done) == (13, 1, 0)


def test_dask_local_cluster_matches_loky(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    dataset = make_dataset(tmp_path / "audio", 8, bad=("empty",))
    local, dask = FeatureStore(tmp_path / "local"), FeatureStore(tmp_path / "dask")
    run(FakeBranch(), dataset, local, batch_size=3)
    summary = run(FakeBranch(), dataset, dask, backend="dask", n_jobs=2, batch_size=3)
    assert (summary.done, summary.failed) == (8, 1)
    assert_same_content(local, dask)


def test_dask_existing_scheduler_matches_loky(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    dataset = make_dataset(tmp_path / "audio", 6)
    local, dask = FeatureStore(tmp_path / "local"), FeatureStore(tmp_path / "dask")
    run(FakeBranch(), dataset, local, batch_size=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        run(FakeBranch(), dataset, dask, backend="dask", scheduler=cluster.scheduler_address,
            batch_size=2)
        assert any("compute_batch_safely" in prefix for prefix in cluster.scheduler.task_prefixes)
    assert_same_content(local, dask)


def test_cli_extract_end_to_end(tmp_path: Path, capsys) -> None:
    from fixtures_audio import bad_clip_ids, make_urbansound8k

    from featurekit.cli import main
    from featurekit.computers.handcrafted import HandcraftedBranch
    from featurekit.config import ExtractionConfig

    data = make_urbansound8k(tmp_path / "data", folds=(1, 2), clips_per_fold=2,
                             with_bad_files=True)
    store = FeatureStore(tmp_path / "store")
    command = ["extract", "--dataset", "urbansound8k", "--data-dir", str(data),
               "--store", str(store.path), "--families", "pitch,spectral", "--frames",
               "--batch-size", "4"]
    with pytest.warns(UserWarning, match="partial copy"):
        assert main(command) == 0
    assert "8 clips, " in capsys.readouterr().out
    frame = store.read("urbansound8k")
    errors = store.errors("urbansound8k", "handcrafted")
    bad = bad_clip_ids(data)
    assert {bad["corrupt"], bad["empty"], bad["nan"]} <= set(errors["clip_id"])
    assert len(frame) + len(errors) == 8 and set(frame["fold"]) == {1, 2}
    config = ExtractionConfig(families=("pitch", "spectral"))
    names = HandcraftedBranch(config).feature_names
    assert list(frame.columns)[4:] == names
    assert {name.split(".")[0] for name in names} == {"pitch", "spectral"}
    first = frame.iloc[0]
    path = next(Path(data).rglob(f"{first['clip_id']}.*"))
    direct = HandcraftedBranch(config).compute_batch([str(path)])[0]
    np.testing.assert_array_equal(first[names].to_numpy(np.float32), direct.values)
    frames = store.frames("urbansound8k", "handcrafted", clip_ids=[first["clip_id"]])
    assert len(frames) > 1 and list(frames.columns[:2]) == ["clip_id", "time_s"]

    with pytest.warns(UserWarning):
        assert main([*command, "--strict"]) == 1  # failures are retried, and fail again
    assert "0 computed, " in capsys.readouterr().out
    pitch_only = [*command[:-5], "--families", "pitch"]
    with pytest.warns(UserWarning):
        assert main(pitch_only) == 2  # another configuration
    assert "--overwrite" in capsys.readouterr().err
    with pytest.warns(UserWarning):
        assert main([*pitch_only, "--overwrite", "--jobs", "2"]) == 0
    assert store.feature_names("urbansound8k", "handcrafted") == HandcraftedBranch(
        config.replace(families=("pitch",))).feature_names


@pytest.mark.slow
@pytest.mark.realdata
def test_real_urbansound8k_subset_extracts_completely(shared_data_dir: Path,
                                                      tmp_path: Path) -> None:
    from featurekit.computers.handcrafted import HandcraftedBranch
    from featurekit.datasets import load_dataset

    with pytest.warns(UserWarning, match="partial copy"):
        dataset = load_dataset("urbansound8k", shared_data_dir / "urbansound8k-subset")
    store = FeatureStore(tmp_path / "store")
    summary = run(HandcraftedBranch(), dataset, store, n_jobs=2)
    assert (summary.done, summary.failed) == (1761, 0)
    X, _, folds, _ = store.read_arrays("urbansound8k")
    assert X.shape[0] == 1761 and set(folds) == {1, 2}
    assert not np.isnan(X).any()
