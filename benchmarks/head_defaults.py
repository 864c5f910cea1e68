"""Accuracy and cost of candidate head settings, leave-one-fold-out on a feature store.

Every candidate (a head class and its parameters) is fitted once per outer fold, branch and
seed on the other folds' clips, with the clips' source recordings as ``groups`` (what the
benchmark passes), one BLAS/OpenMP thread per fit and ``--jobs`` fits in parallel. The table
gives, per candidate, the test accuracy per branch (mean over folds and seeds), its mean over
branches, the CPU and wall seconds per ``fit`` (with one thread, CPU seconds are the wall time
on an idle core and depend little on other load on the machine) and the mean number of
boosting rounds or epochs of the final model.

The ``old-*`` candidates are the heads as committed at ``--baseline-rev`` (the defaults before
this study), loaded from git; ``old-*-folds`` pass the official folds as ``groups`` (what the
benchmark passed before), ``old-*-recs`` the recordings.

The third round (``--finalists``) judges fixed finalists by a rule fixed beforehand
(:data:`RULE`), once on each dataset; the settings a dataset chooses are never used for that
dataset's own figures (``benchmarks/notes/heads.md``)::

    python benchmarks/head_defaults.py --store S --dataset esc10 \
        --data ../shared/data/esc10 --seeds 0 1 --finalists
    python benchmarks/head_defaults.py --store S --dataset urbansound8k \
        --data ../shared/data/urbansound8k-subset --seeds 0 1 --finalists
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold
from threadpoolctl import threadpool_limits

from featurekit import FeatureStore, load_dataset
from featurekit.config import FAMILIES
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.heads.mlp import MLPHead
from featurekit.learn.heads.xgb import XGBHead

HANDCRAFTED = tuple(f"{family}." for family in FAMILIES)
BRANCHES = {"timbre": ("timbre.",), "spectral": ("spectral.",),
            "neural": ("neural.mn04_as.",), "handcrafted": HANDCRAFTED,
            "all": (*HANDCRAFTED, "neural.mn04_as.")}

def _xgb(**params: Any) -> tuple[str, dict[str, Any], str]:
    """An XGBHead candidate that stops early unless its parameters say otherwise (the studies
    of early-stopping schemes predate the head's fixed-rounds default)."""
    return ("xgb", {"early_stopping": True, **params}, "recs")


def _mlp(**params: Any) -> tuple[str, dict[str, Any], str]:
    return ("mlp", params, "recs")


# name -> (head class name or "old-xgb"/"old-mlp", parameters, groups: "recs" or "folds");
# the new heads always get the recordings as groups.
CANDIDATES: dict[str, tuple[str, dict[str, Any], str]] = {
    "old-xgb-folds": ("old-xgb", {}, "folds"),
    "old-xgb-recs": ("old-xgb", {}, "recs"),
    "old-mlp-folds": ("old-mlp", {}, "folds"),
    "old-mlp-recs": ("old-mlp", {}, "recs"),
    # XGBoost: early-stopping scheme at the old tree settings
    "xgb-noref-p10": _xgb(refit=False, early_stopping_rounds=10, stopping_metric="logloss"),
    "xgb-ref-p10": _xgb(refit=True, early_stopping_rounds=10, stopping_metric="logloss"),
    "xgb-ref-p20": _xgb(refit=True, early_stopping_rounds=20, stopping_metric="logloss"),
    "xgb-ref-err-p20": _xgb(refit=True, early_stopping_rounds=20, stopping_metric="error"),
    # XGBoost: cheaper rounds
    "xgb-ref-p10-lr3-b16-c2": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.3,
                                   max_bin=16, colsample_bytree=0.2),
    "xgb-ref-p20-lr3-b16-c2": _xgb(refit=True, early_stopping_rounds=20, learning_rate=0.3,
                                   max_bin=16, colsample_bytree=0.2),
    "xgb-ref-p10-lr4-b16-c2": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.4,
                                   max_bin=16, colsample_bytree=0.2),
    "xgb-ref-p10-lr3-b16-c1": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.3,
                                   max_bin=16, colsample_bytree=0.1),
    "xgb-ref-p10-lr4-b16": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.4,
                                max_bin=16),
    "xgb-noref-err-p20": _xgb(refit=False, early_stopping_rounds=20, stopping_metric="error"),
    "xgb-noref-err-p20-lr4-b16": _xgb(refit=False, early_stopping_rounds=20,
                                      stopping_metric="error", learning_rate=0.4, max_bin=16),
    # MLP: early-stopping scheme at the old network settings
    "mlp-noref-err-p10": _mlp(refit=False, stopping_metric="error"),
    "mlp-noref-loss-p10": _mlp(refit=False, stopping_metric="logloss"),
    "mlp-ref-err-p10": _mlp(refit=True, stopping_metric="error"),
    "mlp-ref-loss-p10": _mlp(refit=True, stopping_metric="logloss"),
    "mlp-ref-err-p20": _mlp(refit=True, stopping_metric="error", n_iter_no_change=20),
    # MLP: cheaper epochs
    "mlp-noref-err-b256-lr2": _mlp(refit=False, stopping_metric="error", batch_size=256,
                                   learning_rate_init=0.002),
    "mlp-ref-err-b256-lr2": _mlp(refit=True, stopping_metric="error", batch_size=256,
                                 learning_rate_init=0.002),
    "mlp-ref-loss-b256-lr2": _mlp(refit=True, stopping_metric="logloss", batch_size=256,
                                  learning_rate_init=0.002),
    "mlp-noref-err-h128-b256-lr2": _mlp(refit=False, stopping_metric="error",
                                        hidden_layer_sizes=(128,), batch_size=256,
                                        learning_rate_init=0.002),
    "xgb-ref-p10-lr4-b16-c1": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.4,
                                   max_bin=16, colsample_bytree=0.1),
    "xgb-ref-p5-lr4-b16-c2": _xgb(refit=True, early_stopping_rounds=5, learning_rate=0.4,
                                  max_bin=16, colsample_bytree=0.2),
    "xgb-ref-p10-lr5-b8-c1": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.5,
                                  max_bin=8, colsample_bytree=0.1),
    "mlp-noref-err-h128-b256-lr3": _mlp(refit=False, stopping_metric="error",
                                        hidden_layer_sizes=(128,), batch_size=256,
                                        learning_rate_init=0.003),
    "mlp-noref-err-h128-b256-lr2-p5": _mlp(refit=False, stopping_metric="error",
                                           hidden_layer_sizes=(128,), batch_size=256,
                                           learning_rate_init=0.002, n_iter_no_change=5),
    "mlp-noref-loss-h128-b256-lr2": _mlp(refit=False, stopping_metric="logloss",
                                         hidden_layer_sizes=(128,), batch_size=256,
                                         learning_rate_init=0.002),
    "mlp-noref-err-h64-b256-lr3": _mlp(refit=False, stopping_metric="error",
                                       hidden_layer_sizes=(64,), batch_size=256,
                                       learning_rate_init=0.003),
    # development round on one UrbanSound8K training fold (many clips per recording)
    "xgb-ref-p10-lr3-b16-c1-err": _xgb(refit=True, early_stopping_rounds=10, learning_rate=0.3,
                                       max_bin=16, colsample_bytree=0.1, stopping_metric="error"),
    "xgb-ref-p30-lr3-b16-c1": _xgb(refit=True, early_stopping_rounds=30, learning_rate=0.3,
                                   max_bin=16, colsample_bytree=0.1),
    "xgb-ref-p30-lr3-b16-c1-err": _xgb(refit=True, early_stopping_rounds=30, learning_rate=0.3,
                                       max_bin=16, colsample_bytree=0.1, stopping_metric="error"),
    "xgb-ref-p30-err": _xgb(refit=True, early_stopping_rounds=30, stopping_metric="error"),
    "mlp-noref-err-h64-b256-lr3-p30": _mlp(refit=False, stopping_metric="error",
                                           hidden_layer_sizes=(64,), batch_size=256,
                                           learning_rate_init=0.003, n_iter_no_change=30),
    "mlp-ref-err-h64-b256-lr3-p30": _mlp(refit=True, stopping_metric="error",
                                         hidden_layer_sizes=(64,), batch_size=256,
                                         learning_rate_init=0.003, n_iter_no_change=30),
    "mlp-noref-err-p30": _mlp(refit=False, stopping_metric="error", n_iter_no_change=30),
    "xgb-fixed60-lr3-b16-c1": _xgb(early_stopping=False, n_estimators=60, learning_rate=0.3,
                                   max_bin=16, colsample_bytree=0.1),
    "xgb-fixed100-lr2-b16-c1": _xgb(early_stopping=False, n_estimators=100, learning_rate=0.2,
                                    max_bin=16, colsample_bytree=0.1),
    "xgb-fixed100-old-trees": _xgb(early_stopping=False, n_estimators=100, learning_rate=0.2,
                                   max_bin=32, colsample_bytree=0.3),
    "xgb-fixed60-lr3-b32-c3": _xgb(early_stopping=False, n_estimators=60, learning_rate=0.3,
                                   max_bin=32, colsample_bytree=0.3),
    "xgb-fixed40-lr4-b16-c1": _xgb(early_stopping=False, n_estimators=40, learning_rate=0.4,
                                   max_bin=16, colsample_bytree=0.1),
    "xgb-fixed100-lr2-b16-c1-ss5": _xgb(early_stopping=False, n_estimators=100, learning_rate=0.2,
                                        max_bin=16, colsample_bytree=0.1, subsample=0.5),
    "xgb-fixed100-lr2-b16-c1-d3": _xgb(early_stopping=False, n_estimators=100, learning_rate=0.2,
                                       max_bin=16, colsample_bytree=0.1, max_depth=3),
    "xgb-fixed70-lr3-b16-c1-ss5": _xgb(early_stopping=False, n_estimators=70, learning_rate=0.3,
                                       max_bin=16, colsample_bytree=0.1, subsample=0.5),
    # the current defaults of featurekit.learn.heads, whatever they are
    "xgb": ("xgb", {}, "recs"),
    "mlp": ("mlp", {}, "recs"),
    "logreg": ("logreg", {}, "recs"),
}

