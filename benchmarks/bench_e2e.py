"""Training cost of the end-to-end stream (:class:`featurekit.neural.e2e.E2EClassifier`).

Trains the default CNN once on the log-mel frames of a store's clips (all of them, or the first
``--clips``; early stopping holds out 15 % of the source recordings, as in the benchmark) and
prints a table: clips, torch threads, epochs run, seconds, seconds per epoch, and the cost of
one benchmark outer fold and repeat (the final network plus its ``--inner-splits``
out-of-fold twins, each on ``(k - 1) / k`` of the clips). The ``logmel`` branch must be in the
store (``featurekit benchmark --model e2e`` computes it).

    python benchmarks/bench_e2e.py --store stores --dataset urbansound8k \\
        --data-dir ../shared/data/urbansound8k-subset --threads 1,2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", required=True, help="dataset directory (recordings)")
    parser.add_argument("--clips", type=int, help="train on the first N clips (default all)")
    parser.add_argument("--threads", default="2", help="comma-separated torch thread counts")
    parser.add_argument("--inner-splits", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from featurekit.datasets import load_dataset
    from featurekit.neural.e2e import E2EClassifier
    from featurekit.neural.logmel import LOGMEL_BRANCH
    from featurekit.sequence import load_sequences
    from featurekit.store import FeatureStore

    store = FeatureStore(args.store)
    table = store.read(args.dataset, branches=[LOGMEL_BRANCH])
    if args.clips:
        table = table.iloc[:args.clips]
    recordings = load_dataset(args.dataset, args.data_dir).clips.set_index("clip_id")[
        "recording"]
    X = load_sequences(store, args.dataset, ["e2e"], table["clip_id"].tolist())["e2e"]
    y = table["label_id"].to_numpy()
    groups = table["clip_id"].map(recordings).fillna(table["clip_id"]).to_numpy()
    share = (args.inner_splits - 1) / args.inner_splits
    print(f"{args.dataset}: {len(y)} clips x {X.shape[1]} frames x {X.shape[2]} bands; "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print("| clips | threads | parameters | epochs | seconds | s/epoch | "
          f"outer fold + {args.inner_splits} twins (s, est.) |")
    print("|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        started = time.perf_counter()
        model = E2EClassifier(n_jobs=threads, random_state=args.seed).fit(X, y, groups=groups)
        seconds = time.perf_counter() - started
        per_epoch = seconds / model.n_epochs_
        # Twins train on (k-1)/k of the clips; epochs assumed the same as the final network's.
        outer = seconds * (1.0 + args.inner_splits * share)
        print(f"| {len(y)} | {threads} | {model.n_parameters_} | {model.n_epochs_} "
              f"(best {model.best_epoch_}) | {seconds:.0f} | {per_epoch:.1f} | {outer:.0f} |")
    accuracy = np.mean(model.predict(X) == y)
    print(f"(training-set accuracy of the last network {100 * accuracy:.1f} %: a sanity check, "
          f"not a score)")


if __name__ == "__main__":
    main()
