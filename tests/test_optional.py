"""Optional engines: a missing extra is named; the core imports without the extras and
without ``fcntl`` (as on Windows)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_store import FakeBranch, make_dataset

from featurekit._util.optional import require
from featurekit._util.parallel import dask_client
from featurekit.computers.runner import run_branch
from featurekit.errors import FeaturekitError, MissingDependencyError

#: Import names of the optional engines, and the extra that installs each.
EXTRAS = {"distributed": "dask", "dask": "dask", "opensmile": "opensmile",
          "essentia": "essentia", "transformers": "hf", "lameenc": "mp3"}


def test_require_returns_the_module() -> None:
    import json

    assert require("json", extra="none") is json


@pytest.mark.parametrize("module", sorted(EXTRAS))
def test_require_names_the_extra(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependencyError,
                       match=f'pip install "featurekit\\[{EXTRAS[module]}\\]"') as caught:
        require(module, extra=EXTRAS[module], purpose="the test engine")
    assert str(caught.value).startswith("the test engine needs")
    assert isinstance(caught.value, FeaturekitError)  # the CLI prints it as one line
    assert isinstance(caught.value, ImportError)


def test_dask_backend_without_dask_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r"featurekit\[dask\]"), \
            dask_client(None, 1):
        pass


def test_run_branch_refuses_the_dask_backend_before_opening_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = make_dataset(tmp_path / "audio", 2)
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r"featurekit\[dask\]"):
        run_branch(FakeBranch(), dataset, tmp_path / "store", backend="dask", n_jobs=2,
                   progress=False)
    assert not (tmp_path / "store").exists()


def test_every_module_imports_without_extras_or_fcntl() -> None:
    """Every featurekit module imports with the optional engines and ``fcntl`` blocked, so
    the core install works and the store, the runner and the benchmark import on Windows."""
    blocked = [*EXTRAS, "fcntl"]
    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        for name in {blocked!r}:
            sys.modules[name] = None
        import featurekit
        names = [info.name for info in pkgutil.walk_packages(featurekit.__path__,
                                                              "featurekit.")
                 if not info.name.endswith("__main__")]  # runs the CLI
        for name in names:
            importlib.import_module(name)
        print(len(names))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 30
