"""Seconds, memory and macro mAP of the XGBoost head on multi-label targets, by strategy.

Issue #21 (one booster per class per fit): a multi-label fit of :class:`~featurekit.learn.
heads.xgb.XGBHead` today grows, every boosting round, one tree per class inside one booster
(XGBoost's ``multi_strategy="one_output_per_tree"``, binary logistic per column). XGBoost can
instead grow one tree per round whose leaves hold a vector of all classes' scores
(``multi_strategy="multi_output_tree"``, ``hist`` only). This script times both on the head as
the benchmark fits it: the public head with its defaults (100 rounds on all rows, depth 4,
16 bins, 10 % of the columns per tree), one thread per fit (``threadpool_limits(1)`` as
:mod:`featurekit.benchmark.execute` does, and ``n_jobs`` set to the same count).

The data are synthetic, shaped like the handcrafted features of a large multi-label set:
float32 columns of mixed scales (some heavy-tailed, a few NaNs), Zipf-like class frequencies
with about two labels per clip and at least 5 positives per class in the training rows, each
class decided by a few columns (a linear part and an interaction) plus noise, so there is
signal to find. Every measurement runs in a fresh subprocess; "peak RSS Δ" is how far the
process's peak resident memory (``VmHWM``, reset just before the fit) rose above its resident
memory then, during fit and predict. Macro mAP is
:func:`featurekit.benchmark.score.multilabel_metrics`'s ``map`` on the held-out rows.

    python benchmarks/bench_xgb_multilabel.py                     # 2500,10000 rows x 56,200
    python benchmarks/bench_xgb_multilabel.py --rows 2500 --classes 200 --threads 2

Prints one markdown table: train rows, classes, strategy, threads, fit and predict seconds,
macro mAP, peak RSS Δ, and the fit-time ratio of today's strategy to the other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

STRATEGIES = ("one_output_per_tree", "multi_output_tree")

WORKER = r"""
import json, resource, sys, time
import numpy as np
from threadpoolctl import threadpool_limits
import featurekit
from featurekit.benchmark.score import multilabel_metrics
from featurekit.learn.heads.xgb import XGBHead

spec = json.loads(sys.argv[1])


def make_data(n_rows, n_test, n_cols, n_classes, seed):
    rng = np.random.default_rng(seed)
    n = n_rows + n_test
    # Columns of mixed scales: most Gaussian-like, a quarter heavy-tailed (kurtosis-like,
    # flux peaks), some correlated through a few shared factors, as summary statistics are.
    factors = rng.normal(size=(n, 12))
    X = rng.normal(size=(n, n_cols)) + factors @ rng.normal(scale=0.5, size=(12, n_cols))
    heavy = rng.random(n_cols) < 0.25
    X[:, heavy] = np.sinh(X[:, heavy])
    X *= rng.lognormal(sigma=2.0, size=n_cols)
    # Zipf-like class frequencies, about two labels per clip.
    prior = 1.0 / np.arange(1, n_classes + 1) ** 0.8
    prior *= 2.0 / prior.sum()
    Y = np.zeros((n, n_classes), dtype=np.int64)
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    for k in range(n_classes):
        cols = rng.choice(n_cols, size=4, replace=False)
        score = (Z[:, cols[:3]] @ rng.normal(size=3) + 0.7 * Z[:, cols[0]] * Z[:, cols[3]]
                 + rng.normal(scale=1.0, size=n))
        Y[:, k] = score > np.quantile(score, 1.0 - prior[k])
    # At least 5 positives per class among the training rows and 2 among the held-out rows.
    for k in range(n_classes):
        for rows, least in ((np.arange(n_rows), 5), (np.arange(n_rows, n), 2)):
            missing = least - int(Y[rows, k].sum())
            if missing > 0:
                Y[rng.choice(rows, size=missing, replace=False), k] = 1
    X[rng.random(X.shape) < 0.002] = np.nan  # a descriptor undefined on silent clips
    X = X.astype(np.float32)
    return X[:n_rows], Y[:n_rows], X[n_rows:], Y[n_rows:]


