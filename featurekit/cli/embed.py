"""``featurekit embed``: frozen pretrained embeddings of a whole dataset into a feature store."""

from __future__ import annotations

import argparse

from featurekit.cli.common import add_dataset_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``embed`` command."""
    from featurekit.neural.registry import DEFAULT_BATCH_SIZES, available_models

    parser = subparsers.add_parser(
        "embed", help="compute pretrained-model embeddings of a dataset into a feature store",
        description="Compute the embeddings (and optionally the AudioSet tag probabilities) of "
                    "a frozen pretrained model for every clip of a dataset into "
                    "STORE/<dataset>/neural.<model>/. Resumable: a rerun skips stored clips "
                    "and retries failed ones.")
    add_dataset_arguments(parser)
    parser.add_argument("--model", default="mn04_as",
                        help=f"pretrained model: {', '.join(available_models())}; or "
                             "hear:MODULE[:WEIGHTS] (a HEAR 2021 module) or "
                             "hf:ID_OR_DIR[@layer=K] (a Hugging Face audio model) "
                             "(default mn04_as)")
    parser.add_argument("--weights",
                        help="checkpoint file (default: found in $FEATUREKIT_WEIGHTS_DIR or "
                             "the cache, else downloaded unless FEATUREKIT_OFFLINE=1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="threads that decode and resample the files (a few batches "
                             "ahead of the network: on a GPU while it runs, on the CPU "
                             "in turn with it), and the network's torch threads; -1 for all "
                             "cores (default 1: one thread decodes, then the network runs)")
    sizes = ", ".join(f"{size} on {device}" for device, size in DEFAULT_BATCH_SIZES.items())
    parser.add_argument("--batch-size", type=int,
                        help=f"clips (10-s windows) per forward pass (default {sizes}: "
                             f"larger batches are not faster on a CPU)")
    parser.add_argument("--tags", action="store_true",
                        help="also store the 527 AudioSet tag probabilities")
    parser.add_argument("--frames", action="store_true",
                        help="also store the neuralogram (last feature map averaged over "
                             "frequency)")
    parser.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--tf32", action="store_true",
                        help="let CUDA use TF32 tensor cores: faster, but embeddings differ "
                             "from full float32 (the default) by up to about 1e-2; recorded "
                             "in the store's configuration")
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
    from featurekit.pipeline import check_models

    if args.batch_size is not None and args.batch_size < 1:
        raise ConfigError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.jobs == 0 or args.jobs < -1:
        raise ConfigError("--jobs must be a positive count or -1")
    check_models(args.model)
    dataset = load_dataset(args.dataset, args.data_dir)
    jobs = effective_n_jobs(args.jobs)
    branch = NeuralBranch(args.model, args.weights, n_threads=jobs, n_workers=jobs,
                          batch_size=args.batch_size, tags=args.tags, device=args.device,
                          allow_tf32=args.tf32)
    summary = run_branch(branch, dataset, args.store, frames=args.frames,
                         overwrite=args.overwrite, strict=args.strict)
    print(summary)
    return summary.exit_code