# Third round (issue 20, item 9): the finalists, every parameter that differs between them
# written out, so that a later change of a class default cannot change what a name means.
# Each is judged by :data:`RULE` on ESC-10 alone and on UrbanSound8K folds 1-2 alone; the
# settings chosen on one dataset are the ones its figures may *not* use.
_TREES = {"max_depth": 4, "subsample": 0.8, "refit": True}
_NET = {"batch_size": 256, "learning_rate_init": 0.003, "alpha": 1e-3, "refit": True,
        "stopping_metric": "error", "n_iter_no_change": 30, "early_stopping": "auto"}
FINALISTS: dict[str, tuple[str, dict[str, Any], str]] = {
    "xgb-fixed100-lr2-b16-c1": ("xgb", {**_TREES, "early_stopping": False, "n_estimators": 100,
                                        "learning_rate": 0.2, "max_bin": 16,
                                        "colsample_bytree": 0.1}, "recs"),
    "xgb-fixed100-lr2-b32-c3": ("xgb", {**_TREES, "early_stopping": False, "n_estimators": 100,
                                        "learning_rate": 0.2, "max_bin": 32,
                                        "colsample_bytree": 0.3}, "recs"),
    "xgb-fixed60-lr3-b16-c1": ("xgb", {**_TREES, "early_stopping": False, "n_estimators": 60,
                                       "learning_rate": 0.3, "max_bin": 16,
                                       "colsample_bytree": 0.1}, "recs"),
    "xgb-fixed200-lr1-b16-c1": ("xgb", {**_TREES, "early_stopping": False,
                                        "n_estimators": 200, "learning_rate": 0.1,
                                        "max_bin": 16, "colsample_bytree": 0.1}, "recs"),
    "xgb-stop30-lr2-b16-c1": ("xgb", {**_TREES, "early_stopping": True, "n_estimators": 300,
                                      "early_stopping_rounds": 30, "stopping_metric": "logloss",
                                      "learning_rate": 0.2, "max_bin": 16,
                                      "colsample_bytree": 0.1}, "recs"),
    "mlp-h64-refit": ("mlp", {**_NET, "hidden_layer_sizes": (64,)}, "recs"),
    "mlp-h64-best-epoch": ("mlp", {**_NET, "hidden_layer_sizes": (64,), "refit": False},
                           "recs"),
    "mlp-h256-refit": ("mlp", {**_NET, "hidden_layer_sizes": (256,)}, "recs"),
    "mlp-h64-refit-logloss": ("mlp", {**_NET, "hidden_layer_sizes": (64,),
                                      "stopping_metric": "logloss"}, "recs"),
    "mlp-h64-refit-a1e-2": ("mlp", {**_NET, "hidden_layer_sizes": (64,), "alpha": 1e-2},
                            "recs"),
    "logreg-C0.01": ("logreg", {"C": 0.01}, "recs"),
    "logreg-C0.1": ("logreg", {"C": 0.1}, "recs"),
    "logreg-C1": ("logreg", {"C": 1.0}, "recs"),
}
CANDIDATES.update(FINALISTS)

