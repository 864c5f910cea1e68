"""``featurekit datasets list | download NAME | verify NAME``."""

from __future__ import annotations

import argparse

from featurekit.datasets import default_data_dir, download_dataset, verify_dataset
from featurekit.datasets.registry import adapters
from featurekit.datasets.verify import DATA_DIR_ENV
from featurekit.names import GENERIC_ADAPTERS

_NAME_HELP = "official dataset (see `featurekit datasets list`)"


def _list(args: argparse.Namespace) -> int:
    for name, adapter in adapters().items():
        first, *more = adapter.summary(name)
        print(f"{name:14s} {first}")
        for line in more:
            print(f"{'':14s} {line}")
    return 0


def _download(args: argparse.Namespace) -> int:
    root = download_dataset(args.name, args.data_dir, url=args.url,
                            keep_archive=not args.remove_archive)
    print(f"{args.name}: ready at {root}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    report = verify_dataset(args.name, args.data_dir, check_archive=not args.skip_archive)
    print(report)
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``datasets`` command group."""
    parser = subparsers.add_parser("datasets", help="list, download and verify datasets")
    commands = parser.add_subparsers(dest="datasets_command", required=True)

    listing = commands.add_parser("list", help="official datasets and generic adapters")
    listing.set_defaults(handler=_list)

    download = commands.add_parser(
        "download", help="download, extract and verify an official dataset",
        description="Download (resumable), checksum, safely extract and verify a dataset. "
                    "Generic adapters (" + ", ".join(GENERIC_ADAPTERS) + ") need no download.")
    download.add_argument("name", help=_NAME_HELP)
    download.add_argument("--data-dir", default=None,
                          help=f"where to put it (default ${DATA_DIR_ENV} or "
                               f"{default_data_dir()})")
    download.add_argument("--url", default=None,
                          help="mirror of the official archive (still checksum-verified)")
    download.add_argument("--remove-archive", action="store_true",
                          help="delete the archive after extraction")
    download.set_defaults(handler=_download)

    verify = commands.add_parser(
        "verify", help="compare a local copy with the manifest",
        description="Check archive checksum (if the archive is present), metadata, clip and "
                    "per-fold counts, and audio files. Exit code 1 when a check fails.")
    verify.add_argument("name", help=_NAME_HELP)
    verify.add_argument("--data-dir", required=True,
                        help="directory holding the dataset (or the dataset itself)")
    verify.add_argument("--skip-archive", action="store_true",
                        help="do not checksum the archive")
    verify.set_defaults(handler=_verify)
