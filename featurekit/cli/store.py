"""``featurekit store``: inspect feature stores."""

from __future__ import annotations

import argparse
import json

from featurekit.errors import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``store`` command group."""
    parser = subparsers.add_parser("store", help="inspect a feature store")
    commands = parser.add_subparsers(dest="store_command", required=True)
    info = commands.add_parser("info", help="datasets, branches, rows, features, folds, "
                                            "configuration hash and failures of a store")
    info.add_argument("store", help="feature store directory")
    info.add_argument("--json", action="store_true", help="print JSON records instead")
    info.set_defaults(handler=run_info)


def run_info(args: argparse.Namespace) -> int:
    """Handler of ``featurekit store info``."""
    from pathlib import Path

    from featurekit.store.reader import FeatureStore

    if not Path(args.store).is_dir():
        raise StoreError(f"no feature store at {args.store}")
    summary = FeatureStore(args.store).info()
    if args.json:
        print(json.dumps(summary.to_dict(orient="records"), indent=2))
    elif summary.empty:
        print(f"{args.store}: empty feature store")
    else:
        print(summary.to_string(index=False))
    return 0
