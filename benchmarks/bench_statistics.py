"""Seconds of a multi-label statistics stage in this process and on loky workers.

Resamples ``--systems`` synthetic systems (one eval fold, ``--repeats`` repeats, ``--boot``
resamples, clips as units; the data of ``bench_bootstrap.py``) as the benchmark's comparer does
(:func:`featurekit.benchmark.score.resample_systems`), then compares each with the first
(:func:`~featurekit.benchmark.score.compare_map`, which reads the resamples), once per
``--jobs`` value, and checks that every run gives the same intervals.

    python benchmarks/bench_statistics.py --systems 40 --clips 2500 --classes 56 --jobs 1,2

Prints one line per ``--jobs`` value: workers, wall seconds, CPU seconds (this process and
its loky workers, which are shut down after each run to be counted), and whether the
comparisons equal the first run's. On a machine that other work keeps busy the wall seconds
say little; the CPU seconds say what the workers add.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from joblib.externals.loky import get_reusable_executor

from featurekit.benchmark.score import compare_map, resample_systems


def synthetic(n_systems: int, n_clips: int, n_classes: int, repeats: int,
              seed: int = 0) -> tuple[dict[str, list[np.ndarray]], np.ndarray]:
    """Probabilities of ``n_systems`` mediocre heads (macro mAP ~0.5, float32) and label
    indicators with Zipf-like class frequencies (~2 labels per clip, at least 5 positives
    per class)."""
    rng = np.random.default_rng(seed)
    prior = 1.0 / np.arange(1, n_classes + 1) ** 0.8
    prior *= 2.0 / prior.sum()
    truth = rng.random((n_clips, n_classes)) < prior
    truth[rng.integers(0, n_clips, size=(5, n_classes)), np.arange(n_classes)] = True
    probas = {}
    for index in range(n_systems):
        logits = 2.0 * truth + rng.normal(size=(repeats, n_clips, n_classes)) - 3.0
        probas[f"system{index:03d}"] = [(1.0 / (1.0 + np.exp(-logits))).astype(np.float32)]
    return probas, truth.astype(np.int64)


def cpu_seconds() -> float:
    """User and system CPU seconds of this process and of its children that have ended."""
    return sum(usage.ru_utime + usage.ru_stime for usage in (
        resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--systems", type=int, default=40)
    parser.add_argument("--clips", type=int, default=2500)
    parser.add_argument("--classes", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--jobs", default="1,2", help="comma-separated n_jobs values")
    args = parser.parse_args()
    probas, truth = synthetic(args.systems, args.clips, args.classes, args.repeats)
    units, names = [np.arange(args.clips)], list(probas)
    options = {"n_boot": args.boot, "random_state": 0}
    first = None
    for n_jobs in (int(value) for value in args.jobs.split(",")):
        cpu, started = cpu_seconds(), time.perf_counter()
        memo: dict = {}
        resample_systems(names, probas, [truth], units, memo=memo, n_jobs=n_jobs, **options)
        entries = [compare_map(name, names[0], probas, [truth], units, [1], memo=memo,
                               **options) for name in names[1:]]
        seconds = time.perf_counter() - started
        get_reusable_executor().shutdown(wait=True)  # its workers' CPU time, counted
        cpu = cpu_seconds() - cpu
        first = entries if first is None else first
        print(f"n_jobs={n_jobs}: {seconds:.1f} s wall, {cpu:.1f} s CPU for {args.systems} "
              f"systems x {args.clips} clips x {args.classes} classes x {args.repeats} "
              f"repeats, {args.boot} resamples; same comparisons as the first run: "
              f"{entries == first}", flush=True)


if __name__ == "__main__":
    main()