#: Fixed before the third round was run: per head kind, the finalist with the best mean
#: accuracy over the branches; finalists within this many points of it are ties, and the tie
#: goes to the cheapest (CPU seconds per fit).
TIE_PP = 0.5
RULE = (f"per head kind, the best mean accuracy over the branches; within {TIE_PP} pp of it "
        "counts as a tie, won by the lowest CPU seconds per fit")


def choose(rows: list[dict[str, Any]]) -> dict[str, str]:
    """The finalist :data:`RULE` picks for each head kind among ``rows`` (one per candidate)."""
    chosen = {}
    for kind in dict.fromkeys(CANDIDATES[row["candidate"]][0] for row in rows):
        mine = [row for row in rows if CANDIDATES[row["candidate"]][0] == kind]
        best = max(row["mean"] for row in mine)
        ties = [row for row in mine if row["mean"] >= best - TIE_PP]
        chosen[kind] = min(ties, key=lambda row: row["cpu s/fit"])["candidate"]
    return chosen


REPO = Path(__file__).resolve().parents[1]


def load_old_heads(rev: str) -> Any:
    """The ``featurekit/heads.py`` of git revision ``rev`` as a module."""
    source = subprocess.run(["git", "show", f"{rev}:featurekit/heads.py"], check=True,
                            capture_output=True, text=True, cwd=REPO).stdout
    path = Path(tempfile.mkdtemp()) / "old_heads.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_heads", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_heads"] = module
    spec.loader.exec_module(module)
    cloudpickle.register_pickle_by_value(module)  # the workers cannot import it
    return module


