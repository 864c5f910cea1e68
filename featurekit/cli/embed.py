"""``featurekit embed``: frozen pretrained embeddings of a whole dataset into a feature store."""

from __future__ import annotations

import argparse

from featurekit.cli.common import add_dataset_arguments

DEFAULT_BATCH = 8


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``embed`` command."""
    from featurekit.neural.registry import available_models

    parser = subparsers.add_parser(
        "embed", help="compute pretrained-model embeddings of a dataset into a feature store",
        description="Compute the embeddings (and optionally the AudioSet tag probabilities) of "
                    "a frozen pretrained model for every clip of a dataset into "
                    "STORE/<dataset>/neural.<model>/. Resumable: a rerun skips stored clips "
                    "and retries failed ones.")
    add_dataset_arguments(parser)
    parser.add_argument("--model", default="mn04_as", choices=available_models(),
                        help="pretrained model (default mn04_as)")
    parser.add_argument("--weights",
                        help="checkpoint file (default: found in $FEATUREKIT_WEIGHTS_DIR or "
                             "the cache, else downloaded unless FEATUREKIT_OFFLINE=1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="torch threads, -1 for all cores (default 1)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"clips (10-s windows) per forward pass (default {DEFAULT_BATCH}; "
                             f"larger batches are not faster on CPU)")
    parser.add_argument("--tags", action="store_true",
                        help="also store the 527 AudioSet tag probabilities")
    parser.add_argument("--frames", action="store_true",
                        help="also store the neuralogram (last feature map averaged over "
                             "frequency)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a branch computed with another model or weights")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 if any clip fails")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit embed``."""
    from joblib import effective_n_jobs

    from featurekit.computers.neural import NeuralBranch
    from featurekit.computers.runner import run_branch
    from featurekit.datasets import load_dataset
    from featurekit.errors import ConfigError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.jobs == 0:
        raise ConfigError("--jobs must be a positive count or -1")
    dataset = load_dataset(args.dataset, args.data_dir)
    branch = NeuralBranch(args.model, args.weights, n_threads=effective_n_jobs(args.jobs),
                          batch_size=args.batch_size, tags=args.tags, device=args.device)
    summary = run_branch(branch, dataset, args.store, frames=args.frames,
                         overwrite=args.overwrite, strict=args.strict)
    print(summary)
    return summary.exit_code
