"""featurekit's layering, read from the source with :mod:`ast` (no import is executed).

Every ``import`` counts (module level, in functions, under ``TYPE_CHECKING``), and so does
``importlib.import_module("literal")``; relative imports are resolved; ``from pkg.a import b``
ties to ``pkg/a/b.py`` when that is a module, else to ``pkg/a/__init__``. Imports of a module's
own (ancestor) packages, the top-level ``featurekit`` among them, are exempt: Python runs those
first anyway. Rules: no cycle; no import of a higher layer, nor of another unit of the same
layer (within a unit, imports are free); no module over ``MAX_LINES``; every module placed.
The checkers are tested on synthetic packages, so that one silently passing is caught.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import pytest

#: The layers, bottom-up; a unit (package or module) may import only units of lower layers.
#: Written once, here: a new top-level module must be placed in one of them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("featurekit.errors", "featurekit.names"),  # exceptions; every branch/head/dataset name once
    ("featurekit._util", "featurekit.config"),  # fsutil, lazy, optional, progress, versions, ...
    ("featurekit.io",),  # reading audio, downloads, split zip archives
    ("featurekit.dsp",),  # filterbanks, pyin, frame analysis
    ("featurekit.descriptors",),  # the handcrafted descriptor families
    ("featurekit.datasets", "featurekit.neural"),  # datasets; frozen models, registry, embedding
    ("featurekit.store",),  # the feature store
    ("featurekit.computers", "featurekit.learn"),  # what fills a branch; heads, splits, torch
    ("featurekit.extractor", "featurekit.fusion"),  # the sklearn extractor; fusion estimators
    ("featurekit.pipeline",),  # extraction runs over datasets into a store
    ("featurekit.benchmark",),  # ablations, scores, reports
    ("featurekit.model",),  # the saved end-user AudioClassifier
    ("featurekit.cli",),  # the command line
    ("featurekit.__main__",),  # ``python -m featurekit``: runs the CLI, so sits above it
)

MAX_LINES = 500  # the longest a module may be
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "featurekit"

Edge = tuple[str, str, int]  # (importing module, imported module, line)


def module_files(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package_dir``."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a module of the package (None: external)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.AST, module: str, is_package: bool,
             modules: dict[str, Path]) -> list[str]:
    """The package modules one import node ties ``module`` to."""
    if isinstance(node, ast.Import):
        return [t for alias in node.names if (t := _known(alias.name, modules))]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: ``.`` is the module's own package
            anchor = module.split(".")
            anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join(anchor + ([base] if base else []))
        found = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
        if len(found) < len(node.names):  # some names are attributes of ``base`` itself
            found.append(base)
        return [t for name in found if (t := _known(name, modules))]
    if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)):
        return [t for t in [_known(node.args[0].value, modules)] if t]
    return []


def import_edges(package_dir: Path) -> list[Edge]:
    """Every import between modules of the package, exemptions removed."""
    modules = module_files(package_dir)
    edges = []
    for module, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            for target in _targets(node, module, is_package, modules):
                # A module's ancestor packages (the root among them) run before it anyway.
                if target != module and not module.startswith(target + "."):
                    edges.append((module, target, node.lineno))
    return edges


def find_cycles(edges: Sequence[Edge]) -> list[list[str]]:
    """Import cycles as closed paths of modules; every cyclic group yields at least one."""
    graph: dict[str, set[str]] = {}
    for source, target, _ in edges:
        graph.setdefault(source, set()).add(target)
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:  # depth first: a back edge closes a cycle
        if node in path:
            cycle = [*path[path.index(node):], node]
            if all(set(cycle) != set(known) for known in cycles):
                cycles.append(cycle)
        elif node not in done:
            for nxt in sorted(graph.get(node, ())):
                visit(nxt, [*path, node])
            done.add(node)

    for node in sorted(graph):
        visit(node, [])
    return cycles


def unit_of(module: str, layers: Sequence[Sequence[str]]) -> tuple[int, str] | None:
    """(layer, unit) of a module: the longest unit that is it or a package above it."""
    matches = [(len(unit), level, unit) for level, units in enumerate(layers) for unit in units
               if module == unit or module.startswith(unit + ".")]
    return max(matches)[1:] if matches else None


def layer_violations(package_dir: Path, edges: Sequence[Edge],
                     layers: Sequence[Sequence[str]]) -> list[str]:
    """``file:line -> target`` for each upward or same-layer cross-unit import."""
    files = module_files(package_dir)
    problems = []
    for source, target, line in sorted(edges):
        here, there = unit_of(source, layers), unit_of(target, layers)
        if here is None or there is None or here[1] == there[1]:
            continue  # unplaced modules are reported by unplaced_modules
        if there[0] >= here[0]:
            kind = "upward" if there[0] > here[0] else "same layer"
            where = files[source].relative_to(package_dir.parent)
            problems.append(f"{where}:{line} -> {target} ({kind}: {here[1]} is layer "
                            f"{here[0]}, {there[1]} is layer {there[0]})")
    return problems


def unplaced_modules(package_dir: Path, layers: Sequence[Sequence[str]]) -> list[str]:
    """Modules (the root ``__init__`` aside) that belong to no layer."""
    return [m for m in module_files(package_dir)
            if m != package_dir.name and unit_of(m, layers) is None]


def long_modules(package_dir: Path, max_lines: int = MAX_LINES) -> list[str]:
    """``file: N lines`` for each module longer than ``max_lines``."""
    counts = {path.relative_to(package_dir.parent): len(path.read_text("utf-8").splitlines())
              for path in module_files(package_dir).values()}
    return [f"{path}: {count} lines" for path, count in counts.items() if count > max_lines]


def _fail_on(title: str, problems: Sequence[str]) -> None:
    """Fail listing every problem, one a line (without pytest's repr of the list)."""
    if problems:
        pytest.fail(f"{len(problems)} {title}:\n  " + "\n  ".join(problems), pytrace=False)


# -- featurekit itself ------------------------------------------------------------------------

def test_no_import_cycle() -> None:
    _fail_on("import cycles", [" -> ".join(c) for c in find_cycles(import_edges(PACKAGE_DIR))])


def test_imports_follow_layers() -> None:
    _fail_on("imports against LAYERS",
             layer_violations(PACKAGE_DIR, import_edges(PACKAGE_DIR), LAYERS))


def test_modules_are_short() -> None:
    _fail_on(f"modules over {MAX_LINES} lines", long_modules(PACKAGE_DIR))


def test_every_module_has_a_layer() -> None:
    _fail_on("modules in no layer (place them in LAYERS)", unplaced_modules(PACKAGE_DIR, LAYERS))


# -- the checkers, on synthetic packages ------------------------------------------------------

TOY_LAYERS = (("pkg.low",), ("pkg.mid_a", "pkg.mid_b"), ("pkg.top",))


def _package(root: Path, files: dict[str, str]) -> Path:
    """Write ``pkg`` (relative path -> source) under ``root``; returns its directory."""
    for name, source in {"__init__.py": "", **files}.items():
        (root / "pkg" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "pkg" / name).write_text(source, encoding="utf-8")
    return root / "pkg"


CLEAN = {
    "low/__init__.py": "from pkg.low import core\n",  # own __init__ importing its module
    "low/core.py": "import os\nfrom pkg import low\n",  # own package __init__: exempt
    "mid_a.py": "from .low.core import x\nimport pkg\n",  # relative; the root: exempt
    "mid_b.py": "def f():\n    from pkg.low import core\n",
    "top/__init__.py": "",
    "top/run.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.mid_a\n"
                  "from . import util\nfrom pkg.mid_b import f\n",
    "top/util.py": "from pkg.low.core import x\n",
}


def test_edges_resolve_every_import_form(tmp_path: Path) -> None:
    edges = {(s, t) for s, t, _ in import_edges(_package(tmp_path, CLEAN))}
    assert edges == {("pkg.low", "pkg.low.core"), ("pkg.mid_a", "pkg.low.core"),
                     ("pkg.mid_b", "pkg.low.core"), ("pkg.top.run", "pkg.mid_a"),
                     ("pkg.top.run", "pkg.top.util"), ("pkg.top.run", "pkg.mid_b"),
                     ("pkg.top.util", "pkg.low.core")}


def test_clean_package_has_no_problem(tmp_path: Path) -> None:
    root = _package(tmp_path, CLEAN)
    edges = import_edges(root)
    assert find_cycles(edges) == []
    assert layer_violations(root, edges, TOY_LAYERS) == []
    assert unplaced_modules(root, TOY_LAYERS) == []
    assert long_modules(root) == []


def test_cycle_is_reported(tmp_path: Path) -> None:
    root = _package(tmp_path, {**CLEAN, "top/util.py": "import importlib\n"
                               "importlib.import_module('pkg.top.run')\n"})
    assert find_cycles(import_edges(root)) == [["pkg.top.run", "pkg.top.util", "pkg.top.run"]]


@pytest.mark.parametrize(("source", "target", "kind", "level"), [
    ("from pkg import top", "pkg.top", "upward", 2),
    ("from pkg.mid_b import f", "pkg.mid_b", "same layer", 1),
])
def test_layer_violation_is_reported(tmp_path: Path, source: str, target: str, kind: str,
                                     level: int) -> None:
    root = _package(tmp_path, {**CLEAN, "mid_a.py": f"import os\n{source}\n"})
    assert layer_violations(root, import_edges(root), TOY_LAYERS) == [
        f"pkg/mid_a.py:2 -> {target} ({kind}: pkg.mid_a is layer 1, {target} is layer {level})"]


def test_unplaced_module_is_reported(tmp_path: Path) -> None:
    root = _package(tmp_path, {**CLEAN, "stray/__init__.py": "", "stray/x.py": ""})
    assert unplaced_modules(root, TOY_LAYERS) == ["pkg.stray", "pkg.stray.x"]


def test_long_module_is_reported(tmp_path: Path) -> None:
    root = _package(tmp_path, {**CLEAN, "mid_b.py": "x = 1\n" * MAX_LINES,
                               "mid_a.py": "x = 1\n" * (MAX_LINES + 1)})
    assert long_modules(root) == [f"pkg/mid_a.py: {MAX_LINES + 1} lines"]
