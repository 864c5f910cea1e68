"""Arguments shared by several commands, defined once."""

from __future__ import annotations

import argparse

from featurekit.config import ExtractionConfig


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--data-dir`` and ``--store``: which clips, and where features go."""
    parser.add_argument("--dataset", required=True,
                        help="dataset name (urbansound8k, esc50, esc10, fsd50k, folder, csv; "
                             "a csv with a labels column is multi-label)")
    parser.add_argument("--data-dir", required=True,
                        help="directory holding the dataset (with --dataset csv: the CSV "
                             "file, or a folder holding exactly one CSV)")
    parser.add_argument("--store", required=True, help="feature store directory")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--families``, shared by every command that extracts features."""
    parser.add_argument("--config", metavar="TOML", help="extraction configuration file")
    parser.add_argument("--families", metavar="LIST",
                        help="comma-separated subset of pitch,timbre,spectral,modulation,rhythm,"
                             "loudness,stationarity (default: all)")


def config_from_args(args: argparse.Namespace) -> ExtractionConfig:
    """The configuration that ``--config`` and ``--families`` describe."""
    config = ExtractionConfig.from_toml(args.config) if args.config else ExtractionConfig()
    if args.families:
        config = config.replace(families=args.families)
    return config
