"""Seconds of the multi-label bootstrap (macro mAP): before and after, by eval clips and classes.

Each measurement runs :func:`featurekit.benchmark.score.bootstrap_map` for one system (one eval
fold, ``--repeats`` repeats, ``--boot`` resamples, clips as resampling units) on synthetic
multi-label probabilities, in a fresh subprocess, with featurekit from ``--old-src`` ("before",
an export of an older commit) or from this checkout ("after"). The old code loops over classes
with the same work per class, so "before" is timed on the first ``--old-classes`` classes and
scaled to all of them (a full 10k x 200 run of it takes about half an hour); "after" is timed
on all classes, and also on the same first classes to check that both give the same resamples.

A default run bootstraps every compared system once (:func:`~featurekit.benchmark.score.
compare_map` keeps each system's resamples) and takes one interval per reported comparison;
the counts come from a results.json of a default multi-label run (``--results``).

    git archive 805ba20 featurekit | tar -x -C /tmp/featurekit-old
    python benchmarks/bench_bootstrap.py --old-src /tmp/featurekit-old

Prints one table: code, eval clips, classes, seconds per system (measured or scaled), seconds
per reported comparison and for the whole run's bootstrap (systems x seconds per system), and
the largest relative difference of the resampled macro mAPs against "before".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

WORKER = r"""
import json, sys, time
import numpy as np
import featurekit
from featurekit.benchmark.score import bootstrap_map

spec = json.loads(sys.argv[1])
rng = np.random.default_rng(spec["seed"])
n, n_classes, repeats = spec["clips"], spec["classes"], spec["repeats"]
# Zipf-like class frequencies, about two labels per clip (FSD50K's eval set has ~2.6 with
# its ancestors), at least 5 positives per class.
prior = 1.0 / np.arange(1, n_classes + 1) ** 0.8
prior *= 2.0 / prior.sum()
truth = rng.random((n, n_classes)) < prior
truth[rng.integers(0, n, size=(5, n_classes)), np.arange(n_classes)] = True
# A mediocre head (macro mAP ~0.5), float32 like XGBoost's and the MLP's probabilities.
logits = 2.0 * truth + rng.normal(size=(repeats, n, n_classes)) - 3.0
proba = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
columns = slice(0, spec["measured_classes"])
started = time.perf_counter()
resampled = bootstrap_map([proba[:, :, columns]], [truth[:, columns].astype(int)],
                          [np.arange(n)], n_boot=spec["boot"], random_state=0)
seconds = time.perf_counter() - started
np.save(spec["out"], resampled)
print(json.dumps({"seconds": seconds, "source": featurekit.__file__}))
"""


def measure(src: Path, spec: dict) -> float:
    """Seconds of one :func:`bootstrap_map` call in a fresh interpreter importing ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    # Run outside any checkout: ``python -c`` puts the working directory first on the path.
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], env=env,
                          cwd=Path(spec["out"]).parent, check=True, capture_output=True,
                          text=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(answer["source"]).resolve().is_relative_to(src.resolve()):
        raise RuntimeError(f"measured {answer['source']}, not featurekit from {src}")
    return float(answer["seconds"])


def run_counts(results: Path) -> tuple[int, int]:
    """Systems bootstrapped and comparisons reported by the run that wrote ``results``."""
    data = json.loads(results.read_text(encoding="utf-8"))
    pairs = [(data["primary"]["system"], data["primary"]["reference"])] if data["primary"] else []
    for key in ("branch_comparisons", "comparisons", "fusion_vs_own_branches",
                "sequence_vs_functionals"):
        pairs += [(entry["system"], entry["reference"]) for entry in data.get(key) or []]
    return len({name for pair in pairs for name in pair}), len(pairs)


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old-src", type=Path, help="featurekit checkout or export 'before'")
    parser.add_argument("--clips", default="2500,10000", help="eval clips, comma-separated")
    parser.add_argument("--classes", default="56,200", help="classes, comma-separated")
    parser.add_argument("--boot", type=int, default=2000, help="resamples (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (default 3)")
    parser.add_argument("--old-classes", type=int, default=4,
                        help="classes the old code is timed on, then scaled (default 4)")
    parser.add_argument("--results", type=Path,
                        default=here / "results" / "esc10-mix" / "results.json",
                        help="results.json of a default multi-label run, for the counts")
    args = parser.parse_args()
    n_systems, n_comparisons = run_counts(args.results)
    print(f"default run ({args.results.parent.name}): {n_systems} systems bootstrapped, "
          f"{n_comparisons} comparisons reported; {args.boot} resamples, {args.repeats} "
          f"repeats, clips as units\n")
    print("| code | eval clips | classes | s per system | s per comparison | s per run "
          "| max rel. Δ vs before |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for clips in (int(v) for v in args.clips.split(",")):
            for classes in (int(v) for v in args.classes.split(",")):
                spec = {"seed": 0, "clips": clips, "classes": classes, "boot": args.boot,
                        "repeats": args.repeats}
                subset = {**spec, "measured_classes": min(args.old_classes, classes)}
                rows, difference = [], ""
                if args.old_src is not None:
                    old = measure(args.old_src, {**subset, "out": f"{tmp}/old.npy"})
                    measure(here.parent, {**subset, "out": f"{tmp}/new.npy"})
                    before, after = np.load(f"{tmp}/old.npy"), np.load(f"{tmp}/new.npy")
                    difference = f"{np.max(np.abs(after - before) / np.abs(before)):.1e}"
                    rows.append(("before", old * classes / subset["measured_classes"],
                                 f" (scaled from {subset['measured_classes']} classes)"))
                new = measure(here.parent, {**spec, "measured_classes": classes,
                                            "out": f"{tmp}/all.npy"})
                rows.append(("after", new, ""))
                for code, seconds, note in rows:
                    print(f"| {code} | {clips} | {classes} | {seconds:.2f}{note} "
                          f"| {seconds * n_systems / n_comparisons:.2f} "
                          f"| {seconds * n_systems:.0f} "
                          f"| {difference if code == 'after' else ''} |", flush=True)


if __name__ == "__main__":
    main()
