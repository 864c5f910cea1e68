"""``featurekit predict``: class probabilities of audio files from a trained model file."""

from __future__ import annotations

import argparse
import sys

FORMATS = ("csv", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    parser = subparsers.add_parser(
        "predict", help="classify audio files with a model file from featurekit train",
        description="Compute the features the model needs (same extraction configuration, same "
                    "pretrained model) for each file and print its class probabilities and "
                    "top label. A file that cannot be classified (missing, unreadable, empty, "
                    "silent ...) gets a row with its error instead; the exit status is 1 only "
                    "when every file failed. Load only model files you trust: they are "
                    "pickles.")
    parser.add_argument("model", help="model file written by featurekit train")
    parser.add_argument("files", nargs="+", help="audio files")
    parser.add_argument("--format", choices=FORMATS, default="csv",
                        help="output on stdout: one CSV row per file (path, label, one column "
                             "per class, error) or a JSON list (default csv)")
    parser.add_argument("--weights", help="checkpoint of the model's neural branch, when not "
                                          "where featurekit embed finds it")
    parser.add_argument("--embeddings", action="append", default=[], metavar="[NAME=]FILE",
                        help="the files' embeddings of a model imported at training (featurekit "
                             "import-embeddings), which featurekit cannot compute: .parquet or "
                             ".csv with a clip_id (each file as named here) or path column, or "
                             "a .npy matrix with one row per file in order; NAME may be left "
                             "out when the model reads one imported branch; repeat for each. "
                             "A file it lacks gets an error row")
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for extraction, torch threads for embedding; "
                             "-1 for all cores (default 1)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Handler of ``featurekit predict``."""
    import csv
    import json

    from featurekit.cli import EXIT_FAILED, EXIT_OK
    from featurekit.errors import ConfigError
    from featurekit.model.load import load_model

    if args.jobs == 0 or args.jobs < -1:
        raise ConfigError("--jobs must be a positive count or -1")
    classifier = load_model(args.model, weights=args.weights, n_jobs=args.jobs)
    predictions = classifier.predict_clips(args.files, embeddings=_embeddings(
        args.embeddings, list(classifier.imported_)))
    classes = [str(name) for name in classifier.classes_]
    if args.format == "json":
        json.dump([{"path": p.source, "label": None if p.label is None else str(p.label),
                    "probabilities": (None if p.proba is None else
                                      dict(zip(classes, map(float, p.proba), strict=True))),
                    "error": p.error} for p in predictions], sys.stdout, indent=2)
        print()
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["path", "label", *classes, "error"])
        for p in predictions:
            probabilities = ([""] * len(classes) if p.proba is None
                             else [f"{value:.6f}" for value in p.proba])
            writer.writerow([p.source, "" if p.label is None else p.label, *probabilities,
                             p.error or ""])
    failed = [p for p in predictions if p.error is not None]
    for p in failed:
        print(f"featurekit: failed {p.source}: {p.error}", file=sys.stderr)
    if failed:
        print(f"featurekit: {len(failed)} of {len(predictions)} file(s) could not be "
              f"classified", file=sys.stderr)
    return EXIT_FAILED if len(failed) == len(predictions) else EXIT_OK


def _embeddings(values: list[str], imported: list[str]) -> dict[str, str]:
    """``--embeddings [NAME=]FILE`` values as model name -> file; a value without a name is
    the only imported model's."""
    from featurekit.errors import ConfigError

    files: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            if len(imported) != 1:
                raise ConfigError(f"--embeddings {value}: name the model (NAME=FILE); the "
                                  f"model reads {len(imported)} imported branches"
                                  + (f" ({', '.join(imported)})" if imported else ""))
            name, path = imported[0], value
        if name in files:
            raise ConfigError(f"--embeddings gives {name} twice")
        files[name] = path
    return files

