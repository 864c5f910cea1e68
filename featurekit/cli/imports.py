"""``featurekit import-embeddings``: clip embeddings computed elsewhere into a feature store."""

from __future__ import annotations

import argparse

from featurekit.cli.common import add_dataset_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import-embeddings`` command."""
    parser = subparsers.add_parser(
        "import-embeddings", help="store clip embeddings computed elsewhere as a neural branch",
        description="Read clip embeddings computed outside featurekit and store them as "
                    "STORE/<dataset>/neural.<name>/, which `featurekit benchmark --model "
                    "<name>` then reads like a pretrained model's. FILE is Parquet or CSV (a "
                    "clip_id or path column, then one column per dimension, or one list "
                    "column in Parquet) or a .npy matrix with --ids. Clips without an "
                    "embedding are listed, left out and recorded as failures; an unknown or "
                    "duplicate id, a ragged or non-finite row or another dimension than the "
                    "stored one is refused. Importing the same file again resumes.")
    add_dataset_arguments(parser)
    parser.add_argument("--name", required=True,
                        help="model name: the branch is neural.<name> (not a registered "
                             "model's name, nor e2e)")
    parser.add_argument("--from", dest="source", required=True, metavar="FILE",
                        help="embeddings: .parquet, .csv or .npy")
    parser.add_argument("--ids", metavar="FILE",
                        help="with a .npy matrix: clip ids, one per line, in row order")
    parser.add_argument("--id-column", metavar="NAME",
                        help="id column of a table (default clip_id, else path: audio files, "
                             "absolute or relative to --data-dir)")
    parser.add_argument("--frames", metavar="FILE",
                        help="frame sequences for the sequence head: .parquet or .csv, one row "
                             "per clip and frame, with the id column and time_s (seconds)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a branch imported from another file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit import-embeddings``."""
    from featurekit.computers.imported import import_embeddings
    from featurekit.datasets import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir)
    summary = import_embeddings(args.source, dataset, args.store, name=args.name, ids=args.ids,
                                id_column=args.id_column, frames=args.frames,
                                overwrite=args.overwrite)
    print(summary)
    return 0
