"""The ``featurekit`` command: a thin layer over the library.

Each command group lives in its own module exposing ``register(subparsers)``; a handler takes
the parsed arguments and returns the exit code. Exit codes: 0 success (also with reported
per-clip failures), 1 when every clip failed or ``--strict`` saw a failure, 2 usage or input
errors, printed as one line, and 128 + the signal's number when SIGINT (130) or SIGTERM (143)
stopped it. Only the command installs handlers for those two (the library never does); they
raise :class:`~featurekit.errors.Interrupted`, which unwinds through every ``with`` block:
worker processes are stopped, store locks released, and what is stored stays for a rerun.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from types import FrameType

from featurekit.errors import FeaturekitError, Interrupted

#: Modules of :mod:`featurekit.cli` that each add one or more subcommands.
COMMAND_MODULES = ("features", "datasets", "extract", "store", "embed", "imports",
                   "benchmark", "train", "predict")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Signals that stop a command cleanly; the exit code is 128 + the signal's number.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep it to one line
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"featurekit: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available command group."""
    from featurekit import __version__

    parser = _Parser(prog="featurekit", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"featurekit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"featurekit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"featurekit.cli.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def iter_commands(parser: argparse.ArgumentParser | None = None,
                  ) -> Iterator[tuple[str, ...]]:
    """Every command and sub-command of ``parser`` (default :func:`build_parser`), as paths
    such as ``("extract",)`` and ``("datasets", "download")``, parents first."""
    def walk(node: argparse.ArgumentParser,
             prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield (*prefix, name)
                    yield from walk(child, (*prefix, name))

    return walk(parser if parser is not None else build_parser(), ())


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"featurekit: warning: {message}\n"


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    # A second Ctrl-C while the first one unwinds would cut short the cleanup that stops the
    # workers: further stop signals are ignored until the command returns (SIGKILL still
    # ends it at once).
    for each in STOP_SIGNALS:
        signal.signal(each, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` in the block; the caller's handlers
    come back after it (only the main thread can set handlers: elsewhere, nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {each: signal.signal(each, _raise_interrupted) for each in STOP_SIGNALS}
    try:
        yield
    finally:
        for each, handler in previous.items():
            # None: a handler set outside Python, which cannot be put back; the default is.
            signal.signal(each, signal.SIG_DFL if handler is None else handler)


def _interrupted_message(stop: Interrupted) -> str:
    name = signal.Signals(stop.signum).name
    stored = ": " + "; ".join(f"{entry} stored" for entry in stop.stored) if stop.stored \
        else "; what was stored is kept"
    return f"featurekit: interrupted by {name}{stored}; rerun the same command to resume"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``featurekit`` console script."""
    with _stop_signals_raise():
        try:
            return _run(argv)
        except Interrupted as stop:
            print(_interrupted_message(stop), file=sys.stderr)
            return 128 + stop.signum


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    default_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        return int(args.handler(args))
    except FeaturekitError as exc:
        print(f"featurekit: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        warnings.formatwarning = default_format


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
