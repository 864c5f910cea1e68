"""``featurekit benchmark``: parses arguments into :func:`featurekit.benchmark.run`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TypeVar

from featurekit.cli.common import add_config_arguments, add_dataset_arguments, config_from_args

NO_MODEL = "none"


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


Number = TypeVar("Number", int, float)


def _numbers(kind: Callable[[str], Number], what: str) -> Callable[[str], tuple[Number, ...]]:
    """An argparse type: comma-separated numbers, so that a malformed one is a usage error
    (one line, exit 2) rather than a traceback."""
    def parse(text: str) -> tuple[Number, ...]:
        try:
            return tuple(kind(name) for name in _names(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got "
                                             f"{text!r}") from None
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``benchmark`` command."""
    from featurekit.benchmark import BACKENDS, BenchmarkConfig
    from featurekit.benchmark.config import ABLATION_MODES

    defaults = BenchmarkConfig()
    parser = subparsers.add_parser(
        "benchmark", help="ablation of handcrafted-family and neural branches (or of feature "
                          "sets) with fusion",
        description="Compute whatever the store lacks (handcrafted descriptors, embeddings), "
                    "then evaluate every branch alone, together and left out, with each head "
                    "and fusion, by leave-one-fold-out over the dataset's folds, each fit "
                    "repeated with other seeds. The headline is fixed in advance: 'auto' "
                    "(head x fusion over every branch chosen by inner cross-validation on the "
                    "training folds) against 'neural-auto' (the same among neural branches "
                    "alone). Writes results.json, report.md and PNG plots into --out.")
    add_dataset_arguments(parser)
    parser.add_argument("--model", default="mn04_as",
                        help=f"pretrained model(s) of the neural branch, comma-separated, and "
                             f"'e2e' for a CNN trained from scratch on the task's log-mel "
                             f"spectrograms; hear:MODULE[:WEIGHTS] and hf:ID_OR_DIR[@layer=K] "
                             f"open a HEAR module or a Hugging Face model (default mn04_as; "
                             f"'{NO_MODEL}' for handcrafted branches only)")
    parser.add_argument("--weights", help="checkpoint file of the model (default: resolved "
                                          "as by featurekit embed)")
    parser.add_argument("--sets", metavar="LIST",
                        help="compare feature sets side by side instead of the handcrafted "
                             "families: comma-separated subset of featurekit,essentia,"
                             "opensmile.egemaps,opensmile.compare (each alone, each with the "
                             "neural branch, what each adds; reference sets need "
                             "featurekit[essentia] / featurekit[opensmile])")
    add_config_arguments(parser)
    parser.add_argument("--heads", default=",".join(defaults.heads),
                        help=f"comma-separated heads (default {','.join(defaults.heads)}); "
                             "'seq' learns an embedding from each branch's frame sequence "
                             "(computes frames; needs a store with frames)")
    parser.add_argument("--fusions", default=",".join(defaults.fusions),
                        help=f"comma-separated fusions (default {','.join(defaults.fusions)}); "
                             "'blend' and 'joint' apply to the seq head only")
    parser.add_argument("--repeats", type=int, default=defaults.repeats,
                        help="refits of every system with other seeds and inner splits; their "
                             f"spread enters every interval (default {defaults.repeats})")
    parser.add_argument("--seeds", type=int, default=defaults.n_seeds,
                        help="members per seeded head within a repeat, averaged "
                             f"(default {defaults.n_seeds})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"base seed (default {defaults.seed})")
    parser.add_argument("--inner-splits", type=int, default=defaults.inner_splits,
                        help="inner cross-validation splits for out-of-fold predictions "
                             f"(default {defaults.inner_splits})")
    parser.add_argument("--tune", action="store_true",
                        help="hyper-parameter search of every head inside the training folds "
                             "(nested: each inner out-of-fold twin searches inside its own "
                             "training rows)")
    parser.add_argument("--bootstrap", type=int, default=defaults.n_bootstrap,
                        help=f"bootstrap resamples of the intervals (default "
                             f"{defaults.n_bootstrap})")
    parser.add_argument("--outer-folds", metavar="LIST", type=_numbers(int, "fold numbers"),
                        help="comma-separated folds to evaluate as test folds (default all)")
    parser.add_argument("--train-fractions", metavar="LIST", type=_numbers(float, "fractions"),
                        help="learning curve: comma-separated shares of each training set "
                             "(whole recordings where known, else clips; stratified by "
                             "class), e.g. 0.1,0.25,1; at each, the run's paired comparisons "
                             "(handcrafted + each neural branch against it alone; with "
                             "--sets, the sets' pairs)")
    parser.add_argument("--ablation", choices=ABLATION_MODES, default=defaults.ablation,
                        help="branch subsets evaluated: 'families' (default) each branch "
                             "alone, all handcrafted families, everything, all but each "
                             "branch, handcrafted + each neural branch; 'full' adds every "
                             "pair of branches; 'none' only what the primary comparison and "
                             "the branch comparisons need (everything, each neural branch "
                             "alone, the handcrafted families together and with each neural "
                             "branch); --plan counts the units of each")
    parser.add_argument("--head-settings", metavar="FILE",
                        help="JSON file of parameters replacing some heads' defaults and the "
                             "datasets that chose them ({\"chosen_on\": [...], \"heads\": "
                             "{\"mlp\": {...}}}); results.json and the report record, per "
                             "head, where its settings were chosen and whether that data "
                             "overlaps this dataset. The defaults' evidence: "
                             "benchmarks/notes/heads.md")
    parser.add_argument("--corruptions", metavar="SPEC",
                        help="robustness: also score every system on corrupted copies of the "
                             "test clips (trained and chosen on clean audio only), e.g. "
                             "noise:snr=20/10/0,lowpass:hz=4000/2000,gain:db=-30,mp3:kbps=32,"
                             "reverb:rt60=0.6,background:dir=PATH:snr=10 (mp3 needs "
                             "featurekit[mp3]); each corruption's branches are stored as "
                             "dataset <dataset>@<corruption> and reused on a rerun")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for extraction and model fitting, -1 for all "
                             "cores (default 1); with CUDA, the torch heads (seq, cnn) are "
                             "fitted on the GPU by the command's own process meanwhile")
    parser.add_argument("--backend", choices=BACKENDS, default="loky",
                        help="joblib processes on this machine, or a Dask cluster")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="Dask scheduler address (with --backend dask; default: a local "
                             "cluster of --jobs workers)")
    parser.add_argument("--out", help="output directory (default benchmark-<dataset>)")
    parser.add_argument("--plan", action="store_true",
                        help="print the work (units and fits per head and stage, systems, "
                             "comparisons) and an estimate of wall time and peak memory on "
                             "this machine from a short calibration, then stop: nothing is "
                             "filled or fitted; with --out, also write plan.json there. A "
                             "real run prints the same plan first")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit benchmark``."""
    from featurekit.benchmark import BenchmarkConfig
    from featurekit.benchmark import run as benchmark_dataset
    from featurekit.benchmark.head_settings import read_head_settings

    config = BenchmarkConfig(heads=_names(args.heads), fusions=_names(args.fusions),
                             repeats=args.repeats, n_seeds=args.seeds, seed=args.seed,
                             inner_splits=args.inner_splits, tune=args.tune,
                             n_bootstrap=args.bootstrap,
                             outer_folds=args.outer_folds,
                             train_fractions=args.train_fractions or (),
                             ablation=args.ablation,
                             head_settings=(read_head_settings(args.head_settings)
                                            if args.head_settings else None))
    models = [] if args.model == NO_MODEL else list(_names(args.model))
    outcome = benchmark_dataset(args.dataset, args.data_dir, args.store, model=models,
                                sets=args.sets or None,
                                weights=args.weights, config=config,
                                extraction=(config_from_args(args)
                                            if args.config or args.families else None),
                                out=args.out, n_jobs=args.jobs, backend=args.backend,
                                scheduler=args.scheduler, plan_only=args.plan,
                                on_plan=print_plan, corruptions=args.corruptions)
    if not args.plan:
        print(summary_text(outcome.results))
    if outcome.written:
        print("wrote " + ", ".join(str(path) for path in outcome.written))
    notice = None if args.plan else overlap_notice(outcome.results)
    if notice:
        print(notice, file=sys.stderr)
    return 0


def print_plan(plan: dict) -> None:
    """Print the plan (:func:`featurekit.benchmark.report.plan.plan_lines`) as soon as it is
    made, before a run's fits."""
    from featurekit.benchmark.report.plan import plan_lines

    print("\n".join(plan_lines(plan)), flush=True)


