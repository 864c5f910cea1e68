"""Decoding clips for the network: threads against worker processes, and the GIL they hold.

What :mod:`featurekit.neural.decoding` chose threads on (its docstring): the clips of a dataset
decoded and resampled to the model's rate (32 kHz for mn04_as)

* in one thread (``--jobs 1`` of ``featurekit embed``);
* by ``--jobs`` threads (:func:`featurekit.neural.decoding.load_clips`, as now);
* by ``--jobs`` loky worker processes (:func:`featurekit._util.parallel.run_tasks`, as before:
  each waveform pickled back to this process), the workers started before the timing;

and how much of the decoding holds the GIL: a pure-Python loop in the main thread counts while
one thread decodes (on a GPU that thread is the one launching the network's kernels); the
share of its counting rate lost is the share of the time the decoding thread held the GIL
(overstated where other work leaves the two threads less than a core each). Each figure is the
best of ``--repeats`` runs.

Usage::

    python benchmarks/bench_decoding.py --dataset esc10 --data-dir ../shared/data/esc10 --jobs 2
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable

from joblib import delayed

from featurekit._util.parallel import run_tasks
from featurekit.datasets import load_dataset
from featurekit.neural.decoding import load_clip, load_clips

RATE = 32000


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _count_for(seconds: float, stop: threading.Event | None = None) -> float:
    """Iterations per second of a pure-Python loop, for ``seconds`` or until ``stop``."""
    count, start = 0, time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end and not (stop is not None and stop.is_set()):
        count += 1
    return count / (time.perf_counter() - start)


def gil_share(paths: list[str]) -> float:
    """Share of a Python loop's rate lost while one thread decodes ``paths``."""
    alone = _count_for(1.0)
    done = threading.Event()

    def decode() -> None:
        for path in paths:
            load_clip(path, RATE, min_samples=RATE)
        done.set()

    worker = threading.Thread(target=decode)
    worker.start()
    beside = _count_for(3600.0, done)
    worker.join()
    alone = max(alone, _count_for(1.0))
    return 1.0 - beside / alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="esc10")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--clips", type=int, default=200, help="first clips of the dataset")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = load_dataset(args.dataset, args.data_dir).clips["path"].astype(str).tolist()
    paths = paths[:args.clips]

    def threads(n_jobs: int) -> Callable[[], object]:
        return lambda: list(load_clips(paths, RATE, min_samples=RATE, n_jobs=n_jobs))

    def processes() -> list:
        return list(run_tasks([delayed(load_clip)(path, RATE, min_samples=RATE)
                               for path in paths], n_jobs=args.jobs))

    list(run_tasks([delayed(load_clip)(paths[0], RATE, min_samples=RATE)] * args.jobs,
                   n_jobs=args.jobs))  # start the workers
    rows = [("1 thread", threads(1)), (f"{args.jobs} threads", threads(args.jobs)),
            (f"{args.jobs} processes", processes)]
    print(f"{args.dataset}: {len(paths)} clips to {RATE} Hz; clips/s, best of {args.repeats}")
    for label, run in rows:
        print(f"{label:<14}{len(paths) / _best_seconds(run, args.repeats):>8.1f}", flush=True)
    share = min(gil_share(paths) for _ in range(args.repeats))
    print(f"GIL held by one decoding thread: {100 * share:.0f} % of its time")


if __name__ == "__main__":
    main()
