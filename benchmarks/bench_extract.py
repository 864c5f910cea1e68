"""Benchmark of ``featurekit extract``: wall time, throughput, speed-up and memory per job count.

Each job count extracts the handcrafted branch (or, with ``--set``, a reference feature set's
branch) of the dataset into a fresh temporary store
through :func:`featurekit.computers.runner.run_branch` (the code path of ``featurekit extract``),
while
a sampler thread sums the resident memory (RSS) of this process and all its children (the
worker processes) every 0.2 s. Reported: wall time, clips/s, speed-up over the first job
count, RSS when 10% and 100% of the clips are done (equal values = memory does not grow with
the dataset) and the peak.

Examples
--------
Quick smoke run::

    python benchmarks/bench_extract.py --limit 40

Full runs for the README::

    python benchmarks/bench_extract.py --dataset urbansound8k \\
        --data-dir ../shared/data/urbansound8k-subset --jobs 1 2
    python benchmarks/bench_extract.py --dataset esc10 --data-dir ../shared/data/esc10 --jobs 1 2
    python benchmarks/bench_extract.py --set opensmile.compare --jobs 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from featurekit.computers.base import BranchComputer
from featurekit.computers.runner import run_branch

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "urbansound8k-subset"
SAMPLE_EVERY_S = 0.2


def _children_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` from /proc (Linux)."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def _proc_rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int | None = None) -> int:
    """Resident memory of process ``pid`` (default: this one) plus all its descendants."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil
    except ImportError:
        pending, total = [pid], 0
        while pending:
            current = pending.pop()
            total += _proc_rss_bytes(current)
            pending.extend(_children_pids(current))
        return total
    root = psutil.Process(pid)
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # a worker that exited between listing and reading
            continue
    return total


class MemorySampler:
    """Samples the process tree's RSS in a thread, tagged with the fraction of clips done."""

    def __init__(self) -> None:
        self.fraction = 0.0
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.samples.append((self.fraction, tree_rss_bytes()))
            self._stop.wait(SAMPLE_EVERY_S)

    def progress(self, finished: int, total: int) -> None:
        """``on_progress`` callback of :func:`run_branch`."""
        self.fraction = finished / total if total else 1.0

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((self.fraction, tree_rss_bytes()))

    def first_rss_after(self, fraction: float) -> int:
        """RSS of the first sample once ``fraction`` of the clips were done."""
        return next((rss for done, rss in self.samples if done >= fraction), 0)


@dataclass(frozen=True)
class BenchRow:
    jobs: int
    clips: int
    failed: int
    wall_s: float
    clips_per_s: float
    speedup: float
    rss_10pct_mb: float
    rss_100pct_mb: float
    peak_rss_mb: float


def bench(make_computer: Callable[[], BranchComputer], dataset: Any, jobs: Sequence[int], *,
          batch_size: int | None = None, backend: str = "loky") -> list[BenchRow]:
    """Extract ``dataset`` once per job count into fresh temporary stores.

    Parameters
    ----------
    make_computer : callable
        Returns the branch computer (a new one per run).
    dataset : object
        ``.name`` and ``.clips`` as from :func:`featurekit.load_dataset`.
    jobs : sequence of int
        Job counts; speed-up is relative to the first.
    """
    rows: list[BenchRow] = []
    megabyte = 1024 ** 2
    for n_jobs in jobs:
        with tempfile.TemporaryDirectory(prefix="bench-extract-") as store:
            with MemorySampler() as sampler:
                summary = run_branch(make_computer(), dataset, store, n_jobs=n_jobs,
                                     batch_size=batch_size, backend=backend,
                                     progress=False, on_progress=sampler.progress)
        wall = summary.seconds
        baseline = rows[0].wall_s if rows else wall
        rows.append(BenchRow(
            jobs=n_jobs, clips=summary.done, failed=summary.failed, wall_s=round(wall, 2),
            clips_per_s=round((summary.done + summary.failed) / wall, 2),
            speedup=round(baseline / wall, 2),
            rss_10pct_mb=round(sampler.first_rss_after(0.1) / megabyte, 1),
            rss_100pct_mb=round(sampler.first_rss_after(1.0) / megabyte, 1),
            peak_rss_mb=round(max(rss for _, rss in sampler.samples) / megabyte, 1)))
    return rows


def format_table(rows: Sequence[BenchRow]) -> str:
    """Fixed-width table of the rows."""
    header = ("jobs", "clips", "failed", "wall s", "clips/s", "speed-up", "RSS@10% MB",
              "RSS@100% MB", "peak RSS MB")
    lines = [header, *(tuple(str(value) for value in asdict(row).values()) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(line, widths,
                                                                        strict=True))
                     for line in lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="urbansound8k")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, help="only the first N clips (smoke run)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--config", help="extraction configuration TOML (featurekit set)")
    parser.add_argument("--set", default="featurekit", dest="feature_set",
                        help="feature set (featurekit, essentia, opensmile.egemaps, "
                             "opensmile.compare; default featurekit)")
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from featurekit.computers.sets import set_computer
    from featurekit.config import ExtractionConfig
    from featurekit.datasets import load_dataset

    config = ExtractionConfig.from_toml(args.config) if args.config else None
    dataset = load_dataset(args.dataset, args.data_dir)
    clips = dataset.clips if args.limit is None else dataset.clips.head(args.limit)
    subset = SimpleNamespace(name=dataset.name, clips=clips)
    started = time.strftime("%Y-%m-%d %H:%M")
    rows = bench(lambda: set_computer(args.feature_set, extraction=config), subset, args.jobs,
                 batch_size=args.batch_size, backend=args.backend)
    print(f"featurekit extract --set {args.feature_set} benchmark, {dataset.name} "
          f"({len(clips)} clips from "
          f"{args.data_dir}), {os.cpu_count()} CPUs, {started}")
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
