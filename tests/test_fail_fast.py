"""Every argument is checked before any work: a bad one stops ``benchmark`` and ``train``
before the feature store exists, with an error naming the value and the valid choices."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from featurekit.benchmark import BenchmarkConfig, run
from featurekit.cli import main
from featurekit.config import ExtractionConfig
from featurekit.errors import ConfigError
from featurekit.model.train import train

pytestmark = pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")

HEADS = "xgb, mlp, logreg, seq"
THREE_FAMILIES = ExtractionConfig(families=("pitch", "timbre", "spectral"))


@pytest.mark.parametrize(("arguments", "message"), [
    ({"config": BenchmarkConfig(heads=("logreg", "svm"))},
     f"unknown head 'svm'; choose from {HEADS}"),
    ({"model": ["mn04_as", "mn04_ass"]}, r"unknown model 'mn04_ass'; choose from mn04_as, .*, "
                                         r"mobilenetv1, e2e; embeddings computed elsewhere "
                                         r"become a model once imported: featurekit "
                                         r"import-embeddings --name mn04_ass"),
    ({"model": ["mn04_as", "mn04_as"]}, "models repeat a name: mn04_as, mn04_as"),
    ({"config": BenchmarkConfig(outer_folds=(2, 7))},
     r"outer fold\(s\) \[7\] not in the data \(folds present: \[1, 2, 3\]\)"),
    ({"config": BenchmarkConfig(train_fractions=(0.5,))}, "learning curves compare handcrafted "
                                                          "branches \\+ each neural branch"),
])
def test_benchmark_refuses_a_bad_argument_before_the_store_exists(
        urbansound8k_dir: Path, tmp_path: Path, arguments: dict, message: str) -> None:
    store = tmp_path / "store"
    with pytest.raises(ConfigError, match=message):
        run("urbansound8k", urbansound8k_dir, store, **{"model": None, "out": tmp_path / "out",
                                                        **arguments})
    assert not store.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("arguments", "message"), [
    ({"system": "timbre/xgbb"}, r"unknown system 'timbre/xgbb' for branches pitch, timbre, "
                                r"spectral and heads xgb, mlp, logreg; e\.g\. "),
    ({"system": "auto", "extraction": ExtractionConfig(families=("timbre",))},
     "'auto' chooses among fused systems over every branch, and there is only timbre"),
    ({"config": BenchmarkConfig(heads=("logreg", "svm"))},
     f"unknown head 'svm'; choose from {HEADS}"),
    ({"model": "mn04_ass"}, "unknown model 'mn04_ass'; choose from mn04_as, "),
])
def test_train_refuses_a_bad_argument_before_the_store_exists(
        urbansound8k_dir: Path, tmp_path: Path, arguments: dict, message: str) -> None:
    store = tmp_path / "store"
    with pytest.raises(ConfigError, match=message):
        train("urbansound8k", urbansound8k_dir, store,
              **{"model": None, "extraction": THREE_FAMILIES, **arguments})
    assert not store.exists()


def test_commands_stop_on_a_bad_argument_with_one_line_naming_it(
        urbansound8k_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whatever the argument: a head, fusion, model, set, fraction, fold or scheduler,
    malformed or unknown."""
    store = tmp_path / "store"
    common = ["--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
              "--store", str(store), "--model", "none"]
    cases = [
        (["benchmark", "--heads", "xgb,svm"], f"unknown head 'svm'; choose from {HEADS}"),
        (["benchmark", "--fusions", "mean,median"], "unknown fusion 'median'; choose from "
                                                    "early, mean"),
        (["benchmark", "--model", "mn04_ass"], "unknown model 'mn04_ass'; choose from "),
        (["benchmark", "--sets", "featurekit,opensmile"], "unknown feature set 'opensmile'; "
                                                          "choose from featurekit, essentia"),
        (["benchmark", "--scheduler", "tcp://127.0.0.1:1"], "a scheduler address needs "
                                                            "backend='dask'"),
        (["benchmark", "--train-fractions", "0.5,1.5"], r"train fractions must be in \(0, 1\], "
                                                        r"got 1\.5"),
        (["benchmark", "--train-fractions", "0.5,half"], "argument --train-fractions: expected "
                                                         "comma-separated fractions, got "
                                                         "'0.5,half'"),
        (["benchmark", "--outer-folds", "9"], r"outer fold\(s\) \[9\] not in the data"),
        (["benchmark", "--outer-folds", "one"], "argument --outer-folds: expected "
                                                "comma-separated fold numbers, got 'one'"),
        (["train", "--system", "timbre/svm", "--out", str(tmp_path / "m.fk")],
         "unknown system 'timbre/svm'"),
        (["train", "--heads", "svm", "--out", str(tmp_path / "m.fk")],
         f"unknown head 'svm'; choose from {HEADS}"),
        (["train", "--folds", "1,x", "--out", str(tmp_path / "m.fk")],
         "argument --folds: expected comma-separated fold numbers, got '1,x'"),
        (["train", "--folds", "1,9", "--out", str(tmp_path / "m.fk")],
         r"training fold\(s\) \[9\] not in urbansound8k"),
    ]
    for arguments, message in cases:
        try:
            code = main([arguments[0], *common, *arguments[1:]])
        except SystemExit as exit_:  # argparse refused it: usage, then the error line
            code = exit_.code
        *usage, last = capsys.readouterr().err.splitlines()
        assert code == 2, (arguments, last)
        assert last.startswith("featurekit: error: ") and re.search(message, last), last
        assert all(line.startswith(("usage:", " ")) for line in usage), usage
        assert not store.exists(), arguments
