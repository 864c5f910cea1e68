"""Control for the joint sequence model: handcrafted information, or regularisation?

The joint model (one encoder per stream, gated blend, auxiliary losses, stream dropout) can beat
its CNN-stream-only twin for two reasons: the handcrafted streams carry information the CNN
lacks, or the extra streams merely regularise the CNN stream's training. This script separates
the two. By leave-one-fold-out over the store's folds, with seed ensembles, it trains

* the CNN stream alone,
* the joint model on the real handcrafted streams,
* the same joint model with the handcrafted streams' clips permuted (their label information
  destroyed, their distribution kept),

and prints accuracy per fold. If the permuted control matches the real streams, the gain is
regularisation, not handcrafted information.

Usage::

    python benchmarks/joint_control.py --store STORE --data-dir DIR [--dataset urbansound8k]
        [--model mn04_as] [--streams timbre spectral] [--seeds 3] [--first-seed 0]
        [--threads 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from featurekit.datasets import load_dataset
from featurekit.learn.torch.sequence import SequenceClassifier
from featurekit.store.reader import FeatureStore
from featurekit.store.sequences import load_sequences


def ensemble_accuracy(streams: dict[str, np.ndarray], labels: np.ndarray, groups: np.ndarray,
                      train: np.ndarray, test: np.ndarray, seeds: range, threads: int) -> float:
    """Accuracy (%) on ``test`` of the mean probabilities of one model per seed."""
    proba = np.mean([
        SequenceClassifier(random_state=seed, n_jobs=threads)
        .fit({name: values[train] for name, values in streams.items()}, labels[train],
             groups[train])
        .predict_proba({name: values[test] for name, values in streams.items()})
        for seed in seeds], axis=0)
    return 100.0 * float(np.mean(np.argmax(proba, axis=1) == labels[test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--dataset", default="urbansound8k")
    parser.add_argument("--data-dir", required=True, help="the dataset (for source recordings)")
    parser.add_argument("--model", default="mn04_as")
    parser.add_argument("--streams", nargs="+", default=["timbre", "spectral"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed .. first-seed + seeds - 1 (another draw)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    store = FeatureStore(args.store)
    clips = store.read(args.dataset, branches=["handcrafted"], columns=[])
    neural = f"neural.{args.model}"
    sequences = load_sequences(store, args.dataset, [*args.streams, neural],
                               clips["clip_id"].tolist())
    folds = clips["fold"].to_numpy()
    labels = clips["label_id"].to_numpy()
    # Early-stopping splits keep source recordings together, as in the benchmark.
    recordings = load_dataset(args.dataset, args.data_dir).clips.set_index("clip_id")["recording"]
    groups = pd.factorize(clips["clip_id"].map(recordings).astype(str))[0]
    permutation = np.random.default_rng(0).permutation(len(clips))
    permuted = {name: (values[permutation] if name != neural else values)
                for name, values in sequences.items()}
    variants = {f"{neural} alone": {neural: sequences[neural]},
                "joint, real handcrafted": sequences,
                "joint, permuted handcrafted": permuted}
    fold_ids = sorted(set(folds.tolist()))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"{args.dataset}: streams {' + '.join(args.streams)} + {neural}, ensembles of "
          f"seeds {seeds.start}-{seeds.stop - 1}, leave-one-fold-out over folds {fold_ids}")
    print(f"| {'system':32s} | " + " | ".join(f"fold {f:>2d}" for f in fold_ids)
          + " |   mean |")
    print(f"|{'-' * 34}|" + "|".join("--------:" for _ in fold_ids) + "|-------:|")
    for label, streams in variants.items():
        accuracies = [ensemble_accuracy(streams, labels, groups,
                                        np.flatnonzero(folds != fold),
                                        np.flatnonzero(folds == fold),
                                        seeds, args.threads)
                      for fold in fold_ids]
        print(f"| {label:32s} | " + " | ".join(f"{a:7.1f}" for a in accuracies)
              + f" | {np.mean(accuracies):6.1f} |", flush=True)


if __name__ == "__main__":
    main()
