"""The default multi-label benchmark as the dataset grows: time per stage, fits, peak memory,
the plan's estimate, and a projection to FSD50K.

For each size, a mixture set in the FSD50K layout is built from the shared clips (ESC-10 and
UrbanSound8K folds 1-2: 20 classes, each also played at other speeds up to ``--classes``
classes; :func:`featurekit.datasets.mixtures.write_mixture_set`), then the command a user
runs, end to end from an empty store (extraction, embedding, benchmark)::

    featurekit benchmark --dataset fsd50k --data-dir SET --store STORE --jobs J --out OUT

is timed while a sampler sums the resident memory of the command and all its workers every
0.5 s. Its ``results.json`` gives the seconds of each stage (``plan.stages``) and the fits;
then ``featurekit benchmark ... --plan`` on the filled store gives the estimate to compare
with the run's benchmark part (its wall time less the fill). Splits: ESC-10 folds 1-3 train,
4 val, 5 eval (official folds); UrbanSound8K recordings (``fsID``) drawn 60/20/20, so no
recording reaches two splits.

The projection to FSD50K (51,197 clips, 200 classes; train ~36.8k, val ~4.2k, eval ~10.2k,
~7.6 s per clip on average) scales each stage of the largest measured run by the model the
measurements support (see ``project``), and prints the assumptions beside the figures.

    python benchmarks/bench_scale.py --esc10 ../shared/data/esc10 \\
        --us8k ../shared/data/urbansound8k-subset --weights ../shared/weights \\
        --sizes 2500,5000,10000 --classes 56 --jobs 2 --work /tmp/scale
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from bench_extract import tree_rss_bytes

from featurekit.datasets import load_dataset
from featurekit.datasets.base import Dataset
from featurekit.datasets.fsd50k import GROUND_TRUTH
from featurekit.datasets.mixtures import write_mixture_set
from featurekit.store.reader import FeatureStore

SPLIT_OF_FOLD = {1: "train", 2: "val", 3: "eval"}
US8K_SHARES = (0.6, 0.2, 0.2)
SAMPLE_EVERY_S = 0.5
GIB = 2 ** 30

# FSD50K as released (Fonseca et al., TASLP 2022): dev 40,966 clips (train 36,796 / val 4,170
# by the official split; 80.4 h), eval 10,231 (27.9 h); 200 classes; clips of 0.3 to 30 s.
FSD50K_CLIPS = {"train": 36_796, "val": 4_170, "eval": 10_231}
FSD50K_CLASSES = 200
FSD50K_MEAN_DURATION_S = (80.4 + 27.9) * 3600 / sum(FSD50K_CLIPS.values())


def mixture_source(esc10_dir: Path, us8k_dir: Path, *, seed: int) -> Dataset:
    """ESC-10 and UrbanSound8K folds 1-2 as one single-label source, fold = split
    (1 train, 2 val, 3 eval)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shared copies' notes (partial, OGG)
        esc10 = load_dataset("esc10", esc10_dir)
        us8k = load_dataset("urbansound8k", us8k_dir)
    esc = esc10.clips.assign(fold=esc10.clips["fold"].map({1: 1, 2: 1, 3: 1, 4: 2, 5: 3}))
    recordings = np.sort(us8k.clips["recording"].unique())
    split = np.random.default_rng(seed).choice([1, 2, 3], size=recordings.size, p=US8K_SHARES)
    urban = us8k.clips.assign(fold=us8k.clips["recording"].map(dict(zip(recordings, split))))
    clips = pd.concat([esc, urban], ignore_index=True)[["clip_id", "path", "label", "fold"]]
    classes = list(esc10.classes) + list(us8k.classes)
    clips["label_id"] = clips["label"].map({name: i for i, name in enumerate(classes)})
    return Dataset(name="esc10-us8k", clips=clips, classes=classes, expected_folds=[1, 2, 3],
                   root=esc10_dir.parent)


def build_set(source: Dataset, out: Path, *, n_items: int, n_classes: int, seed: int,
              jobs: int) -> float:
    """Write the set unless ``out`` already holds it; seconds spent writing (0 if reused)."""
    marker = out / "featurekit-mixture.json"
    wanted = {"n_items": n_items, "n_classes": n_classes, "seed": seed,
              "source": source.name, "sizes": len(source.clips)}
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        return 0.0
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    write_mixture_set(source, out, SPLIT_OF_FOLD, n_items=n_items, n_classes=n_classes,
                      seed=seed, n_jobs=jobs)
    marker.write_text(json.dumps(wanted))
    return time.perf_counter() - start


@dataclass
class Measured:
    wall_s: float
    peak_rss_bytes: int
    returncode: int


