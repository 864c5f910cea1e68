"""The plan before the run: its counts are the run's, ``--plan`` fits nothing, and a run records
the plan with measured seconds (the estimate's accuracy is measured on real data, in
benchmarks/notes/scale.md, not asserted here: timings are not correctness)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit
from test_multilabel import _features_table

import featurekit.benchmark.engine as engine_module
import featurekit.benchmark.execute as execute_module
from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.calibrate import HeadCost
from featurekit.benchmark.estimate import STAGES, makespan
from featurekit.cli import main
from featurekit.names import TRAIN_VAL_EVAL
from featurekit.store.reader import FeatureStore


def test_head_cost_recovers_the_model_of_its_timed_fits() -> None:
    def truth(rows: float, columns: float) -> float:
        return (0.2 + 3e-3 * columns) * (rows / 900) ** 1.3

    rows, columns = (900, 600), (7, 1100)
    model = HeadCost.fitted(rows, columns, {"narrow": truth(900, 7), "wide": truth(900, 1100),
                                            "wide_inner": truth(600, 1100)})
    assert model.exponent == pytest.approx(1.3)
    for r, c in [(300, 50), (2000, 400), (8000, 1100)]:
        assert model(r, c) == pytest.approx(truth(r, c))
    # A wide fit no slower than a narrow one (an MLP stopping early): every input costs the
    # wide one's; an inner fit slower than the full one: the exponent is bounded.
    noisy = HeadCost.fitted(rows, columns, {"narrow": 1.2, "wide": 0.9, "wide_inner": 1.0})
    assert noisy.slope == 0.0 and noisy(900, 5) == pytest.approx(0.9)
    assert noisy.exponent == 0.5


def test_makespan_hands_tasks_in_order_to_the_first_free_worker() -> None:
    assert makespan([3, 1, 1, 1], 2) == 3
    assert makespan([1, 1, 1, 3], 2) == 4
    assert makespan([2, 2, 2], 1) == 6
    assert makespan([], 4) == 0


def test_the_plan_counts_what_the_run_does_and_records_both_costs() -> None:
    frame = feature_frame(n_clips=90, n_folds=3, widths={"pitch": 4, "spectral": 6,
                                                         "neural.tiny": 5},
                          signal={"pitch": (low_bit, 3.0), "spectral": (high_bit, 3.0),
                                  "neural.tiny": (full_label, 0.8)})
    config = BenchmarkConfig(heads=("logreg", "xgb"), fusions=("early", "stacking",
                                                               "oof_features"),
                             n_seeds=2, repeats=2, n_bootstrap=100)
    printed = []
    results = run_benchmark(frame, dataset="generated", config=config, progress=False,
                            calibrate=True, on_plan=printed.append)
    plan = results["plan"]
    assert printed and printed[0]["units"] == plan["units"]
    # Every fit the run made (members and inner twins), every system and comparison.
    assert plan["fits"] == results["n_fits"]
    assert plan["systems"] == [s["name"] for s in results["systems"]]
    # The primary and synergy comparisons, then the others.
    assert plan["comparisons"] == (2 + len(results["branch_comparisons"])
                                   + len(results["comparisons"])
                                   + len(results["fusion_vs_own_branches"])
                                   + len(results["sequence_vs_functionals"]))
    by_head = {(w["stage"], w["head"]): w for w in plan["work"]}
    assert sum(w["units"] for w in plan["work"]) == plan["units"]
    # Stage 2 holds the oof_features units: one per head, fold and repeat of each subset
    # with the neural branch beside others (pitch+, spectral+, all).
    assert by_head[2, "xgb"]["units"] == by_head[2, "logreg"]["units"] == 3 * 3 * 2
    # xgb is seeded (two members), logreg is not.
    assert by_head[2, "xgb"]["fits"] == 2 * by_head[2, "logreg"]["fits"]
    stages = {stage["name"]: stage for stage in plan["stages"]}
    assert list(stages) == [name for name in STAGES if name in stages]
    for name in ("calibration", "fits", "fusion", "statistics"):
        assert stages[name]["estimated_s"] > 0 and stages[name]["measured_s"] > 0
    assert plan["estimated_wall_s"] > 0 and plan["measured_wall_s"] > 0
    assert plan["estimated_peak_rss_bytes"] > 0 and plan["measured_peak_rss_bytes"] > 0
    assert set(plan["calibration"]["heads"]) == {"logreg", "xgb"}
    # Without calibration the run counts the same work and measures its stages only.
    plain = run_benchmark(frame, dataset="generated", config=config, progress=False)["plan"]
    assert (plain["units"], plain["fits"], plain["work"]) == (plan["units"], plan["fits"],
                                                              plan["work"])
    assert plain["estimated_wall_s"] is None and not plain["calibration"]
    assert all(stage["estimated_s"] is None for stage in plain["stages"])


def test_the_official_split_plan_counts_one_fit_per_member() -> None:
    """Without refits (train / validation / eval) a unit is its members' fits on the train
    clips, and the plan counts exactly those."""
    frame = feature_frame(n_clips=90, n_folds=3, widths={"pitch": 4, "neural.tiny": 5},
                          signal={"pitch": (low_bit, 3.0), "neural.tiny": (full_label, 0.8)})
    config = BenchmarkConfig(heads=("logreg", "xgb"), fusions=("early", "stacking",
                                                               "oof_features"),
                             n_seeds=2, repeats=2, n_bootstrap=100)
    results = run_benchmark(frame, dataset="generated", config=config, progress=False,
                            protocol=TRAIN_VAL_EVAL)
    plan = results["plan"]
    assert plan["fits"] == results["n_fits"]
    by_head = {(w["stage"], w["head"]): w for w in plan["work"]}
    # Stage 1: no twins, so xgb fits its two seeds and logreg once per unit.
    assert by_head[1, "xgb"]["fits"] == 2 * by_head[1, "xgb"]["units"]
    assert by_head[1, "logreg"]["fits"] == by_head[1, "logreg"]["units"]



@pytest.fixture
def no_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail on any unit fit or execution of a plan."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a unit was fitted")

    monkeypatch.setattr(execute_module, "fit_unit", refuse)
    monkeypatch.setattr(engine_module, "execute", refuse)


@pytest.mark.parametrize("multilabel", [False, True])
def test_the_statistics_estimate_spreads_the_bootstraps_over_the_workers(
        multilabel: bool, no_fits: None) -> None:
    frame = (_features_table() if multilabel else
             feature_frame(n_clips=60, widths={"pitch": 3, "neural.tiny": 4}))
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), repeats=2,
                             n_bootstrap=100)
    plan = run_benchmark(frame, dataset="g", config=config, multilabel=multilabel, n_jobs=2,
                         plan_only=True, progress=False)["plan"]
    stage = next(stage for stage in plan["stages"] if stage["name"] == "statistics")
    assert stage["note"].startswith(f"{plan['comparisons']} comparisons ")
    tasks = plan["comparisons"]  # single-label: a bootstrap each
    if multilabel:
        # Each system the comparisons may read, once: at most every system and selection.
        tasks = int(re.search(r"of up to (\d+) systems", stage["note"]).group(1))
        assert 2 < tasks <= len(plan["systems"])
    assert stage["note"].endswith(" s) on 2 worker(s)")
    assert stage["estimated_s"] == pytest.approx(
        math.ceil(tasks / 2) * plan["calibration"]["comparison_s"])


def test_the_fusion_estimate_prices_the_systems_that_compete_in_a_selection_apart(
        no_fits: None) -> None:
    """A system scored in a selection makes inner predictions too (a learned fusion is fitted
    again per inner split): few are, and timing them alike priced every system at their cost
    (at 2,500 mixture clips, --plan's fusion stage was 2.5 times the measured one)."""
    frame = feature_frame(n_clips=60, widths={"pitch": 3, "spectral": 3, "neural.tiny": 4})
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "stacking"), repeats=2,
                             n_bootstrap=100)
    plan = run_benchmark(frame, dataset="g", config=config, n_jobs=2, plan_only=True,
                         progress=False)["plan"]
    timed, counts = (plan["calibration"]["fusion_s_per_system"],
                     plan["calibration"]["fusion_systems"])
    assert set(timed) == set(counts)
    for fusion in ("early", "stacking"):
        assert counts[fusion] > 0 and counts[f"{fusion}+inner"] > 0
        assert counts[fusion] + counts[f"{fusion}+inner"] == sum(
            name.endswith(f"/{fusion}") for name in plan["systems"])
    # One unscored stacking fits the fusion once; a scored one once per inner split more.
    assert timed["stacking+inner"] > timed["stacking"]
    tasks = frame["fold"].nunique() * config.repeats
    stage = next(stage for stage in plan["stages"] if stage["name"] == "fusion")
    assert stage["estimated_s"] == pytest.approx(
        math.ceil(tasks / 2) * sum(timed[kind] * counts[kind] for kind in counts))
    assert f"stacking+inner {counts['stacking+inner']} x " in stage["note"]


