"""``featurekit benchmark``: extraction and embedding if missing, then the branch ablation."""

from __future__ import annotations

import argparse
import sys

from featurekit.cli.common import add_config_arguments, add_dataset_arguments, config_from_args
from featurekit.errors import ConfigError, StoreError

NO_MODEL = "none"


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` command."""
    from featurekit.benchmark import BenchmarkConfig

    defaults = BenchmarkConfig()
    parser = subparsers.add_parser(
        "benchmark", help="ablation of pitch/timbre/spectral/neural branches with fusion",
        description="Compute whatever the store lacks (handcrafted descriptors, embeddings), "
                    "then evaluate every branch alone, together and left out, with each head "
                    "and fusion, by leave-one-fold-out over the dataset's folds. Writes "
                    "results.json, report.md and PNG plots into --out.")
    add_dataset_arguments(parser)
    parser.add_argument("--model", default="mn04_as",
                        help=f"pretrained model of the neural branch (default mn04_as; "
                             f"'{NO_MODEL}' for handcrafted branches only)")
    parser.add_argument("--weights", help="checkpoint file of the model (default: resolved "
                                          "as by featurekit embed)")
    add_config_arguments(parser)
    parser.add_argument("--heads", default=",".join(defaults.heads),
                        help=f"comma-separated heads (default {','.join(defaults.heads)}); "
                             "'seq' learns an embedding from each branch's frame sequence "
                             "(computes frames; needs a store with frames)")
    parser.add_argument("--fusions", default=",".join(defaults.fusions),
                        help=f"comma-separated fusions (default {','.join(defaults.fusions)}); "
                             "'blend' and 'joint' apply to the seq head only")
    parser.add_argument("--seeds", type=int, default=defaults.n_seeds,
                        help=f"seeds per seeded head, averaged (default {defaults.n_seeds})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"base seed (default {defaults.seed})")
    parser.add_argument("--inner-splits", type=int, default=defaults.inner_splits,
                        help="inner cross-validation splits for out-of-fold predictions "
                             f"(default {defaults.inner_splits})")
    parser.add_argument("--tune", action="store_true",
                        help="hyper-parameter search of every head inside the training folds")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for extraction and model fitting, -1 for all "
                             "cores (default 1)")
    parser.add_argument("--out", help="output directory (default benchmark-<dataset>)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit benchmark``."""
    from pathlib import Path

    from joblib import effective_n_jobs

    from featurekit.benchmark import (
        HANDCRAFTED_BRANCH,
        SEQUENCE_HEAD_NAMES,
        BenchmarkConfig,
        benchmark_store,
        save_results,
    )
    from featurekit.config import ExtractionConfig
    from featurekit.datasets import load_dataset
    from featurekit.handcrafted import HandcraftedBranch
    from featurekit.report import write_report
    from featurekit.runner import run_branch
    from featurekit.store import FeatureStore

    if args.jobs == 0 or args.jobs < -1:
        raise ConfigError("--jobs must be a positive count or -1")
    config = BenchmarkConfig(heads=_names(args.heads), fusions=_names(args.fusions),
                             n_seeds=args.seeds, seed=args.seed,
                             inner_splits=args.inner_splits, tune=args.tune)
    dataset = load_dataset(args.dataset, args.data_dir)
    store = FeatureStore(args.store)
    model = None if args.model == NO_MODEL else args.model

    if args.config or args.families or HANDCRAFTED_BRANCH not in store.branches(dataset.name):
        extraction = config_from_args(args)
    else:  # resume with the configuration already stored
        extraction = ExtractionConfig.from_dict(
            store.provenance(dataset.name, HANDCRAFTED_BRANCH)["config"])
    computers = [HandcraftedBranch(extraction)]
    if model is not None:
        from featurekit.neural.branch import NeuralBranch

        computers.append(NeuralBranch(model, args.weights,
                                      n_threads=effective_n_jobs(args.jobs)))
    # The sequence head learns from frame-level descriptors: compute (and keep computing)
    # frames whenever it is asked for or a branch already holds them.
    wants_frames = any(head in SEQUENCE_HEAD_NAMES for head in config.heads)
    for computer in computers:
        stored = computer.branch in store.branches(dataset.name)
        has_frames = stored and bool(store.metadata(dataset.name, computer.branch).get("frames"))
        if wants_frames and stored and not has_frames:
            command = "extract" if computer.branch == HANDCRAFTED_BRANCH else "embed"
            raise StoreError(f"--heads seq needs frame-level descriptors, but "
                             f"{dataset.name}/{computer.branch} in store {store.path} was "
                             f"computed without them; use another --store, or recompute the "
                             f"branch with `featurekit {command} --frames --overwrite`")
        summary = run_branch(computer, dataset, store, n_jobs=args.jobs,
                             frames=wants_frames or has_frames)
        print(summary, file=sys.stderr)
        if summary.exit_code:
            return summary.exit_code

    results = benchmark_store(store, dataset.name, model=model, config=config,
                              expected_folds=dataset.expected_folds, n_jobs=args.jobs,
                              recordings=dataset.clips.set_index("clip_id")["recording"])
    out = Path(args.out or f"benchmark-{dataset.name}")
    written = [save_results(results, out), *write_report(results, out).values()]
    print(f"best single branch: {results['best_single']} "
          f"({100 * _accuracy(results, results['best_single']):.1f} %)")
    if results["best_fusion"]:
        gain = results["fusion_gain"]
        print(f"best fusion: {results['best_fusion']} "
              f"({100 * _accuracy(results, results['best_fusion']):.1f} %), "
              f"{gain['mean_pp']:+.1f} pp [{gain['ci95_pp'][0]:+.1f}, {gain['ci95_pp'][1]:+.1f}]")
    print("wrote " + ", ".join(str(path) for path in written))
    return 0


def _accuracy(results: dict, name: str) -> float:
    return next(s["mean"]["accuracy"] for s in results["systems"] if s["name"] == name)
