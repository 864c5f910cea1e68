"""``featurekit extract``: a feature set of a whole dataset into a feature store."""

from __future__ import annotations

import argparse

from featurekit.cli.common import add_config_arguments, add_dataset_arguments, config_from_args
from featurekit.computers.sets import FEATURE_SETS, FEATUREKIT_SET
from featurekit.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``extract`` command."""
    parser = subparsers.add_parser(
        "extract", help="extract a feature set of a dataset into a feature store",
        description="Compute a feature set for every clip of a dataset into "
                    "STORE/<dataset>/<branch>/: featurekit's descriptors (every family of "
                    "`featurekit features --list`, branch handcrafted) or a reference set "
                    "(branch named as the set). Resumable: a rerun skips stored clips and "
                    "retries failed ones.")
    add_dataset_arguments(parser)
    parser.add_argument("--set", dest="feature_set", default=FEATUREKIT_SET,
                        choices=list(FEATURE_SETS), metavar="SET",
                        help="feature set: " + "; ".join(
                            f"{s.name} ({s.description}"
                            + (f"; needs featurekit[{s.extra}])" if s.extra else ")")
                            for s in FEATURE_SETS.values()) + f" (default {FEATUREKIT_SET})")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes, -1 for all cores (default 1)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="clips per task and per Parquet part (default: automatic, <= 32)")
    add_config_arguments(parser)
    parser.add_argument("--skip-silent", action="store_true",
                        help="record digitally silent clips as failures instead of storing them")
    parser.add_argument("--frames", action="store_true",
                        help="also store frame-level descriptors (featurekit set only)")
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
    from featurekit.computers.runner import run_branch
    from featurekit.computers.sets import set_computer
    from featurekit.datasets import load_dataset

    if args.scheduler and args.backend != "dask":
        raise ConfigError("--scheduler needs --backend dask")
    configured = args.config or args.families or args.feature_set == FEATUREKIT_SET
    computer = set_computer(args.feature_set, skip_silent=args.skip_silent, frames=args.frames,
                            extraction=config_from_args(args) if configured else None)
    dataset = load_dataset(args.dataset, args.data_dir)
    summary = run_branch(computer, dataset, args.store, n_jobs=args.jobs,
                         batch_size=args.batch_size, frames=args.frames,
                         overwrite=args.overwrite, strict=args.strict, backend=args.backend,
                         scheduler=args.scheduler)
    print(summary)
    return summary.exit_code
