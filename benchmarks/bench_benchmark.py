"""Wall time of ``featurekit benchmark``'s engine: before and after, by outer folds and clips.

Each measurement runs in a fresh subprocess on an existing store (extraction and embedding are
not timed: ``featurekit benchmark`` computes them once and reuses them). "Before" is another
checkout of featurekit (``--old-src``, e.g. a ``git worktree`` of an older commit), run with
the same data, heads and fusions; its engine always evaluates every fold present.

    git worktree add /tmp/featurekit-old 06ff692
    python benchmarks/bench_benchmark.py --store stores \\
        --data-dir ../shared/data/urbansound8k-subset --old-src /tmp/featurekit-old

Prints one table: engine, configuration, outer folds, clips, fits, wall seconds, seconds per
fit, and for "after" rows measured with the same configuration as a "before" row, the largest
per-system accuracy difference (pp) over the systems both evaluate.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import dataclasses, json, sys, time, warnings
warnings.simplefilter("ignore")
import numpy as np
from featurekit.benchmark import BenchmarkConfig, benchmark_store
from featurekit.datasets import load_dataset

spec = json.loads(sys.argv[1])
dataset = load_dataset(spec["dataset"], spec["data_dir"])
clips = dataset.clips
if spec["fraction"] < 1.0:  # whole recordings, drawn once with a fixed seed
    recordings = clips["recording"].drop_duplicates().sample(frac=spec["fraction"],
                                                              random_state=0)
    clips = clips[clips["recording"].isin(recordings)]
fields = {f.name for f in dataclasses.fields(BenchmarkConfig)}
options = {k: v for k, v in spec["config"].items() if k in fields}
if "outer_folds" in options and options["outer_folds"] is not None:
    options["outer_folds"] = tuple(options["outer_folds"])
for key in ("heads", "fusions"):
    options[key] = tuple(options[key])
config = BenchmarkConfig(**options)
from featurekit.store.reader import FeatureStore
store = FeatureStore(spec["store"])
original_read = store.read
store.read = lambda *a, **k: original_read(*a, **k).query("clip_id in @ids",
                                                         local_dict={"ids": set(clips["clip_id"])})
started = time.perf_counter()
results = benchmark_store(store, dataset.name, model=spec["model"], config=config,
                          n_jobs=spec["jobs"], progress=False,
                          recordings=clips.set_index("clip_id")["recording"])
wall = time.perf_counter() - started
import featurekit
print(json.dumps({"source": featurekit.__file__, "wall": wall, "fits": results.get("n_fits"),
                  "folds": results["folds"],
                  "clips": int(sum(results["clips_per_fold"].values())),
                  "accuracy": {s["name"]: s["mean"]["accuracy"] for s in results["systems"]}}))
"""


def measure(src: Path, spec: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), FEATUREKIT_NO_PROGRESS="1")
    # In the checkout itself: ``python -c`` puts the working directory first on sys.path.
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], env=env, cwd=src,
                          capture_output=True, text=True, check=True)
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(outcome["source"]).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"measured {outcome['source']}, not the checkout {src}")
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--dataset", default="urbansound8k")
    parser.add_argument("--model", default="mn04_as")
    parser.add_argument("--old-src", help="checkout of the featurekit to compare against")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    new_src = Path(__file__).resolve().parents[1]
    common = {"dataset": args.dataset, "data_dir": str(Path(args.data_dir).resolve()),
              "store": str(Path(args.store).resolve()),
              "model": args.model, "jobs": args.jobs}
    heads, fusions = ["xgb", "mlp", "logreg"], ["early", "mean", "weighted", "stacking",
                                                "calibrated", "oof_features"]
    same_fits = {"heads": heads, "fusions": fusions, "n_seeds": 2, "repeats": 1}
    new_default = {"heads": heads, "fusions": fusions, "n_seeds": 1, "repeats": 3}
    runs = []
    if args.old_src:
        runs.append(("before", Path(args.old_src), "old default (2 seeds)", same_fits, None,
                     1.0))
    for folds in ([1], None):
        for fraction in (0.5, 1.0) if folds is None else (1.0,):
            runs.append(("after", new_src, "2 seeds, 1 repeat", same_fits, folds, fraction))
    runs.append(("after", new_src, "new default (3 repeats x 1 seed)", new_default, None, 1.0))
    print("| engine | configuration | outer folds | clips | fits | wall s | s per fit | "
          "max |Δ acc| vs before (pp) |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    before_accuracy = None
    for engine, src, label, config, folds, fraction in runs:
        spec = {**common, "fraction": fraction, "config": {**config, "outer_folds": folds}}
        outcome = measure(src, spec)
        if engine == "before":
            before_accuracy = outcome["accuracy"]
        delta = ""
        if engine == "after" and before_accuracy and config is same_fits and folds is None \
                and fraction == 1.0:
            shared = set(before_accuracy) & set(outcome["accuracy"])
            worst = max(abs(outcome["accuracy"][n] - before_accuracy[n]) for n in shared)
            delta = f"{100 * worst:.2f}"
        fits = outcome["fits"]
        per_fit = f"{outcome['wall'] / fits:.3f}" if fits else ""
        print(f"| {engine} | {label} | {','.join(map(str, outcome['folds']))} | "
              f"{outcome['clips']} | {fits or 'n/a'} | {outcome['wall']:.1f} | {per_fit} | "
              f"{delta} |", flush=True)


if __name__ == "__main__":
    main()
