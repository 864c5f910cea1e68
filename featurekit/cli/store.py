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
    export = commands.add_parser(
        "export", help="write one branch as a Parquet or CSV table",
        description="Write clip_id and the feature columns of STORE/<dataset>/<branch> to "
                    "--out (.parquet, .pq or .csv; folds and labels are the dataset's and are "
                    "left out). The table reads back with `featurekit import-embeddings`.")
    export.add_argument("store", help="feature store directory")
    export.add_argument("--dataset", required=True, help="dataset name in the store")
    export.add_argument("--branch", required=True, help="store branch, e.g. neural.mn04_as")
    export.add_argument("--out", required=True, metavar="FILE", help="table to write")
    export.add_argument("--frames-out", metavar="FILE",
                        help="also write the branch's frames (clip_id, time_s, values)")
    export.set_defaults(handler=run_export)


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


def run_export(args: argparse.Namespace) -> int:
    """Handler of ``featurekit store export``."""
    from pathlib import Path

    from featurekit.store.export import export_branch
    from featurekit.store.reader import FeatureStore

    if not Path(args.store).is_dir():
        raise StoreError(f"no feature store at {args.store}")
    clips, frames = export_branch(FeatureStore(args.store), args.dataset, args.branch,
                                  args.out, frames_out=args.frames_out)
    extra = f" and {frames} frames to {args.frames_out}" if args.frames_out else ""
    print(f"{args.dataset}/{args.branch}: {clips} clips written to {args.out}{extra}")
    return 0
