"""The e2e CNN on one training fold split by recording (development evidence, no test fold).

Trains :class:`featurekit.neural.e2e.E2EClassifier` with its defaults on three quarters of the
source recordings of one fold and prints its accuracy on the held-out quarter, for each seed.
Used to compare variants of the network on training data only (e.g. run it with
``PYTHONPATH`` pointing at a checkout of another commit). The ``logmel`` branch must be in the
store.

    python benchmarks/e2e_dev_split.py --store S --data-dir ../shared/data/urbansound8k-subset \\
        --fold 2 --seeds 0,1
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--dataset", default="urbansound8k")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--fold", type=int, required=True)
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--split-seed", type=int, default=123)
    args = parser.parse_args()

    from featurekit.datasets import load_dataset
    from featurekit.neural.e2e import E2EClassifier
    from featurekit.neural.logmel import LOGMEL_BRANCH
    from featurekit.sequence import load_sequences
    from featurekit.store import FeatureStore

    store = FeatureStore(args.store)
    table = store.read(args.dataset, branches=[LOGMEL_BRANCH])
    table = table[table["fold"] == args.fold].reset_index(drop=True)
    recordings = load_dataset(args.dataset, args.data_dir).clips.set_index("clip_id")[
        "recording"]
    X = load_sequences(store, args.dataset, ["e2e"], table["clip_id"].tolist())["e2e"]
    y = table["label_id"].to_numpy()
    groups = table["clip_id"].map(recordings).fillna(table["clip_id"]).to_numpy()
    rng = np.random.default_rng(args.split_seed)
    names = np.unique(groups)
    held = np.isin(groups, rng.choice(names, size=len(names) // 4, replace=False))
    print(f"{args.dataset} fold {args.fold}: {int((~held).sum())} training clips, "
          f"{int(held.sum())} held-out clips of other recordings")
    print("| seed | accuracy (%) | epochs | best epoch | seconds |")
    print("|---|---|---|---|---|")
    for seed in (int(s) for s in args.seeds.split(",")):
        started = time.perf_counter()
        model = E2EClassifier(random_state=seed).fit(X[~held], y[~held], groups=groups[~held])
        accuracy = 100 * np.mean(model.predict(X[held]) == y[held])
        print(f"| {seed} | {accuracy:.1f} | {model.n_epochs_} | {model.best_epoch_} | "
              f"{time.perf_counter() - started:.0f} |")


if __name__ == "__main__":
    main()
