"""``featurekit train``: parses arguments into :func:`featurekit.model.train` and saves it."""

from __future__ import annotations

import argparse

from featurekit.cli.benchmark import NO_MODEL, _names, _numbers
from featurekit.cli.common import add_config_arguments, add_dataset_arguments, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    from featurekit.benchmark.config import AUTO, BenchmarkConfig

    defaults = BenchmarkConfig()
    parser = subparsers.add_parser(
        "train", help="fit one benchmark system on a dataset and save it as a model file",
        description="Compute whatever the store lacks of the training clips (as featurekit "
                    "benchmark does), fit one system -- its branches, heads and fusion -- on "
                    "the training folds, and save it with its provenance as one artifact file "
                    "for `featurekit predict`. 'auto' picks the system as the benchmark's "
                    "'auto' does: the head x fusion over every branch with the best inner "
                    "cross-validation accuracy on the training folds. The artifact is a "
                    "pickle: share it only with people who trust you.")
    add_dataset_arguments(parser)
    parser.add_argument("--model", default="mn04_as",
                        help=f"pretrained model(s) of the neural branches, comma-separated: "
                             f"registered names, hear:MODULE[:WEIGHTS], hf:ID_OR_DIR[@layer=K], "
                             f"or names of embeddings imported into the store (featurekit "
                             f"import-embeddings; predict is then given the new files' with "
                             f"--embeddings) (default mn04_as; '{NO_MODEL}' for handcrafted "
                             f"branches only)")
    parser.add_argument("--weights", help="checkpoint file of the model (default: resolved "
                                          "as by featurekit embed)")
    parser.add_argument("--system", default=AUTO,
                        help="'auto' (default) or a benchmark system name, e.g. "
                             "timbre/xgb or pitch+timbre+spectral+neural.mn04_as/logreg/weighted")
    parser.add_argument("--folds", metavar="LIST", type=_numbers(int, "fold numbers"),
                        help="comma-separated training folds (default every fold)")
    add_config_arguments(parser)
    parser.add_argument("--heads", default=",".join(defaults.heads),
                        help=f"heads 'auto' chooses among (default {','.join(defaults.heads)})")
    parser.add_argument("--fusions", default=",".join(defaults.fusions),
                        help="fusions 'auto' chooses among (default every benchmark fusion)")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"base seed, as the benchmark's first repeat (default "
                             f"{defaults.seed})")
    parser.add_argument("--inner-splits", type=int, default=defaults.inner_splits,
                        help=f"inner cross-validation splits (default {defaults.inner_splits})")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for extraction and fits, -1 for all cores "
                             "(default 1)")
    parser.add_argument("--out", required=True, help="model file to write, e.g. model.fk")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit train``."""
    from featurekit.benchmark.config import BenchmarkConfig
    from featurekit.model.train import train

    config = BenchmarkConfig(heads=_names(args.heads), fusions=_names(args.fusions),
                             seed=args.seed, inner_splits=args.inner_splits)
    classifier = train(args.dataset, args.data_dir, args.store, system=args.system,
                       model=None if args.model == NO_MODEL else list(_names(args.model)),
                       weights=args.weights,
                       folds=args.folds,
                       config=config,
                       extraction=(config_from_args(args) if args.config or args.families
                                   else None),
                       n_jobs=args.jobs)
    path = classifier.save(args.out)
    trained_on = classifier.provenance_["trained_on"]
    score = ("" if classifier.inner_accuracy_ is None
             else f" (inner cross-validation accuracy {100 * classifier.inner_accuracy_:.1f} %)")
    print(f"trained {classifier.system_}{score} on {trained_on['clips']} clips of "
          f"{trained_on['dataset']} fold(s) {', '.join(map(str, trained_on['folds']))}")
    print(f"wrote {path}")
    return 0
