"""``featurekit features``: list the handcrafted columns, or compute them for a few files."""

from __future__ import annotations

import argparse
import sys

from featurekit.cli.common import add_config_arguments, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "features", help="list handcrafted feature columns or extract them for files",
        description="List every clip-level column (name, unit, meaning), or print the "
                    "features of the given audio files as CSV.")
    parser.add_argument("--list", action="store_true", help="list the columns")
    parser.add_argument("--show-config", action="store_true",
                        help="print the configuration as TOML with its hash")
    parser.add_argument("files", nargs="*", help="audio files to describe (CSV to stdout)")
    add_config_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from featurekit.computers.handcrafted import feature_catalog
    from featurekit.extractor import FeatureExtractor

    config = config_from_args(args)
    if args.show_config:
        print(f"# config_hash = {config.config_hash()}")
        print(config.to_toml(), end="")
    if args.list or not (args.files or args.show_config):
        table = feature_catalog(config)
        width = int(table["name"].str.len().max())
        for row in table.itertuples(index=False):
            print(f"{row.name:<{width}}  [{row.unit}]  {row.meaning}")
        print(f"# {len(table)} columns", file=sys.stderr)
    if args.files:
        params = {k: v for k, v in config.to_dict().items() if k != "sample_rate"}
        extractor = FeatureExtractor(sr=config.sample_rate, **params).set_output(
            transform="pandas")
        frame = extractor.fit_transform(args.files)
        frame.insert(0, "path", args.files)
        frame.to_csv(sys.stdout, index=False)
    return 0
