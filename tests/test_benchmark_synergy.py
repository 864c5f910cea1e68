"""The synergy comparison: ``auto`` against ``single-auto``, the best system made of one group
of streams only, chosen like ``auto`` by inner cross-validation; in results.json, the learning
curve, the CLI summary and the report; and the primary comparison left as it was."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

import featurekit.benchmark.fuse as fuse_module
from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.data import prepare_data
from featurekit.benchmark.plan import make_plan
from featurekit.benchmark.report import render_markdown
from featurekit.cli.benchmark import summary_text
from featurekit.learn.selection import oof_score

CONFIG = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean"), repeats=2,
                         n_bootstrap=200, train_fractions=(0.5, 1.0))
WIDTHS = {"pitch": 3, "spectral": 3, "neural.tiny": 4}


def frame():
    return feature_frame(n_clips=96, n_folds=3, widths=WIDTHS,
                         signal={"pitch": (low_bit, 2.0), "spectral": (high_bit, 2.0),
                                 "neural.tiny": (full_label, 0.6)})


@pytest.fixture(scope="module")
def spied_run() -> tuple[dict, list[dict]]:
    """A run with a learning curve, and every ``single-auto`` choice with what it saw."""
    calls: list[dict] = []
    real = fuse_module.select_by_oof

    def select_by_oof(candidates, probas, y):
        chosen = real(candidates, probas, y)
        calls.append({"candidates": list(candidates), "y": np.array(y),
                      "scores": [oof_score(y, p) for p in probas], "best": chosen.best})
        return chosen

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fuse_module, "select_by_oof", select_by_oof)
        results = run_benchmark(frame(), dataset="generated", config=CONFIG, progress=False)
    return results, calls


def test_results_carry_the_synergy_comparison_with_the_primary_keys(spied_run) -> None:
    results, _ = spied_run
    synergy, primary = results["synergy"], results["primary"]
    assert set(synergy) == set(primary)
    assert (synergy["system"], synergy["reference"]) == ("auto", "single-auto")
    assert results["synergy_note"] is None
    assert synergy["selection"] == "inner_cv" and synergy["n_repeats"] == CONFIG.repeats
    low, high = synergy["ci95_pp"]
    assert low <= synergy["gain_pp"] <= high
    assert set(synergy["per_fold_pp"]) == {"1", "2", "3"}
    by_name = {system["name"]: system for system in results["systems"]}
    gain = 100 * (by_name["auto"]["mean"]["accuracy"]
                  - by_name["single-auto"]["mean"]["accuracy"])
    assert synergy["gain_pp"] == pytest.approx(gain)


def test_single_auto_chooses_the_best_inner_one_group_system(spied_run) -> None:
    results, calls = spied_run
    data = prepare_data(frame(), CONFIG)
    plan = make_plan(data.branches, CONFIG, data.folds)
    one_group = {"pitch+spectral/logreg/early", "pitch+spectral/logreg/mean",
                 "neural.tiny/logreg"}
    assert set(plan.synergy_candidates) == one_group
    picks = [call for call in calls if set(call["candidates"]) == one_group]
    # Every outer fold and repeat of the full run, and of the curve's fraction below 1.
    assert len(picks) == 2 * 3 * CONFIG.repeats
    for call in picks:
        assert call["best"] in one_group
        assert call["scores"][call["candidates"].index(call["best"])] == max(call["scores"])
        # Inner out-of-fold rows of the training folds only: never a whole dataset's worth.
        assert len(call["y"]) < len(data.y)
    chosen = {choice for choices in results["synergy"]["choices"]["single-auto"].values()
              for choice in choices.split("; ")}
    assert all(any(name in choice for name in one_group) for choice in chosen)


def test_the_learning_curve_has_a_synergy_entry_per_fraction(spied_run) -> None:
    results, _ = spied_run
    curve = results["learning_curve_synergy"]
    assert [entry["fraction"] for entry in curve] == [0.5, 1.0]
    for entry in curve:
        assert set(results["primary"]) <= set(entry)
        assert (entry["system"], entry["reference"]) == ("auto", "single-auto")
    # Fraction 1 is the full run's own comparison.
    assert curve[1]["gain_pp"] == pytest.approx(results["synergy"]["gain_pp"])
    assert curve[0]["train_clips"] < curve[1]["train_clips"]


def test_summary_and_report_show_it(spied_run) -> None:
    results, _ = spied_run
    printed = summary_text(results)
    synergy = results["synergy"]
    assert "synergy: auto " in printed and "vs single-auto" in printed
    assert f"{synergy['gain_pp']:+.2f} pp" in printed
    assert "learning curve 0.5 (" in printed and "), synergy: auto" in printed
    text = render_markdown(results)
    assert "## Synergy comparison" in text
    assert text.index("## Primary comparison") < text.index("## Synergy comparison")
    low, high = synergy["ci95_pp"]
    assert f"(95 % CI {low:+.1f} to {high:+.1f} pp" in text
    assert "The same comparison at each fraction of the learning curve" in text


def test_without_a_neural_branch_the_synergy_comparison_is_omitted_with_its_reason() -> None:
    config = BenchmarkConfig(heads=("logreg",), fusions=("early",), repeats=1,
                             n_bootstrap=100)
    handcrafted = frame().drop(columns=[c for c in frame().columns
                                        if str(c).startswith("neural.")])
    results = run_benchmark(handcrafted, dataset="generated", config=config, progress=False)
    assert results["synergy"] is None and "no neural branch" in results["synergy_note"]
    assert results["primary"]["reference"] == "single-branch-auto"
    assert "synergy: none (no neural branch" in summary_text(results)
    assert "None: no neural branch" in render_markdown(results)


def test_the_primary_comparison_is_unchanged_by_the_synergy_comparison() -> None:
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean"), repeats=2,
                             n_bootstrap=200)
    with_synergy = run_benchmark(frame(), dataset="generated", config=config, progress=False)
    # Without the handcrafted branches' own set, the plan has no synergy comparison.
    branches = list(WIDTHS)
    subsets = {(name,): [f"alone:{name}"] for name in branches}
    subsets[tuple(branches)] = ["all"]
    without = run_benchmark(frame(), dataset="generated", config=config, progress=False,
                            subsets=subsets)
    assert with_synergy["synergy"] is not None and without["synergy"] is None
    assert without["primary"] == with_synergy["primary"]
