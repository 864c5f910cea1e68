"""Stopping a run with SIGINT or SIGTERM: workers stopped at once, stored work kept, a clear
message and exit code, handlers installed by the command line only."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_store import FakeBranch, make_dataset, run

import featurekit
from featurekit.cli import main
from featurekit.errors import Interrupted
from featurekit.store.reader import FeatureStore
from featurekit.store.writer import BranchWriter

psutil = pytest.importorskip("psutil")


def _loky_workers() -> list:
    workers = []
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a helper that just exited
            if any("popen_loky" in part for part in child.cmdline()):
                workers.append(child)
    return workers


def _signal_after_first_batch(monkeypatch: pytest.MonkeyPatch, stop) -> dict:
    """Make ``stop()`` run in this (the main) thread right after the first batch is stored,
    and note the loky workers alive then."""
    seen: dict = {}
    write_batch = BranchWriter.write_batch

    def write_then_stop(self, clips, outcomes):
        written = write_batch(self, clips, outcomes)
        if not seen:
            seen["workers"] = _loky_workers()
            seen["sigterm"] = signal.getsignal(signal.SIGTERM)
            stop()
        return written

    monkeypatch.setattr(BranchWriter, "write_batch", write_then_stop)
    return seen


def test_interrupted_run_stops_its_workers_and_counts_what_is_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path / "audio", 12)
    store = FeatureStore(tmp_path / "store")
    handler = signal.getsignal(signal.SIGTERM)

    def stop() -> None:
        raise Interrupted(signal.SIGTERM)

    seen = _signal_after_first_batch(monkeypatch, stop)
    with pytest.raises(Interrupted) as caught:
        run(FakeBranch(delay_s=0.2), dataset, store, n_jobs=2, batch_size=2)
    # While the exception (and its traceback, which holds the run's frames) is alive: the
    # workers were stopped on the way out, not when the run's generator is collected.
    assert seen["workers"], "the run used no loky workers"
    assert not [worker.pid for worker in seen["workers"] if worker.is_running()]
    assert caught.value.stored == ["2 of 12 clips of mini/fake"]
    assert seen["sigterm"] is handler  # the library installs no signal handler
    monkeypatch.undo()
    summary = run(FakeBranch(), dataset, store)  # the lock was released; the run resumes
    assert (summary.skipped, summary.done) == (2, 10)


def test_a_signal_between_a_commit_and_its_bookkeeping_counts_the_committed_part(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import featurekit.store.writer as writer_module

    dataset = make_dataset(tmp_path / "audio", 6)
    store = FeatureStore(tmp_path / "store")
    write_table = writer_module.write_table

    def commit_then_stop(table, path):
        write_table(table, path)
        if path.parent.name == "fake":  # the feature part, not a companion
            raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(writer_module, "write_table", commit_then_stop)
    with pytest.raises(Interrupted) as caught:
        run(FakeBranch(), dataset, store, n_jobs=1, batch_size=2)
    assert len(store.read("mini", "fake")) == 2
    assert caught.value.stored == ["2 of 6 clips of mini/fake"]


def test_cli_sigint_exits_130_with_what_is_stored_and_restores_handlers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from fixtures_audio import make_folder_dataset

    data = make_folder_dataset(tmp_path / "clips", clips_per_class=4)
    before = {each: signal.getsignal(each) for each in (signal.SIGINT, signal.SIGTERM)}
    seen = _signal_after_first_batch(monkeypatch, lambda: signal.raise_signal(signal.SIGINT))
    command = ["extract", "--dataset", "folder", "--data-dir", str(data), "--store",
               str(tmp_path / "store"), "--families", "spectral", "--jobs", "2",
               "--batch-size", "1"]
    with pytest.warns(UserWarning, match="no folds"):
        assert main(command) == 130
    assert "interrupted by SIGINT: 1 of 8 clips of clips/handcrafted stored; rerun the same " \
           "command to resume" in capsys.readouterr().err
    assert not [worker.pid for worker in seen["workers"] if worker.is_running()]
    assert {each: signal.getsignal(each) for each in before} == before


def _write_stop_dataset(root: Path) -> Path:
    """One short clip first (its part comes first), then clips that keep both workers busy
    for a while under a 16-sample hop."""
    rng = np.random.default_rng(0)
    for label, seconds in {"a": (0.3, 3.0, 3.0), "b": (3.0, 3.0, 3.0)}.items():
        (root / label).mkdir(parents=True)
        for index, duration in enumerate(seconds):
            noise = 0.1 * rng.standard_normal(round(duration * 22050))
            sf.write(root / label / f"clip_{index}.wav", noise.astype(np.float32), 22050)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_sigterm_stops_a_real_extract_and_a_rerun_resumes(tmp_path: Path, backend: str) -> None:
    if backend == "dask":
        pytest.importorskip("distributed")
    data = _write_stop_dataset(tmp_path / "stop")
    config = tmp_path / "slow.toml"
    config.write_text("hop_length = 16\n")
    store = tmp_path / "store"
    command = [sys.executable, "-m", "featurekit", "extract", "--dataset", "folder",
               "--data-dir", str(data), "--store", str(store), "--config", str(config),
               "--jobs", "2", "--batch-size", "1", "--backend", backend]
    env = {**os.environ, "FEATUREKIT_NO_PROGRESS": "1", "PYTHONPATH": os.pathsep.join(
        [str(Path(featurekit.__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    parts = store / "stop" / "handcrafted"
    children = []
    with open(tmp_path / "stderr", "w+") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            # Hang guards only: nothing below measures how fast anything is.
            while not list(parts.glob("part-*.parquet")):
                assert process.poll() is None, "the run ended before its first part"
                try:
                    process.wait(timeout=0.02)
                except subprocess.TimeoutExpired:
                    pass
            children = psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=120) == 143
            _, alive = psutil.wait_procs(children, timeout=30)
            assert not alive, f"worker processes outlived the run: {alive}"
        finally:
            for survivor in [process, *children]:
                try:
                    survivor.kill()
                except (ProcessLookupError, psutil.NoSuchProcess):
                    pass
            process.wait()
        stderr.seek(0)
        message = stderr.read()
    found = re.search(r"interrupted by SIGTERM: (\d) of 6 clips of stop/handcrafted stored; "
                      r"rerun the same command to resume", message)
    assert found, message
    stored = int(found.group(1))
    assert 1 <= stored < 6 and len(FeatureStore(store).read("stop")) == stored
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"6 clips, {6 - stored} computed, {stored} already stored, 0 failed" in rerun.stdout
