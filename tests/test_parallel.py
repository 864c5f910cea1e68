"""featurekit._util.parallel.run_tasks: tasks run in this process beside the workers, a worker
that dies loses no result, loky's worker restarts lose nothing; and the benchmark fits its
torch units in the one process that owns the GPU."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_tasks import (
    square,
    square_always_dying,
    square_dying_once,
    square_with_restarts,
)
from joblib import delayed
from test_sequence import FAST, benchmark_inputs

import featurekit.benchmark.execute as execute_module
from featurekit._util.parallel import run_tasks
from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark.config import head_spec
from featurekit.benchmark.data import prepare_data
from featurekit.benchmark.plan import make_plan
from featurekit.errors import WorkerLostError
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.torch.sequence import SequenceClassifier
from featurekit.names import TORCH_HEAD_NAMES


@pytest.mark.parametrize("ordered", [True, False])
def test_a_worker_that_dies_loses_no_task(tmp_path: Path, ordered: bool, caplog) -> None:
    tasks = [delayed(square)(value) for value in range(12)]
    tasks[5] = delayed(square_dying_once)(5, str(tmp_path / "died"))
    with caplog.at_level(logging.WARNING, logger="featurekit._util.parallel"):
        results = [value for value, _ in run_tasks(tasks, n_jobs=2, ordered=ordered)]
    assert (tmp_path / "died").exists()
    assert "a worker process died" in caplog.text
    squares = [value * value for value in range(12)]
    assert results == squares if ordered else sorted(results) == squares


def test_a_task_that_keeps_killing_its_worker_is_named_and_earlier_results_kept() -> None:
    """The results handed over stay; the error names every task not handed over (the one
    that kills its worker, those after it, and any lost beside it each time)."""
    names = ["zero", "one", "two", "three", "four", "five"]
    tasks = [delayed(square)(value) for value in range(6)]
    tasks[4] = delayed(square_always_dying)(4)
    got = []
    with pytest.raises(WorkerLostError, match="after 1 retry") as caught:
        for value, _ in run_tasks(tasks, n_jobs=2, retries=1, names=names):
            got.append(value)
    assert got == [0, 1, 4, 9][:len(got)]
    lost = names[len(got):]
    assert f"{len(lost)} task(s) not computed: {', '.join(lost)}." in str(caught.value)


def test_without_retries_the_worker_death_is_raised_at_once() -> None:
    from concurrent.futures.process import BrokenProcessPool

    with pytest.raises(BrokenProcessPool):
        list(run_tasks([delayed(square_always_dying)(0), delayed(square)(1)], n_jobs=2,
                       retries=0))


def test_loky_worker_restarts_lose_no_task() -> None:
    """loky's "A worker stopped while some jobs were given to the executor": a worker replaced
    after a task (its memory grew), with its result handed back first."""
    pytest.importorskip("psutil")  # loky's leak protection needs it
    from joblib.externals.loky import get_reusable_executor

    tasks = [delayed(square_with_restarts)(value) for value in range(10)]
    try:
        with pytest.warns(UserWarning, match="A worker stopped"):
            results = list(run_tasks(tasks, n_jobs=2))
    finally:  # no worker that restarts after its next task is left to the other tests
        get_reusable_executor(max_workers=1).shutdown(wait=True)
    assert [value for value, _ in results] == [value * value for value in range(10)]
    assert len({pid for _, pid in results}) > 2  # workers were replaced


def test_tasks_in_this_process_run_as_their_results_are_asked_for() -> None:
    ran = []

    def noted(value: int) -> int:
        ran.append(value)
        return value

    results = run_tasks([delayed(noted)(value) for value in range(4)], n_jobs=1)
    assert next(results) == 0 and ran == [0]
    results.close()


@pytest.mark.parametrize("ordered", [True, False])
def test_tasks_here_run_in_this_process_and_the_others_in_workers(ordered: bool) -> None:
    here = {1, 4, 5}
    results = list(run_tasks([delayed(square)(value) for value in range(8)], n_jobs=2,
                             ordered=ordered, here=here))
    if ordered:
        assert [value for value, _ in results] == [value * value for value in range(8)]
    by_value = {int(round(value ** 0.5)): pid for value, pid in results}
    assert sorted(by_value) == list(range(8))
    assert all((by_value[value] == os.getpid()) == (value in here) for value in range(8))


def fit_unit_noting_its_process(*args, **kwargs):
    output = FIT_UNIT(*args, **kwargs)
    output.params = {**output.params, "pid": os.getpid()}
    return output


FIT_UNIT = execute_module.fit_unit


# A worker that imports torch for a later task than its first is replaced (see run_tasks).
@pytest.mark.filterwarnings("ignore:A worker stopped while some jobs")
def test_torch_units_fit_in_the_process_that_owns_the_gpu(monkeypatch) -> None:
    """With CUDA (made believed here), the sequence head's units (branches and joint model)
    are fitted by this process, never by a loky worker; the other heads by the workers; the
    results are those of a run without a GPU."""
    frame, sequences = benchmark_inputs(n_clips=96)
    config = BenchmarkConfig(heads=("logreg", "seq"), fusions=("mean", "joint"), n_seeds=1,
                             repeats=1, n_bootstrap=100)
    data = prepare_data(frame, config, sequences=sequences)
    plan = make_plan(data.branches, config, data.folds, sequence_branches=list(data.sequences))
    quick = functools.partial(SequenceClassifier, **{**FAST, "max_epochs": 2}, device="cpu")
    heads = {"seq": HeadSpec("seq", quick, seeded=True)}
    specs = {name: head_spec(name, heads) for name in config.heads}
    monkeypatch.setattr(execute_module, "fit_unit", fit_unit_noting_its_process)

    def run() -> dict:
        outputs, _ = execute_module.execute(
            plan, data, specs, seeds_of=config.seeds, inner_splits_count=config.inner_splits,
            tune=False, with_embeddings=False, n_jobs=2, progress=False)
        return outputs

    on_cpu = run()
    monkeypatch.setattr(execute_module, "torch_device", lambda: "cuda")
    with_gpu = run()
    kinds = {unit.kind for unit in with_gpu if unit.head in TORCH_HEAD_NAMES}
    assert kinds == {"branch", "joint"}
    for unit, output in with_gpu.items():
        here = output.params.pop("pid") == os.getpid()
        assert here == (unit.head in TORCH_HEAD_NAMES), unit
        assert on_cpu[unit].params.pop("pid") != os.getpid()
        np.testing.assert_array_equal(output.test, on_cpu[unit].test)
