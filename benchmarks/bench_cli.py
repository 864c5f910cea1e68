"""Benchmark of the ``featurekit`` command: time to answer ``--help``, and ``extract`` end to
end with one and two worker processes.

Every measurement runs the installed console script in a fresh process, as a user would.

* ``--help`` of the top level and of every command and sub-command: median wall time of
  ``--repeats`` runs (parsers are built without torch, scikit-learn, pandas ...).
* ``featurekit extract`` of UrbanSound8K fold 1 (873 clips) listed in a CSV (absolute paths,
  ``--dataset csv``), into a fresh temporary store each time, with ``--jobs 1`` and
  ``--jobs 2``: wall time of the whole command, the time the run itself reports (from the
  opened store to the last part written), their difference (start-up: interpreter, imports,
  dataset listing), and the speed-up of ``--jobs 2``.
* The same on the first 4 clips: what is left is the fixed cost of each job count (with
  ``--jobs 2``: starting the worker processes and their imports).

The machine's load average is printed before and after each extraction: on a shared
machine, other processes take cores from ``--jobs 2``.

Examples
--------
::

    python benchmarks/bench_cli.py
    python benchmarks/bench_cli.py --data-dir ../shared/data/urbansound8k-subset --fold 1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from featurekit.cli import iter_commands

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "urbansound8k-subset"
#: Clips of the start-up measurement.
FEW_CLIPS = 4
_RUN_SECONDS = re.compile(r"failed in ([0-9.]+) s")


def _featurekit() -> list[str]:
    """The console script beside this interpreter, else ``python -m featurekit``."""
    script = Path(sys.executable).with_name("featurekit")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "featurekit"]


def _load() -> str:
    """One-minute load average."""
    return f"{os.getloadavg()[0]:.2f}"


def _timed(argv: list[str]) -> tuple[float, str]:
    env = {**os.environ, "FEATUREKIT_NO_PROGRESS": "1"}
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return seconds, done.stdout


def help_times(repeats: int) -> list[tuple[str, float]]:
    """Median wall time of ``featurekit [COMMAND ...] --help`` for every command."""
    rows = []
    for command in [(), *iter_commands()]:
        argv = [*_featurekit(), *command, "--help"]
        times = [_timed(argv)[0] for _ in range(repeats)]
        rows.append((" ".join(["featurekit", *command, "--help"]), statistics.median(times)))
    return rows


def write_clip_list(data_dir: Path, fold: int, destination: Path) -> int:
    """CSV (path,label,fold,clip_id; absolute paths) of one UrbanSound8K fold; its length."""
    from featurekit.datasets import DatasetWarning, load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)  # a partial copy, as expected
        clips = load_dataset("urbansound8k", data_dir).clips
    chosen = clips[clips["fold"] == fold][["path", "label", "fold", "clip_id"]]
    if chosen.empty:
        raise SystemExit(f"no clips of fold {fold} in {data_dir}")
    chosen.to_csv(destination, index=False)
    return len(chosen)


def extract_times(clip_list: Path, jobs: int, work: Path) -> tuple[float, float]:
    """(command wall time, run time reported by the command) of one fresh extraction."""
    store = Path(tempfile.mkdtemp(prefix=f"store-j{jobs}-", dir=work))
    try:
        wall, out = _timed([*_featurekit(), "extract", "--dataset", "csv", "--data-dir",
                            str(clip_list), "--store", str(store), "--jobs", str(jobs)])
    finally:
        shutil.rmtree(store)
    match = _RUN_SECONDS.search(out)
    if match is None:
        raise SystemExit(f"unexpected output of featurekit extract:\n{out}")
    return wall, float(match.group(1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help="UrbanSound8K copy (default ../shared/data/urbansound8k-subset)")
    parser.add_argument("--fold", type=int, default=1, help="fold to extract (default 1)")
    parser.add_argument("--repeats", type=int, default=5,
                        help="runs per --help timing (median reported; default 5)")
    parser.add_argument("--extract-repeats", type=int, default=1,
                        help="runs per extraction (best reported; default 1)")
    args = parser.parse_args(argv)

    print(f"load average (1 min) before: {_load()} ({os.cpu_count()} CPUs)\n")
    print("| command | wall s (median) |\n|---|---:|")
    for name, seconds in help_times(args.repeats):
        print(f"| `{name}` | {seconds:.3f} |")

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        all_clips = work / f"fold{args.fold}.csv"
        n_clips = write_clip_list(args.data_dir, args.fold, all_clips)
        few_clips = work / "few.csv"
        lines = all_clips.read_text().splitlines(keepends=True)
        few_clips.write_text("".join(lines[:FEW_CLIPS + 1]))
        print(f"\n`featurekit extract --dataset csv` of UrbanSound8K fold {args.fold}, fresh "
              f"store each run (best of {args.extract_repeats}):\n")
        print("| clips | jobs | wall s | run s | start-up s | speed-up | load before / after |")
        print("|---:|---:|---:|---:|---:|---:|---|")
        for clip_list, count in ((all_clips, n_clips), (few_clips, FEW_CLIPS)):
            base = None
            for jobs in (1, 2):
                before = _load()
                wall, run = min(extract_times(clip_list, jobs, work)
                                for _ in range(args.extract_repeats))
                base = base or wall
                print(f"| {count} | {jobs} | {wall:.2f} | {run:.2f} | {wall - run:.2f} | "
                      f"{base / wall:.2f}x | {before} / {_load()} |")


if __name__ == "__main__":
    main()
