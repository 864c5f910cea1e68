"""``featurekit extract``: handcrafted descriptors of a whole dataset into a feature store."""

from __future__ import annotations

import argparse

from featurekit.cli.common import add_config_arguments, add_dataset_arguments, config_from_args
from featurekit.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` command."""
    parser = subparsers.add_parser(
        "extract", help="extract handcrafted descriptors of a dataset into a feature store",
        description="Compute the handcrafted descriptors (every family of `featurekit "
                    "features --list`) of every clip of a dataset into "
                    "STORE/<dataset>/handcrafted/. Resumable: a rerun skips stored clips and "
                    "retries failed ones.")
    add_dataset_arguments(parser)
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes, -1 for all cores (default 1)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="clips per task and per Parquet part (default: automatic, <= 32)")
    add_config_arguments(parser)
    parser.add_argument("--skip-silent", action="store_true",
                        help="record digitally silent clips as failures instead of storing them")
    parser.add_argument("--frames", action="store_true",
                        help="also store frame-level descriptors")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a branch computed with another configuration")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 if any clip fails")
    parser.add_argument("--backend", choices=("loky", "dask"), default="loky",
                        help="local worker processes (loky) or a Dask cluster (dask)")
    parser.add_argument("--scheduler",
                        help="address of a Dask scheduler (default with --backend dask: a "
                             "local cluster of --jobs workers)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit extract``."""
    from featurekit.datasets import load_dataset
    from featurekit.handcrafted import HandcraftedBranch
    from featurekit.runner import run_branch

    if args.scheduler and args.backend != "dask":
        raise ConfigError("--scheduler needs --backend dask")
    computer = HandcraftedBranch(config_from_args(args), skip_silent=args.skip_silent)
    dataset = load_dataset(args.dataset, args.data_dir)
    summary = run_branch(computer, dataset, args.store, n_jobs=args.jobs,
                         batch_size=args.batch_size, frames=args.frames,
                         overwrite=args.overwrite, strict=args.strict, backend=args.backend,
                         scheduler=args.scheduler)
    print(summary)
    return summary.exit_code
