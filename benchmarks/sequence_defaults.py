"""Defaults of the sequence head (pooling, stream dropout, contrastive weight), by folds.

Candidates of :class:`featurekit.learn.torch.sequence.SequenceClassifier` are fitted once per outer
fold
and seed on the other folds' clips, with the clips' source recordings as ``groups`` (the
early-stopping split keeps recordings together, as in the benchmark), one torch thread per fit
and ``--jobs`` fits in parallel; everything else is the class default. Candidates:

* ``pooling`` in {``mean``, ``meanstd``} for the ``timbre`` stream alone and the
  ``neural.<model>`` stream alone;
* ``stream_dropout`` in {0.0, 0.2, 0.4} for the joint model of ``timbre``, ``spectral`` and
  ``neural.<model>`` (pooling: ``--joint-pooling``);
* ``contrastive_weight`` in ``--contrastive-weights`` (default {0.0, 0.1, 0.5}) for the same
  joint model with ``contrastive_temperature`` ``--contrastive-temperature`` (0.1) and
  ``stream_dropout=0`` (``--only contrastive``).

Per candidate the table gives test accuracy (mean +- sd over the outer folds of the seeds'
mean), log-loss, their paired differences to the first candidate of the same input (mean +- sd
over folds), macro-F1, the accuracy of the seeds' mean probabilities, wall seconds per ``fit``
(noisy on a shared machine) and epochs run; for the joint model also the mean gate weight of
the neural stream on the test clips.

Defaults are chosen on ESC-10 only (never on the UrbanSound8K folds the README reports); see
``benchmarks/notes/sequence.md`` (pooling, stream dropout) and
``benchmarks/notes/contrastive.md`` (contrastive weight) for the store-building commands and
the decisions::

    python benchmarks/sequence_defaults.py --store STORE --data-dir /work/shared/data/esc10 \
        --seeds 0 1 --jobs 2
    python benchmarks/sequence_defaults.py --store STORE --data-dir /work/shared/data/esc10 \
        --only contrastive --seeds 0 1 --jobs 2

``--dataset urbansound8k`` is refused unless ``--report`` says that the run reports values
already chosen (for instance ``--only contrastive --contrastive-weights 0 0.1 --report``) rather
than chooses them.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.metrics import accuracy_score, f1_score, log_loss

from featurekit.datasets import load_dataset
from featurekit.learn.torch.sequence import SequenceClassifier
from featurekit.store.reader import FeatureStore
from featurekit.store.sequences import load_sequences

JOINT_STREAMS = ("timbre", "spectral")


def candidates(model: str, joint_pooling: str, contrastive_weights: tuple[float, ...] = (),
               contrastive_temperature: float = 0.1
               ) -> list[tuple[str, str, tuple[str, ...], dict]]:
    """(group, input label, streams, parameters) of every candidate, reference first per
    input; groups are the ``--only`` choices."""
    neural = f"neural.{model}"
    out: list[tuple[str, str, tuple[str, ...], dict]] = []
    for stream in ("timbre", neural):
        for pooling in ("mean", "meanstd"):
            out.append(("single", stream, (stream,), {"pooling": pooling}))
    for dropout in (0.0, 0.2, 0.4):
        out.append(("joint", "joint", (*JOINT_STREAMS, neural),
                    {"pooling": joint_pooling, "stream_dropout": dropout}))
    for weight in contrastive_weights:
        out.append(("contrastive", "joint (contrastive)", (*JOINT_STREAMS, neural),
                    {"pooling": joint_pooling, "stream_dropout": 0.0,
                     "contrastive_weight": float(weight),
                     "contrastive_temperature": contrastive_temperature}))
    return out


def fit_one(sequences: dict[str, np.ndarray], streams: tuple[str, ...], params: dict,
            labels: np.ndarray, groups: np.ndarray, train: np.ndarray, test: np.ndarray,
            seed: int) -> dict[str, Any]:
    """Fit one candidate on ``train`` and score it on ``test``."""
    X = {name: sequences[name] for name in streams}
    single = len(streams) == 1
    model = SequenceClassifier(random_state=seed, n_jobs=1, device="cpu", **params)
    start = time.perf_counter()
    model.fit(X[streams[0]][train] if single else {k: v[train] for k, v in X.items()},
              labels[train], groups[train])
    seconds = time.perf_counter() - start
    test_X = X[streams[0]][test] if single else {k: v[test] for k, v in X.items()}
    proba = model.predict_proba(test_X)
    weight = np.nan if single else float(model.stream_weights(test_X)[:, -1].mean())
    return {"proba": proba, "classes": model.classes_, "seconds": seconds,
            "epochs": model.n_epochs_, "neural_weight": weight}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--dataset", default="esc10")
    parser.add_argument("--data-dir", required=True, help="the dataset (for source recordings)")
    parser.add_argument("--model", default="mn04_as")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2, help="fits in parallel")
    parser.add_argument("--joint-pooling", default="meanstd", choices=["mean", "meanstd"])
    parser.add_argument("--only", nargs="+", choices=["single", "joint", "contrastive"],
                        default=["single", "joint"],
                        help="subset of candidates to run (contrastive: the joint model's "
                             "contrastive_weight candidates)")
    parser.add_argument("--contrastive-weights", type=float, nargs="+", default=[0.0, 0.1, 0.5],
                        help="contrastive_weight candidates, the reference first")
    parser.add_argument("--contrastive-temperature", type=float, default=0.1)
    parser.add_argument("--report", action="store_true",
                        help="this run reports values already chosen (allows urbansound8k)")
    args = parser.parse_args()
    if args.dataset == "urbansound8k" and not args.report:
        parser.error("defaults are chosen on ESC-10 only; pass --report to report values "
                     "already chosen on UrbanSound8K")

    store = FeatureStore(args.store)
    clips = store.read(args.dataset, branches=["handcrafted"], columns=[])
    neural = f"neural.{args.model}"
    sequences = load_sequences(store, args.dataset, [*JOINT_STREAMS, neural],
                               clips["clip_id"].tolist())
    folds = clips["fold"].to_numpy()
    labels = clips["label_id"].to_numpy()
    recordings = load_dataset(args.dataset, args.data_dir).clips.set_index("clip_id")["recording"]
    groups = pd.factorize(clips["clip_id"].map(recordings).astype(str))[0]
    fold_ids = sorted(set(folds.tolist()))

    chosen = [c[1:] for c in candidates(args.model, args.joint_pooling,
                                        tuple(args.contrastive_weights),
                                        args.contrastive_temperature)
              if c[0] in args.only]
    tasks = [(i, fold, seed) for i in range(len(chosen)) for fold in fold_ids
             for seed in args.seeds]
    print(f"{args.dataset}: {len(clips)} clips, folds {fold_ids}, seeds {args.seeds}, "
          f"{len(tasks)} fits on {args.jobs} workers", flush=True)
    started = time.perf_counter()
    results = Parallel(n_jobs=args.jobs, verbose=0)(
        delayed(fit_one)(sequences, chosen[i][1], chosen[i][2], labels, groups,
                         np.flatnonzero(folds != fold), np.flatnonzero(folds == fold), seed)
        for i, fold, seed in tasks)
    by_task = dict(zip(tasks, results, strict=True))
    wall = time.perf_counter() - started

    rows = []
    for i, (label, _streams, params) in enumerate(chosen):
        per_fold = []
        for fold in fold_ids:
            test = folds == fold
            runs = [by_task[(i, fold, seed)] for seed in args.seeds]
            classes = runs[0]["classes"]
            proba = np.mean([run["proba"] for run in runs], axis=0)  # seed ensemble
            y = labels[test]
            accuracies = [accuracy_score(y, classes[np.argmax(run["proba"], axis=1)])
                          for run in runs]
            per_fold.append({
                "accuracy": 100.0 * float(np.mean(accuracies)),
                "log_loss": float(np.mean([log_loss(y, run["proba"], labels=classes)
                                           for run in runs])),
                "macro_f1": 100.0 * float(np.mean([
                    f1_score(y, classes[np.argmax(run["proba"], axis=1)], average="macro")
                    for run in runs])),
                "ensemble_accuracy": 100.0 * accuracy_score(y, classes[np.argmax(proba, 1)]),
                "seconds": float(np.mean([run["seconds"] for run in runs])),
                "epochs": float(np.mean([run["epochs"] for run in runs])),
                "neural_weight": float(np.mean([run["neural_weight"] for run in runs])),
            })
        rows.append({"input": label, "params": params, "folds": pd.DataFrame(per_fold)})

    print(f"\n| input | candidate | accuracy % | Δ acc (pp) | log-loss | Δ log-loss | macro-F1 % | "
          f"{len(args.seeds)}-seed ens. acc % | s / fit | epochs | w(neural) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    reference: dict[str, pd.DataFrame] = {}
    for row in rows:
        table = row["folds"]
        reference.setdefault(row["input"], table)
        delta = table["accuracy"] - reference[row["input"]]["accuracy"]
        delta_loss = table["log_loss"] - reference[row["input"]]["log_loss"]
        name = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        weight = table["neural_weight"].mean()
        print(f"| {row['input']} | {name} "
              f"| {table['accuracy'].mean():.1f} ± {table['accuracy'].std(ddof=1):.1f} "
              f"| {delta.mean():+.1f} ± {delta.std(ddof=1):.1f} "
              f"| {table['log_loss'].mean():.3f} "
              f"| {delta_loss.mean():+.3f} ± {delta_loss.std(ddof=1):.3f} "
              f"| {table['macro_f1'].mean():.1f} "
              f"| {table['ensemble_accuracy'].mean():.1f} "
              f"| {table['seconds'].mean():.1f} | {table['epochs'].mean():.1f} "
              f"| {'' if np.isnan(weight) else f'{weight:.2f}'} |")
    for column, title, digits in (("accuracy", "accuracy % (seed mean)", 1),
                                  ("log_loss", "log-loss (seed mean)", 3)):
        print(f"\nPer-fold {title}, folds {fold_ids}:")
        names = [", ".join(f"{k}={v}" for k, v in row["params"].items()) for row in rows]
        width = max(36, *(len(name) for name in names))
        for row, name in zip(rows, names, strict=True):
            print(f"  {row['input']:19s} {name:{width}s} "
                  + " ".join(f"{a:6.{digits}f}" for a in row["folds"][column]))
    print(f"\n{len(tasks)} fits in {wall / 60:.1f} min of wall time on {args.jobs} workers")


if __name__ == "__main__":
    main()
