"""Training cost and development accuracy of the end-to-end stream (the e2e CNN).

Trains the default CNN on the log-mel frames of a store's clips (early stopping holds out 15 %
of the source recordings, as in the benchmark) and prints a table: clips, torch threads, seed,
epochs run, seconds, seconds per epoch, and the cost of one benchmark outer fold and repeat (the
final network plus its ``--inner-splits`` out-of-fold twins, each on ``(k - 1) / k`` of the
clips, estimated with the same number of epochs). It trains on every clip (or the first
``--clips``), or with ``--dev-fold F`` on three quarters of fold F's source recordings and also
prints the accuracy on the held-out quarter: development evidence from a training fold, never
a test score (run it with ``PYTHONPATH`` at another checkout to compare variants). The
``logmel`` branch must be in the store (``featurekit benchmark --model e2e`` computes it).

    python benchmarks/bench_e2e.py --store S --dataset urbansound8k \\
        --data-dir ../shared/data/urbansound8k-subset --threads 2
    python benchmarks/bench_e2e.py --store S --dataset urbansound8k \\
        --data-dir ../shared/data/urbansound8k-subset --dev-fold 2 --seeds 0,1
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
    parser.add_argument("--dev-fold", type=int,
                        help="train on 3/4 of this fold's recordings, score the other 1/4")
    parser.add_argument("--split-seed", type=int, default=123, help="draw of --dev-fold")
    parser.add_argument("--threads", default="2", help="comma-separated torch thread counts")
    parser.add_argument("--seeds", default="0", help="comma-separated network seeds")
    parser.add_argument("--inner-splits", type=int, default=3)
    args = parser.parse_args()

    from featurekit.datasets import load_dataset
    from featurekit.learn.torch.e2e import E2EClassifier
    from featurekit.names import LOGMEL_BRANCH
    from featurekit.store.reader import FeatureStore
    from featurekit.store.sequences import load_sequences

    store = FeatureStore(args.store)
    table = store.read(args.dataset, branches=[LOGMEL_BRANCH])
    if args.dev_fold is not None:
        table = table[table["fold"] == args.dev_fold].reset_index(drop=True)
    if args.clips:
        table = table.iloc[:args.clips]
    recordings = load_dataset(args.dataset, args.data_dir).clips.set_index("clip_id")[
        "recording"]
    X = load_sequences(store, args.dataset, ["e2e"], table["clip_id"].tolist())["e2e"]
    y = table["label_id"].to_numpy()
    groups = table["clip_id"].map(recordings).fillna(table["clip_id"]).to_numpy()
    held = np.zeros(len(y), dtype=bool)
    if args.dev_fold is not None:
        names = np.unique(groups)
        rng = np.random.default_rng(args.split_seed)
        held = np.isin(groups, rng.choice(names, size=len(names) // 4, replace=False))
    train = ~held
    share = (args.inner_splits - 1) / args.inner_splits
    print(f"{args.dataset}: {int(train.sum())} training clips x {X.shape[1]} frames x "
          f"{X.shape[2]} bands, {int(held.sum())} held out; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| clips | threads | seed | parameters | epochs | seconds | s/epoch | "
          f"outer fold + {args.inner_splits} twins (s, est.) | held-out accuracy (%) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.perf_counter()
            model = E2EClassifier(n_jobs=threads, random_state=seed).fit(
                X[train], y[train], groups=groups[train])
            seconds = time.perf_counter() - started
            # Twins train on (k-1)/k of the clips; epochs assumed the same as the final one's.
            outer = seconds * (1.0 + args.inner_splits * share)
            accuracy = (f"{100 * np.mean(model.predict(X[held]) == y[held]):.1f}"
                        if held.any() else "-")
            print(f"| {int(train.sum())} | {threads} | {seed} | {model.n_parameters_} | "
                  f"{model.n_epochs_} (best {model.best_epoch_}) | {seconds:.0f} | "
                  f"{seconds / model.n_epochs_:.1f} | {outer:.0f} | {accuracy} |")


if __name__ == "__main__":
    main()
