"""``featurekit datasets list | download NAME | verify NAME``."""

from __future__ import annotations

import argparse

from featurekit.datasets import (
    GENERIC_ADAPTERS,
    default_data_dir,
    download_dataset,
    list_datasets,
    load_manifest,
    verify_dataset,
)
from featurekit.datasets.fetch import DATA_DIR_ENV

_NAME_HELP = "official dataset (see `featurekit datasets list`)"


def _list(args: argparse.Namespace) -> int:
    for name in list_datasets():
        manifest = load_manifest(name)
        print(f"{name:14s} {manifest.expected_clips:5d} clips  {len(manifest.classes):2d} classes"
              f"  {len(manifest.folds):2d} folds  {manifest.title}")
        print(f"{'':14s} license: {manifest.license}")
        print(f"{'':14s} {manifest.homepage}")
    print(f"{'fsd50k':14s} 51197 clips 200 classes  multi-label, train/val/eval  FSD50K "
          "(Zenodo 10.5281/zenodo.4060432)")
    print(f"{'folder':14s} your audio: DATA_DIR/<label>/<clip>.wav, optional DATA_DIR/folds.csv")
    print(f"{'csv':14s} your audio listed in a CSV: path,label[,fold][,clip_id]; paths "
          "absolute or relative to the CSV's folder; a labels column (comma-separated label "
          "sets) instead of label makes it multi-label")
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