X, Y, X_test, Y_test = make_data(spec["rows"], spec["test_rows"], spec["columns"],
                                 spec["classes"], spec["seed"])
Head = XGBHead
params = {"random_state": 0, "n_jobs": spec["threads"]}
if "multi_strategy" in XGBHead().get_params():
    params["multi_strategy"] = spec["strategy"]
elif spec["strategy"] != "one_output_per_tree":
    # A head without the keyword: the same head, its XGBClassifier given the strategy.
    class Head(XGBHead):
        def _model(self, n_rounds, seed, **extra):
            return super()._model(n_rounds, seed, multi_strategy=spec["strategy"], **extra)
head = Head(**params)


def status_kib(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field))


# Peak RSS of the fit and predict alone: Linux resets the peak (VmHWM) to the current RSS when
# asked, so the data's own making does not count; elsewhere the process's peak so far.
try:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before, peak = status_kib("VmRSS:"), lambda: status_kib("VmHWM:")
except OSError:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # noqa: E731
with threadpool_limits(limits=spec["threads"]):
    started = time.perf_counter()
    head.fit(X, Y)
    fitted = time.perf_counter()
    proba = head.predict_proba(X_test)
    predicted = time.perf_counter()
after = peak()
print(json.dumps({"fit_s": fitted - started, "predict_s": predicted - fitted,
                  "map": multilabel_metrics(Y_test, proba)["map"],
                  "rss_delta_mib": (after - before) / 1024.0,
                  "labels_per_clip": float(Y.sum(axis=1).mean()),
                  "rarest": int(Y.sum(axis=0).min()),
                  "strategy": head.model_.get_params().get("multi_strategy"),
                  "source": featurekit.__file__}))
"""


def measure(spec: dict) -> dict:
    """One fit and predict of the head in a fresh interpreter importing this checkout."""
    src = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)], env=env,
                          cwd=src.parent, check=True, capture_output=True, text=True)
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(answer["source"]).resolve().is_relative_to(src):
        raise RuntimeError(f"measured {answer['source']}, not featurekit from {src}")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2500,10000", help="training rows, comma-separated")
    parser.add_argument("--classes", default="56,200", help="classes, comma-separated")
    parser.add_argument("--columns", type=int, default=300, help="feature columns (300)")
    parser.add_argument("--test-rows", type=int, default=2500, help="held-out rows (2500)")
    parser.add_argument("--threads", default="1", help="threads per fit, comma-separated")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help="XGBoost multi_strategy values, comma-separated")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    args = parser.parse_args()
    print("| train rows | classes | strategy | threads | fit s | predict s | macro mAP "
          "| peak RSS Δ (MiB) | fit today / this |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for rows in (int(v) for v in args.rows.split(",")):
        for classes in (int(v) for v in args.classes.split(",")):
            for threads in (int(v) for v in args.threads.split(",")):
                reference = None
                for strategy in args.strategies.split(","):
                    answer = measure({"rows": rows, "test_rows": args.test_rows,
                                      "columns": args.columns, "classes": classes,
                                      "seed": args.seed, "threads": threads,
                                      "strategy": strategy})
                    if strategy == STRATEGIES[0]:
                        reference = answer["fit_s"]
                    ratio = f"{reference / answer['fit_s']:.2f}" if reference else ""
                    print(f"| {rows} | {classes} | {strategy} | {threads} "
                          f"| {answer['fit_s']:.2f} | {answer['predict_s']:.3f} "
                          f"| {answer['map']:.4f} | {answer['rss_delta_mib']:.0f} "
                          f"| {ratio} |", flush=True)
                    print(json.dumps({"rows": rows, "classes": classes, "threads": threads,
                                      **answer}), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