def overlap_notice(results: dict) -> str | None:
    """A warning when some heads' settings were chosen on the clips this run reports."""
    record = results.get("head_settings") or {}
    if record.get("disjoint") is not False:
        return None
    heads = record["overlapping"]
    chosen = sorted({name for head in heads for name in record["heads"][head]["chosen_on"]})
    return (f"warning: the settings of head(s) {', '.join(heads)} were chosen on "
            f"{', '.join(chosen)}, whose clips this run reports, so its figures are not "
            "independent of that choice; pass --head-settings FILE with settings chosen on "
            "other data (benchmarks/notes/heads.md)")


def summary_text(results: dict) -> str:
    """The pre-registered comparisons first (primary, synergy), then the exploratory best
    systems (in macro mAP for a multi-label task, accuracy otherwise)."""
    metric = results.get("metric", "accuracy")
    accuracy = {s["name"]: 100 * s["mean"][metric] for s in results["systems"]}
    unit = " mAP" if metric == "map" else ""
    lines = []
    for key in ("primary", "synergy"):
        entry = results.get(key)
        if entry:
            low, high = entry["ci95_pp"]
            lines.append(f"{key}: {entry['system']} {accuracy[entry['system']]:.1f} %{unit} vs "
                         f"{entry['reference']} {accuracy[entry['reference']]:.1f} %{unit}: "
                         f"{entry['gain_pp']:+.2f} pp [95 % CI {low:+.2f}, {high:+.2f}] per "
                         "fold " + ", ".join(f"{k}: {v:+.2f}"
                                             for k, v in entry["per_fold_pp"].items())
                         + f" ({entry['n_repeats']} repeats; {entry['ci_method']})")
    if results.get("synergy_note"):
        lines.append(f"synergy: none ({results['synergy_note']})")
    lines.append(f"exploratory, picked on test folds: best single branch "
                 f"{results['best_single']} ({accuracy[results['best_single']]:.1f} %)"
                 + (f", best fusion {results['best_fusion']} "
                    f"({accuracy[results['best_fusion']]:.1f} %)"
                    if results["best_fusion"] else ""))
    for entry in results.get("learning_curve", []):
        low, high = entry["ci95_pp"]
        # The run's metric on both sides of the gain (top-1 hits are not what a mAP gain is).
        score = 100 * entry.get("score", entry["accuracy"])
        reference = 100 * entry.get("reference_score", entry["reference_accuracy"])
        lines.append(f"learning curve {entry['fraction']:g} ({entry['train_clips']:.0f} training "
                     f"clips): {entry['system']} {score:.1f} %{unit} vs "
                     f"{entry['reference']} {reference:.1f} %{unit}: "
                     f"{entry['gain_pp']:+.2f} pp [{low:+.2f}, {high:+.2f}]")
    for entry in results.get("learning_curve_synergy", []):
        low, high = entry["ci95_pp"]
        lines.append(f"learning curve {entry['fraction']:g} ({entry['train_clips']:.0f} training "
                     f"clips), synergy: {entry['system']} {100 * entry['score']:.1f} %{unit} vs "
                     f"{entry['reference']} {100 * entry['reference_score']:.1f} %{unit}: "
                     f"{entry['gain_pp']:+.2f} pp [{low:+.2f}, {high:+.2f}]")
    for entry in results.get("robustness", []):
        low, high = entry["ci95_pp"]
        lines.append(f"under {entry['corruption']} {entry['severity']}, {entry['comparison']}: "
                     f"{entry['system']} {100 * entry['value']:.1f} %{unit} "
                     f"({-entry['drop_pp']:+.1f} pp from clean) vs {entry['reference']} "
                     f"{100 * entry['reference_value']:.1f} %{unit} "
                     f"({-entry['reference_drop_pp']:+.1f} pp from clean): "
                     f"{entry['gain_pp']:+.2f} pp [{low:+.2f}, {high:+.2f}]")
    if results.get("feature_sets"):
        from featurekit.benchmark.report.sets import sets_summary

        lines += sets_summary(results)
    return "\n".join(lines)
