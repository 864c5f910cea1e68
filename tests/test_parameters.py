"""Parameter counts: of each kind of head (known answers), of fused systems, of the frozen
networks, and their place in results.json and the report."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.report import render_markdown
from featurekit.benchmark.results import frozen_parameters
from featurekit.fusion.rules import make_fusion, rule_parameters
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.heads.mlp import MLPHead
from featurekit.learn.heads.xgb import XGBHead
from featurekit.learn.parameters import n_parameters


def data(n_classes: int = 3, width: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(60) % n_classes
    return rng.normal(size=(60, width)) + y[:, None], y


def test_a_logistic_head_counts_its_coefficients_and_intercepts() -> None:
    assert n_parameters(LogRegHead().fit(*data())) == 3 * 5 + 3
    # Binary: one coefficient row and one intercept.
    assert n_parameters(LogRegHead().fit(*data(n_classes=2))) == 5 + 1


def test_an_mlp_head_counts_its_layers_weights_and_biases() -> None:
    head = MLPHead().fit(*data())
    sizes = [head.coefs_[0].shape[0]] + [w.shape[1] for w in head.coefs_]
    assert sizes[0] == 5 and sizes[-1] == 3
    expected = sum(a * b + b for a, b in itertools.pairwise(sizes))
    assert n_parameters(head) == expected


def test_an_xgboost_head_counts_the_nodes_of_the_trees_it_predicts_with() -> None:
    head = XGBHead(n_estimators=4, early_stopping=False).fit(*data())
    frame = head.model_.get_booster().trees_to_dataframe()
    assert n_parameters(head) == len(frame) == sum(
        len(tree.strip().splitlines()) for tree in head.model_.get_booster().get_dump())
    # Early stopping: only the rounds kept (n_rounds_) count.
    stopped = XGBHead(n_estimators=50, early_stopping=True, refit=False).fit(*data())
    kept = stopped.model_.get_booster()[0:stopped.n_rounds_].trees_to_dataframe()
    assert n_parameters(stopped) == len(kept)


def test_an_unknown_head_has_no_count() -> None:
    assert n_parameters(object()) is None


def test_fusion_rules_count_what_they_learned() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    good = np.eye(3)[y] * 0.6 + 0.4 * rng.dirichlet(np.ones(3), size=90)
    other = rng.dirichlet(np.ones(3), size=90)
    splits = [(np.flatnonzero(np.arange(90) % 3 != k), np.flatnonzero(np.arange(90) % 3 == k))
              for k in range(3)]
    assert rule_parameters(make_fusion("mean").fit([good, other], y, splits)) == 0
    stacking = make_fusion("stacking").fit([good, other], y, splits)
    expected = 0 if stacking.stacker_ is None else 3 * 6 + 3  # 2 branches x 3 classes in
    assert rule_parameters(stacking) == expected


def test_frozen_networks_are_counted_from_their_architecture() -> None:
    counts = frozen_parameters(["pitch", "neural.mn01_as", "neural.unknown", "e2e"])
    assert set(counts) == {"neural.mn01_as", "neural.unknown"}
    assert counts["neural.unknown"] is None
    from featurekit.neural.registry import model_info

    built = model_info("mn01_as").build()
    assert counts["neural.mn01_as"] == sum(p.numel() for p in built.parameters()) > 0


@pytest.fixture(scope="module")
def results() -> dict:
    frame = feature_frame(n_clips=96, n_folds=3, n_classes=4,
                          widths={"pitch": 3, "spectral": 2, "neural.tiny": 4},
                          signal={"pitch": (low_bit, 2.0), "spectral": (high_bit, 2.0),
                                  "neural.tiny": (full_label, 0.6)})
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean"), repeats=1,
                             n_bootstrap=100)
    return run_benchmark(frame, dataset="generated", config=config, progress=False)


def test_results_and_report_carry_every_systems_counts(results: dict) -> None:
    by_name = {system["name"]: system for system in results["systems"]}
    assert all("n_parameters" in s and "n_frozen_parameters" in s for s in results["systems"])
    # 4 classes: a logistic head on w columns learns 4 w + 4 values.
    assert by_name["pitch/logreg"]["n_parameters"] == 4 * 3 + 4
    assert by_name["pitch+spectral/logreg/early"]["n_parameters"] == 4 * 5 + 4
    # The mean fusion learns nothing of its own: its branches' heads.
    assert by_name["pitch+spectral/logreg/mean"]["n_parameters"] == (4 * 3 + 4) + (4 * 2 + 4)
    # A selection counts the systems it chose.
    chosen = by_name[results["primary"]["reference"]]
    assert chosen["n_parameters"] == by_name["neural.tiny/logreg"]["n_parameters"]
    # "neural.tiny" is no registry model: its frozen network is not counted.
    assert results["frozen_parameters"] == {"neural.tiny": None}
    assert by_name["pitch/logreg"]["n_frozen_parameters"] == 0
    assert by_name["neural.tiny/logreg"]["n_frozen_parameters"] is None
    text = render_markdown(results)
    assert "| Fusion | logreg | learned | frozen |" in text
    assert "| `pitch/logreg` |" in text and "| 16 | 0 |" in text
