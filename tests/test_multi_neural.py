"""Several neural branches at once: ``neural-auto`` chooses among each network alone and all of
them together, in every ablation mode; ``train`` fits them all, an imported one included, and
``predict`` takes an imported branch's embeddings of the new files with ``--embeddings``."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_features import feature_frame, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.ablation import ablation_subsets
from featurekit.benchmark.config import ABLATION_MODES
from featurekit.benchmark.plan import make_plan
from featurekit.benchmark.report import render_markdown

FOLDS = np.repeat([1, 2, 3], 4)
HANDCRAFTED = ("pitch", "spectral")
TWO = [*HANDCRAFTED, "neural.a", "neural.b"]
QUICK = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean"), repeats=1,
                        n_bootstrap=100)


@pytest.mark.parametrize("mode", ABLATION_MODES)
def test_every_mode_has_each_network_alone_with_the_handcrafted_together_and_everything(
        mode: str) -> None:
    plan = make_plan(TWO, BenchmarkConfig(**{**QUICK.to_dict(), "ablation": mode}), FOLDS)
    subsets = {system.branches: system.roles for system in plan.systems}
    assert ("neural.a",) in subsets and ("neural.b",) in subsets
    assert (*HANDCRAFTED, "neural.a") in subsets and (*HANDCRAFTED, "neural.b") in subsets
    assert "neural" in subsets["neural.a", "neural.b"]  # the networks together
    assert "all" in subsets[tuple(TWO)]
    # neural-auto: each network alone, and every fusion of both; auto: everything.
    assert plan.reference == "neural-auto"
    assert plan.reference_candidates == [
        "neural.a/logreg", "neural.b/logreg", "neural.a+neural.b/logreg/early",
        "neural.a+neural.b/logreg/mean"]
    assert plan.auto_candidates == ["pitch+spectral+neural.a+neural.b/logreg/early",
                                    "pitch+spectral+neural.a+neural.b/logreg/mean"]
    # Each network's own comparison keeps its own name: neural-auto is the pool of all.
    assert [(c.system, c.reference) for c in plan.branch_comparisons] == [
        ("auto(pitch+spectral+neural.a)", "auto(neural.a)"),
        ("auto(pitch+spectral+neural.b)", "auto(neural.b)")]


def test_the_e2e_stream_joins_the_networks_through_fusions_of_probabilities() -> None:
    branches = ["pitch", "neural.m", "e2e"]
    plan = make_plan(branches, BenchmarkConfig(heads=("logreg",), fusions=(
        "early", "mean", "oof_features"), repeats=1), FOLDS)
    assert plan.reference_candidates == [
        "neural.m/logreg", "e2e/cnn", "neural.m+e2e/logreg/mean",
        "neural.m+e2e/logreg/oof_features"]  # no columns to concatenate for e2e
    assert ablation_subsets(branches)["neural.m", "e2e"] == ["neural", "all_but:pitch"]
    assert ablation_subsets(branches, "none")["neural.m", "e2e"] == ["neural"]


@pytest.mark.parametrize("mode", ABLATION_MODES)
def test_one_neural_branch_plans_what_it_always_planned(mode: str) -> None:
    config = BenchmarkConfig(**{**QUICK.to_dict(), "ablation": mode})
    plan = make_plan([*HANDCRAFTED, "neural.m"], config, FOLDS)
    assert plan.reference_candidates == ["neural.m/logreg"]
    assert all("neural" not in system.roles for system in plan.systems)
    assert "neural" not in {label for labels in ablation_subsets(
        [*HANDCRAFTED, "neural.m"], mode).values() for label in labels}


def test_without_handcrafted_branches_neural_auto_keeps_to_single_networks() -> None:
    # The networks together are everything there: auto's pool, not its reference's.
    plan = make_plan(["neural.a", "neural.b"], QUICK, FOLDS)
    assert plan.reference_candidates == ["neural.a/logreg", "neural.b/logreg"]
    assert plan.auto_candidates == ["neural.a+neural.b/logreg/early",
                                    "neural.a+neural.b/logreg/mean"]


def _halves() -> object:
    """Each network carries half of the label (one bit of four classes), the handcrafted
    branches nothing: only the networks together know the class."""
    return feature_frame(n_clips=96, n_folds=3,
                         widths={"pitch": 3, "spectral": 3, "neural.a": 4, "neural.b": 4},
                         signal={"neural.a": (low_bit, 3.0), "neural.b": (high_bit, 3.0)})


@pytest.fixture(scope="module")
def halves_run() -> dict:
    return run_benchmark(_halves(), dataset="generated", config=QUICK, progress=False)


def test_neural_auto_chooses_the_networks_together_when_they_need_each_other(
        halves_run: dict) -> None:
    results = halves_run
    by_name = {system["name"]: system for system in results["systems"]}
    primary = results["primary"]
    assert (primary["system"], primary["reference"]) == ("auto", "neural-auto")
    assert primary["candidates"]["neural-auto"] == [
        "neural.a/logreg", "neural.b/logreg", "neural.a+neural.b/logreg/early",
        "neural.a+neural.b/logreg/mean"]
    assert primary["candidates"]["auto"] == [
        "pitch+spectral+neural.a+neural.b/logreg/early",
        "pitch+spectral+neural.a+neural.b/logreg/mean"]
    choices = [choice for value in primary["choices"]["neural-auto"].values()
               for choice in value.split("; ")]
    assert choices and all(choice.startswith("neural.a+neural.b/") for choice in choices)
    # Alone, a network knows one bit of two; together they know the class.
    singles = max(by_name[name]["mean"]["accuracy"]
                  for name in ("neural.a/logreg", "neural.b/logreg"))
    assert singles < 0.65 < by_name["neural-auto"]["mean"]["accuracy"]
    # So the handcrafted noise adds nothing on top of both networks.
    assert abs(primary["gain_pp"]) < 10
    assert by_name["neural-auto"]["branches"] == ["neural.a", "neural.b"]
    report = render_markdown(results)
    assert "or with several neural branches any head x fusion of them all" in report
    assert "| neural.a+neural.b/logreg/early |" in report.replace("`", "")
    assert results["synergy"]["candidates"]["single-auto"] == [
        "pitch+spectral/logreg/early", "pitch+spectral/logreg/mean", "neural.a/logreg",
        "neural.b/logreg"]


def test_the_none_mode_runs_the_primary_comparison_of_the_default(halves_run: dict) -> None:
    none = run_benchmark(_halves(), dataset="generated", progress=False,
                         config=BenchmarkConfig(**{**QUICK.to_dict(), "ablation": "none"}))
    assert none["primary"] == halves_run["primary"]
    assert len(none["systems"]) < len(halves_run["systems"])