def factory(kind: str, params: dict[str, Any], rev: str) -> Callable[[int], Any]:
    if kind.startswith("old-"):
        old = load_old_heads(rev)
        cls = old.XGBHead if kind == "old-xgb" else old.MLPHead
    elif kind == "logreg":
        return lambda seed: LogRegHead(**params)
    else:
        cls = XGBHead if kind == "xgb" else MLPHead
    return lambda seed: cls(random_state=seed, **params)


def fit_one(build: Callable[[int], Any], X: np.ndarray, y: np.ndarray, groups: np.ndarray,
            train: np.ndarray, seed: int) -> tuple[float, float, float, int]:
    """Test accuracy, wall and CPU seconds of fit, rounds/epochs of the final model."""
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head = build(seed)
        start, cpu_start = time.perf_counter(), time.process_time()
        head.fit(X[train], y[train], groups=groups[train])
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        accuracy = float(np.mean(head.predict(X[~train]) == y[~train]))
    size = getattr(head, "n_rounds_", None) or getattr(head, "n_iter_", None)
    if size is None and hasattr(head, "pipeline_"):
        size = head.pipeline_[-1].n_iter_
    return accuracy, seconds, cpu_seconds, int(size or 0)


def main() -> None:
    global REPO
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="/work/main/stores")
    parser.add_argument("--dataset", default="esc10")
    parser.add_argument("--data", default="/work/shared/data/esc10",
                        help="dataset directory (for the clips' source recordings)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    parser.add_argument("--finalists", action="store_true",
                        help="the third round's finalists (overrides --candidates)")
    parser.add_argument("--branches", nargs="+", default=list(BRANCHES))
    parser.add_argument("--baseline-rev", default="ec91f9f")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--dev-fold", type=int,
                        help="development protocol: use only this official fold, split into 3 "
                             "folds by source recording (stratified), leave-one-out over them")
    parser.add_argument("--repo", type=Path, default=REPO, help="git checkout for the baseline")
    args = parser.parse_args()
    REPO = args.repo
    if args.finalists:
        args.candidates = list(FINALISTS)

    table = FeatureStore(args.store).read(args.dataset,
                                          branches=["handcrafted", "neural.mn04_as"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clips = load_dataset(args.dataset, args.data).clips
    table = table.merge(clips[["clip_id", "recording"]], on="clip_id", how="left",
                        validate="one_to_one")
    if table["recording"].isna().any():
        raise SystemExit("some clips have no recording id")
    if args.dev_fold is not None:
        # Only one (training) fold's clips: the other folds' labels take no part in a choice.
        table = table[table["fold"] == args.dev_fold].reset_index(drop=True)
        splitter = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=0)
        table["fold"] = 0
        for index, (_, val) in enumerate(splitter.split(table, table["label_id"],
                                                        table["recording"])):
            table.loc[val, "fold"] = index + 1
    y = table["label_id"].to_numpy()
    folds = table["fold"].to_numpy()
    groups_by = {"recs": pd.factorize(table["recording"])[0], "folds": folds}
    print(f"{args.dataset}: {len(table)} clips, {np.unique(folds).size} folds, "
          f"{table['recording'].nunique()} recordings; seeds {args.seeds}")

    rows = []
    for name in args.candidates:
        kind, params, grouping = CANDIDATES[name]
        build = factory(kind, params, args.baseline_rev)
        result: dict[str, Any] = {"candidate": name}
        seconds, cpu_seconds, sizes, means = [], [], [], []
        for branch in args.branches:
            columns = [c for c in table.columns if c.startswith(BRANCHES[branch])]
            X = np.array(table[columns], dtype=np.float64)
            X[~np.isfinite(X)] = np.nan
            jobs = [delayed(fit_one)(build, X, y, groups_by[grouping], folds != fold, seed)
                    for fold in np.unique(folds) for seed in args.seeds]
            out = Parallel(n_jobs=args.jobs)(jobs)
            accuracy = 100 * float(np.mean([a for a, _, _, _ in out]))
            result[branch] = round(accuracy, 2)
            means.append(accuracy)
            seconds += [s for _, s, _, _ in out]
            cpu_seconds += [c for _, _, c, _ in out]
            sizes += [n for _, _, _, n in out]
        result["mean"] = round(float(np.mean(means)), 2)
        result["cpu s/fit"] = round(float(np.mean(cpu_seconds)), 3)
        result["wall s/fit"] = round(float(np.mean(seconds)), 3)
        result["rounds"] = round(float(np.mean(sizes)), 1)
        rows.append(result)
        print(pd.DataFrame([result]).to_string(index=False, header=len(rows) == 1),
              flush=True)
    print()
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[key]) for key in header) + " |")
    print(f"\nchosen ({RULE}):")
    for kind, name in choose(rows).items():
        print(f"  {kind}: {name} {CANDIDATES[name][1]}")


if __name__ == "__main__":
    main()
