"""Training cost of the sequence head: one outer fold, each stream alone and jointly.

Reads frame sequences from a feature store filled with ``featurekit extract --frames`` and
``featurekit embed --frames`` (or by ``featurekit benchmark --heads seq``), trains the default
:class:`featurekit.learn.torch.sequence.SequenceClassifier` on one fold's clips, and prints, per
stream
(and for the joint model of all streams): sequence shape, encoder parameters, epochs run,
wall seconds of ``fit`` and the accuracy on the next fold. The issue's budget is < 0.5 M
parameters per encoder and < 2 minutes per fold on 2 cores.

Usage::

    python benchmarks/bench_sequence.py --store STORE [--dataset urbansound8k]
        [--model mn04_as] [--train-fold 1] [--test-fold 2] [--threads 2] [--encoder cnn]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from featurekit.learn.torch.sequence import SequenceClassifier
from featurekit.store.reader import FeatureStore
from featurekit.store.sequences import HANDCRAFTED_STREAMS, load_sequences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--dataset", default="urbansound8k")
    parser.add_argument("--model", default="mn04_as")
    parser.add_argument("--train-fold", type=int, default=1)
    parser.add_argument("--test-fold", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--encoder", default="cnn", choices=["cnn", "transformer"])
    args = parser.parse_args()

    store = FeatureStore(args.store)
    clips = store.read(args.dataset, branches=["handcrafted"], columns=[])
    streams = [*HANDCRAFTED_STREAMS, f"neural.{args.model}"]
    sequences = load_sequences(store, args.dataset, streams, clips["clip_id"].tolist())
    folds = clips["fold"].to_numpy()
    labels = clips["label_id"].to_numpy()
    train = np.flatnonzero(folds == args.train_fold)
    test = np.flatnonzero(folds == args.test_fold)

    print(f"{args.dataset}: train fold {args.train_fold} ({train.size} clips), test fold "
          f"{args.test_fold} ({test.size} clips), encoder {args.encoder}, "
          f"{args.threads} torch threads")
    print(f"| {'stream':38s} | {'frames x dims':>14s} | {'parameters':>10s} | "
          f"{'epochs':>6s} | {'fit s':>6s} | {'accuracy':>8s} |")
    print(f"|{'-' * 40}|{'-' * 16}:|{'-' * 12}:|{'-' * 8}:|{'-' * 8}:|{'-' * 10}:|")
    for names in [[name] for name in streams] + [streams]:
        X = {name: sequences[name] for name in names}
        model = SequenceClassifier(encoder=args.encoder, n_jobs=args.threads, random_state=0)
        started = time.perf_counter()
        model.fit({name: values[train] for name, values in X.items()}, labels[train],
                  folds[train])
        seconds = time.perf_counter() - started
        accuracy = np.mean(model.predict({name: values[test] for name, values in X.items()})
                           == labels[test])
        shape = (" + ".join(f"{v.shape[1]}x{v.shape[2]}" for v in X.values())
                 if len(names) == 1 else f"{len(names)} streams")
        label = names[0] if len(names) == 1 else "joint: " + " + ".join(names)
        print(f"| {label:38s} | {shape:>14s} | {model.n_parameters_:>10,d} | "
              f"{model.n_epochs_:>6d} | {seconds:>6.1f} | {100 * accuracy:>7.1f}% |")


if __name__ == "__main__":
    main()