@pytest.mark.filterwarnings("ignore:urbansound8k. partial copy")
def test_plan_option_fills_and_fits_nothing_and_writes_plan_json(
        urbansound8k_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch, no_fits: None) -> None:
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")
    store = tmp_path / "store"
    base = ["benchmark", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
            "--store", str(store), "--model", "none", "--heads", "logreg,xgb",
            "--fusions", "early,mean", "--repeats", "1", "--bootstrap", "200"]
    # An empty store: only the fill is estimated, from a few clips, and nothing is stored.
    assert main([*base, "--plan", "--out", str(tmp_path / "empty")]) == 0
    empty = json.loads((tmp_path / "empty" / "plan.json").read_text(encoding="utf-8"))
    assert (empty["units"], empty["fits"]) == (0, 0)
    fill = next(stage for stage in empty["stages"] if stage["name"] == "fill")
    assert fill["estimated_s"] > 0 and "handcrafted: 18 clips" in fill["note"]
    assert empty["estimated_wall_s"] == fill["estimated_s"]
    assert "lacks handcrafted" in empty["notes"][0]
    assert not FeatureStore(store).datasets()
    printed = capsys.readouterr().out
    assert printed.startswith("## Plan and cost") and "results.json" not in printed

    assert main(["extract", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
                 "--store", str(store)]) == 0
    capsys.readouterr()
    out = tmp_path / "planned"
    assert main([*base, "--plan", "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == ["plan.json"]
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    assert plan["units"] > 0 and plan["fits"] >= plan["units"]
    assert plan["estimated_wall_s"] > 0 and plan["estimated_peak_rss_bytes"] > 0
    assert {w["head"] for w in plan["work"]} == {"logreg", "xgb"}
    stages = {stage["name"]: stage for stage in plan["stages"]}
    assert stages["fill"]["note"] == "nothing missing"
    assert all(stages[name]["estimated_s"] > 0 and stages[name]["measured_s"] is None
               for name in ("fits", "fusion", "statistics", "report"))
    assert "| fits |" in capsys.readouterr().out
    # The plan counts the chosen ablation's work: fewer units without the leave-one-out
    # subsets, more with every pair of branches.
    units = {}
    for mode in ("none", "full"):
        assert main([*base, "--plan", "--ablation", mode, "--out", str(tmp_path / mode)]) == 0
        units[mode] = json.loads((tmp_path / mode / "plan.json").read_text(
            encoding="utf-8"))["units"]
    assert units["none"] < plan["units"] < units["full"]


@pytest.mark.filterwarnings("ignore:urbansound8k. partial copy")
def test_a_run_prints_its_plan_first_and_records_it_with_measured_seconds(
        urbansound8k_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")
    out = tmp_path / "out"
    assert main(["benchmark", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
                 "--store", str(tmp_path / "store"), "--model", "none", "--heads", "logreg",
                 "--fusions", "mean", "--repeats", "1", "--bootstrap", "200",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.index("## Plan and cost") < printed.index("primary: ")
    plan = json.loads((out / "results.json").read_text(encoding="utf-8"))["plan"]
    stages = {stage["name"]: stage for stage in plan["stages"]}
    # The store was filled by this run: estimated from a few clips, then measured.
    assert stages["fill"]["estimated_s"] > 0 and stages["fill"]["measured_s"] > 0
    for name in ("read", "calibration", "fits", "fusion", "statistics", "report"):
        assert stages[name]["measured_s"] is not None and stages[name]["estimated_s"] > 0
    assert plan["measured_wall_s"] >= sum(stage["measured_s"] for stage in stages.values())
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## Plan and cost" in report and "| fits |" in report
    assert np.isfinite(plan["estimated_wall_s"])
