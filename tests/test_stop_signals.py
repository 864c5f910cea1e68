"""Stopping a run with SIGINT or SIGTERM: workers stopped at once, stored work kept, a clear
message and exit code, handlers installed by the command line only."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from test_store import FakeBranch, make_dataset, run

from featurekit.errors import Interrupted
from featurekit.store.reader import FeatureStore
from featurekit.store.writer import BranchWriter

psutil = pytest.importorskip("psutil")


def _loky_workers() -> list:
    return [child for child in psutil.Process().children(recursive=True)
            if any("popen_loky" in part for part in child.cmdline())]


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