def run_measured(command: list[str], env: dict[str, str], log: Path) -> Measured:
    """Run ``command``, sampling the summed RSS of it and its descendants."""
    peak = 0
    with open(log, "w") as handle:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(SAMPLE_EVERY_S):
                peak = max(peak, tree_rss_bytes(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    return Measured(wall, peak, code)


def measure_size(source: Dataset, args: argparse.Namespace, n_items: int) -> dict:
    work = args.work
    data = work / f"mix-{n_items}-{args.classes}"
    store, out, planned = (work / f"{name}-{n_items}-{args.classes}"
                           for name in ("store", "out", "plan"))
    built_s = build_set(source, data, n_items=n_items, n_classes=args.classes, seed=args.seed,
                        jobs=args.jobs)
    for folder in (store, out, planned):
        shutil.rmtree(folder, ignore_errors=True)
    env = dict(os.environ, FEATUREKIT_WEIGHTS_DIR=str(args.weights))
    command = [sys.executable, "-m", "featurekit", "benchmark", "--dataset", "fsd50k",
               "--data-dir", str(data), "--store", str(store), "--jobs", str(args.jobs)]
    run = run_measured([*command, "--out", str(out)], env, work / f"run-{n_items}.log")
    if run.returncode:
        raise SystemExit(f"the benchmark of {n_items} clips failed; see "
                         f"{work / f'run-{n_items}.log'}")
    plan_run = run_measured([*command, "--out", str(planned), "--plan"], env,
                            work / f"plan-{n_items}.log")
    results = json.loads((out / "results.json").read_text())
    estimate = json.loads((planned / "plan.json").read_text())
    stages = {stage["name"]: float(stage["measured_s"]) for stage in results["plan"]["stages"]}
    fill_s = branch_seconds(work / f"run-{n_items}.log")
    benchmark_s = results["plan"]["measured_wall_s"] - stages.get("fill", 0.0)
    truth = data / GROUND_TRUTH
    counts = pd.read_csv(truth / "dev.csv")["split"].value_counts().to_dict()
    counts["eval"] = len(pd.read_csv(truth / "eval.csv"))
    return {"clips": n_items, "classes": args.classes, "built_s": built_s,
            "wall_s": run.wall_s, "peak_rss_bytes": run.peak_rss_bytes,
            "stages": stages, "fill_s": fill_s, "fits": results["plan"]["fits"],
            "units": results["plan"]["units"],
            "workers": results["plan"]["workers"], "fit_core_s": {
                head: results["timings_s"][f"fit_{head}"] for head in results["config"]["heads"]},
            "calibration": results["plan"]["calibration"],
            "systems": results["plan"]["systems"], "n_columns": n_columns(store),
            "clips_per_split": counts, "benchmark_s": benchmark_s,
            "plan_s": estimate["estimated_wall_s"], "plan_took_s": plan_run.wall_s,
            "plan_peak_rss_bytes": estimate["estimated_peak_rss_bytes"],
            "primary": results["primary"]}


def n_columns(store: Path) -> int:
    """Feature columns of every branch of the store's dataset (the widest unit's input)."""
    features = FeatureStore(store)
    return sum(len(features.feature_names("fsd50k", branch))
               for branch in features.branches("fsd50k"))


STAGES = ("fill", "read", "calibration", "fits", "fusion", "statistics", "report")


def format_rows(rows: list[dict]) -> str:
    first = rows[0]
    header = ("| clips | classes | wall s | s/clip | vs smallest | "
              + " | ".join(f"{name} s" for name in STAGES)
              + " | units / fits | peak RSS GiB | --plan s (benchmark part) | plan vs measured |")
    lines = [header, "|" + "---:|" * (header.count("|") - 1)]
    for row in rows:
        per_clip = row["wall_s"] / row["clips"]
        error = row["plan_s"] / row["benchmark_s"] - 1
        lines.append(
            f"| {row['clips']} | {row['classes']} | {row['wall_s']:.0f} | {per_clip:.3f} | "
            f"{per_clip / (first['wall_s'] / first['clips']):.2f} | "
            + " | ".join(f"{row['stages'].get(name, 0.0):.0f}" for name in STAGES)
            + f" | {row['units']} / {row['fits']} | {row['peak_rss_bytes'] / GIB:.2f} | "
            f"{row['plan_s']:.0f} ({row['benchmark_s']:.0f}) | {error:+.0%} |")
    return "\n".join(lines)


#: Configurations of the projection and their worker processes.
TARGETS = {"2 cores (this machine)": 2, "16 cores + GPU": 16, "4 x 16 cores, Dask": 64}


def branch_seconds(log: Path) -> dict[str, float]:
    """Seconds of each branch's fill, from the lines ``featurekit`` prints at its end."""
    found = re.findall(r"fsd50k/(\S+) -> .*? in ([0-9.]+) s", log.read_text(errors="replace"))
    return {branch: float(seconds) for branch, seconds in found}


def project(rows: list[dict]) -> str:
    """FSD50K's cost from the largest run, stage by stage, and what each figure assumes.

    Work (core-seconds) scales with what it touches: a branch's fill with seconds of audio;
    XGBoost and logistic fits, every fusion but stacking with training rows x classes (one
    tree or regression per class; measured linear in rows); the MLP with training rows (its
    output layer is a small part); stacking with training rows x classes^2 (each class's
    regression reads every branch's every class); the statistics with eval clips x classes.
    Wall time on P workers is work / P, except that the fits cannot end before their
    longest unit (one XGBoost fit of the widest input, scaled the same way), nor the fusions
    before their costliest system (a stacking scored in a selection), and that the
    neural branch embeds in the command's own process (its rate on a GPU was not measured:
    the figure assumes decoding stays the bound and grows with the cores).
    """
    last = rows[-1]
    split = last["clips_per_split"]
    train = FSD50K_CLIPS["train"] / split["train"]
    evals = FSD50K_CLIPS["eval"] / split["eval"]
    audio = sum(FSD50K_CLIPS.values()) * FSD50K_MEAN_DURATION_S / (last["clips"] * 5.0)
    classes = FSD50K_CLASSES / last["classes"]
    workers = last["workers"]
    stages = last["stages"]
    fill = last["fill_s"]
    neural_s = sum(seconds for branch, seconds in fill.items() if branch.startswith("neural"))
    handcrafted_s = sum(fill.values()) - neural_s
    fit_core_s = sum(seconds * train * (1.0 if head == "mlp" else classes)
                     for head, seconds in last["fit_core_s"].items())
    calibration = last["calibration"]
    # Fusion kinds: "stacking", and "stacking+inner" for the systems scored in a selection.
    weight = {kind: seconds * calibration["fusion_systems"].get(kind, 0)
              for kind, seconds in calibration["fusion_s_per_system"].items()}
    stacking_share = (sum(w for kind, w in weight.items() if kind.split("+")[0] == "stacking")
                      / max(sum(weight.values()), 1e-9))
    fusion_core_s = stages["fusion"] * workers * train * classes * (
        1 - stacking_share + stacking_share * classes)
    # A fusion task cannot end before its costliest system, a stacking scored in a selection.
    longest_fusion_s = (calibration["fusion_s_per_system"].get("stacking+inner", 0.0)
                        * train * classes * classes)
    statistics_s = stages["statistics"] * evals * classes
    xgb = calibration["heads"]["xgb"]
    longest_s = xgb["seconds"]["wide"] * FSD50K_CLIPS["train"] / xgb["sample_rows"] * classes
    other_s = sum(stages.get(name, 0.0) for name in ("read", "calibration", "report"))
    lines = [f"FSD50K ({sum(FSD50K_CLIPS.values())} clips, {FSD50K_CLASSES} classes, "
             f"~{FSD50K_MEAN_DURATION_S:.1f} s per clip) from the {last['clips']}-clip run "
             f"(x{audio:.1f} audio, x{train:.1f} training rows, x{evals:.1f} eval clips, "
             f"x{classes:.2f} classes); hours:",
             "| stage | " + " | ".join(TARGETS) + " |", "|---|" + "---:|" * len(TARGETS)]
    table: dict[str, list[float]] = {}
    for n in TARGETS.values():
        speedup = n / workers
        figures = {
            "fill: handcrafted": handcrafted_s * audio / speedup,
            "fill: neural (in-process)": neural_s * audio / speedup,
            "fits": max(fit_core_s / n, longest_s),
            "fusion": max(fusion_core_s / n, longest_fusion_s),
            "statistics": statistics_s / speedup,
            "read, calibration, report": other_s * train,
        }
        for name, seconds in figures.items():
            table.setdefault(name, []).append(seconds)
    for name, values in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{v / 3600:.1f}" for v in values) + " |")
    totals = [sum(values[i] for values in table.values()) for i in range(len(TARGETS))]
    lines.append("| **total** | " + " | ".join(f"**{t / 3600:.1f}**" for t in totals) + " |")
    lines.append(f"(fits: {fit_core_s / 3600:.0f} core-hours; their longest unit at least "
                 f"{longest_s / 3600:.1f} h, one XGBoost fit of the widest input; stacking "
                 f"{stacking_share:.0%} of the fusion's work at {last['classes']} classes)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--esc10", type=Path, required=True)
    parser.add_argument("--us8k", type=Path, required=True)
    parser.add_argument("--weights", type=Path, required=True,
                        help="folder of pretrained weights (FEATUREKIT_WEIGHTS_DIR)")
    parser.add_argument("--sizes", default="2500,5000,10000", help="clips per set")
    parser.add_argument("--classes", type=int, default=56)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, required=True,
                        help="folder for the sets, stores and outputs (kept; sets reused)")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    source = mixture_source(args.esc10, args.us8k, seed=args.seed)
    rows = []
    for size in (int(text) for text in args.sizes.split(",")):
        rows.append(measure_size(source, args, size))
        (args.work / "scale.json").write_text(json.dumps(rows, indent=1, default=str))
        print(format_rows(rows), flush=True)
    print()
    print(project(rows))


if __name__ == "__main__":
    main()
