"""The CLI builds its parsers without the heavy libraries: they are imported by the command
that runs, so ``featurekit --help`` and every ``featurekit CMD --help`` answer at once.

Each check runs in a fresh interpreter and looks at ``sys.modules`` (correctness, not timing:
benchmarks/bench_cli.py times the commands)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from featurekit.cli import iter_commands

#: Modules that must not be imported to build parsers or print help.
HEAVY = ("torch", "sklearn", "xgboost", "pandas", "pyarrow", "librosa", "scipy", "numba",
         "joblib", "dask", "distributed", "opensmile", "essentia", "matplotlib", "transformers",
         "featurekit.benchmark.driver", "featurekit.computers.runner", "featurekit.store")

_PROBE = textwrap.dedent("""
    import contextlib, io, json, sys
    from featurekit.cli import main
    argv = json.loads(sys.argv[1])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit as exit_:
            code = exit_.code
    heavy = json.loads(sys.argv[2])
    print(json.dumps({"code": code, "help": out.getvalue(),
                      "imported": sorted(m for m in heavy if m in sys.modules)}))
""")


def _help(*command: str) -> dict:
    done = subprocess.run([sys.executable, "-c", _PROBE, json.dumps([*command, "--help"]),
                           json.dumps(HEAVY)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_command_list_is_complete() -> None:
    commands = list(iter_commands())
    assert {("extract",), ("embed",), ("benchmark",), ("datasets", "download"),
            ("store", "info")} <= set(commands)


@pytest.mark.parametrize("command", [(), *iter_commands()], ids=lambda c: " ".join(c) or "top")
def test_help_imports_no_heavy_module(command: tuple[str, ...]) -> None:
    outcome = _help(*command)
    assert outcome["code"] == 0
    assert outcome["help"].startswith("usage: featurekit")
    assert outcome["imported"] == []


def test_help_shows_the_library_defaults() -> None:
    """Defaults read from light modules are still the library's."""
    from featurekit.benchmark import BenchmarkConfig
    from featurekit.neural.registry import available_models

    text = " ".join(_help("benchmark")["help"].split())
    assert f"default {BenchmarkConfig().repeats})" in text
    assert f"default {','.join(BenchmarkConfig().heads)})" in text
    assert ",".join(available_models()) in "".join(_help("embed")["help"].split())
