"""report.md and plots agree with results.json; the benchmark command end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig, load_results, run_benchmark, save_results
from featurekit.benchmark.report import render_markdown, write_report
from featurekit.cli import main
from featurekit.cli.benchmark import summary_text
from featurekit.config import FAMILIES

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results() -> dict:
    frame = feature_frame(n_clips=120, n_folds=3,
                          widths={"pitch": 4, "spectral": 4, "neural.tiny": 6},
                          signal={"pitch": (low_bit, 3.0), "spectral": (high_bit, 3.0),
                                  "neural.tiny": (full_label, 0.8)})
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean", "stacking"),
                             n_seeds=1, repeats=2, n_bootstrap=200)
    return run_benchmark(frame, dataset="generated", config=config, progress=False,
                         expected_folds=[1, 2, 3, 4])


def test_report_files_are_written_and_consistent_with_results(results: dict,
                                                              tmp_path: Path) -> None:
    save_results(results, tmp_path)
    written = write_report(load_results(tmp_path / "results.json"), tmp_path)
    assert set(written) == {"report", "contributions", "confusion", "per_class_gain"}
    for key in ("contributions", "confusion", "per_class_gain"):
        assert written[key].read_bytes()[:8] == PNG_MAGIC
    text = written["report"].read_text(encoding="utf-8")
    for name in ("branch_contributions.png", "confusion_best.png", "per_class_gain.png"):
        assert f"]({name})" in text
    assert "leave-one-fold-out over folds 1, 2, 3" in text
    assert "folds 4 are not in this copy" in text
    for system in results["systems"]:
        assert f"`{system['name']}`" in text
    by_name = {s["name"]: s for s in results["systems"]}

    def accuracy(name: str) -> str:
        system = by_name[name]
        return f"{100 * system['mean']['accuracy']:.1f} ± {100 * system['std']['accuracy']:.1f}"

    best = results["best_fusion"]
    assert f"Best fusion: `{best}`, accuracy {accuracy(best)} %" in text
    gain = results["fusion_gain"]
    assert (f"{gain['mean_pp']:+.1f} pp (95 % CI {gain['ci95_pp'][0]:+.1f} to "
            f"{gain['ci95_pp'][1]:+.1f} pp") in text
    # The primary comparison comes first, with its interval and how it was computed.
    primary = results["primary"]
    assert (primary["system"], primary["reference"]) == ("auto", "neural-auto")
    headline = (f"**`auto` {100 * by_name['auto']['mean']['accuracy']:.1f} % against "
                f"`neural-auto` {100 * by_name['neural-auto']['mean']['accuracy']:.1f} %: "
                f"{primary['gain_pp']:+.1f} pp (95 % CI {primary['ci95_pp'][0]:+.1f} to "
                f"{primary['ci95_pp'][1]:+.1f} pp")
    assert headline in text
    assert text.index("## Primary comparison") < text.index("## Exploratory")
    assert primary["ci_method"] in text
    for fold, choice in primary["choices"]["auto"].items():
        assert f"| {fold} | {choice} |" in text
    for system in results["systems"]:
        repeat_sd = f"{100 * system['repeat_sd']['accuracy']:.2f}"
        assert f"| `{system['name']}` | {accuracy(system['name'])} |" in text
        assert repeat_sd in text
    for name, entry in results["contributions"]["branches"].items():
        assert f"| {name} | {entry['alone_pct']['mean']:.1f} ± " in text
    for label in results["classes"]:
        assert f"| {label} |" in text
    stacking = next(s for s in results["systems"]
                    if s["name"] == "pitch+spectral+neural.tiny/logreg/stacking")
    assert "## What the fusions relied on" in text
    own = {c["system"]: c for c in results["fusion_vs_own_branches"]}
    assert set(own) == {s["name"] for s in results["systems"] if s["fusion"] and s["head"]}
    assert own[stacking["name"]]["reference"] == max(
        (s for s in results["systems"] if s["fusion"] is None),
        key=lambda s: s["mean"]["accuracy"])["name"]
    assert f"| `{stacking['name']}` | 1 | {stacking['fusion_choice']['1']} |" in text


def test_report_without_fusion_or_missing_folds(results: dict) -> None:
    # Single branches and the primary comparison's two systems, no fusion.
    single = {**results, "systems": [s for s in results["systems"]
                                     if s["fusion"] is None or s["head"] is None],
              "best_fusion": None, "fusion_gain": None, "comparisons": [],
              "missing_folds": []}
    text = render_markdown(single)
    assert "No fusion was run" in text
    assert "All official folds are present." in text
    assert "## Per-class F1" not in text
    assert "## Primary comparison" in text
    # Without `auto` there is neither pre-registered comparison.
    no_primary = render_markdown({**single, "primary": None, "synergy": None,
                                  "systems": [s for s in single["systems"] if s["head"]]})
    assert "## Primary comparison" in no_primary and "`auto`" not in no_primary


@pytest.mark.filterwarnings("ignore:urbansound8k. partial copy")
def test_benchmark_command_end_to_end_on_handcrafted_branches(
        urbansound8k_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")
    out = tmp_path / "out"
    argv = ["benchmark", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
            "--store", str(tmp_path / "store"), "--model", "none", "--heads", "logreg",
            "--fusions", "early,weighted", "--seeds", "1", "--repeats", "1",
            "--bootstrap", "200", "--out", str(out)]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["dataset"] == "urbansound8k"
    assert results["folds"] == [1, 2, 3]
    assert results["missing_folds"] == [4, 5, 6, 7, 8, 9, 10]
    assert set(results["branches"]) == set(FAMILIES)
    assert len(results["config_hashes"]["handcrafted"]) > 0
    assert (out / "report.md").is_file() and (out / "confusion_best.png").is_file()
    printed = capsys.readouterr().out
    # The plan first (before any fit), then the primary comparison.
    assert printed.startswith("## Plan and cost")
    assert "\nprimary: auto " in printed and "vs single-branch-auto" in printed
    assert "exploratory, picked on test folds: best single branch" in printed
    assert results["primary"]["n_repeats"] == 1
    assert "source recordings resampled" in results["primary"]["ci_method"]
    # A rerun finds the store filled and gives the same numbers.
    assert main([*argv[:-1], str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "results.json").read_text(encoding="utf-8"))
    assert again["systems"] == results["systems"]


@pytest.mark.filterwarnings("ignore:urbansound8k. partial copy")
def test_benchmark_command_rejects_bad_options(urbansound8k_dir: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    base = ["benchmark", "--dataset", "urbansound8k", "--data-dir", str(urbansound8k_dir),
            "--store", str(tmp_path / "store"), "--model", "none"]
    assert main([*base, "--fusions", "median"]) == 2
    assert "unknown fusion 'median'" in capsys.readouterr().err
    assert main([*base, "--jobs", "0"]) == 2


@pytest.mark.parametrize(("recording", "unit", "grouping"), [
    (lambda ids: ids, "clips resampled", "clips"),
    (lambda ids: [f"rec{i // 2}" for i in range(len(ids))], "source recordings resampled",
     "recordings")])
def test_interval_and_report_name_the_units_that_were_resampled(recording, unit: str,
                                                                grouping: str) -> None:
    # The datasets name a clip its own recording where sources are unknown (FSD50K,
    # mixtures): the intervals then resample clips, and nothing may say recordings.
    frame = feature_frame(n_clips=60, n_folds=3, widths={"pitch": 3, "neural.tiny": 3},
                          signal={"pitch": (low_bit, 3.0), "neural.tiny": (high_bit, 3.0)})
    frame.insert(4, "recording", recording(frame["clip_id"].tolist()))
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean",), repeats=1,
                             n_bootstrap=100, inner_splits=2)
    results = run_benchmark(frame, dataset="generated", config=config, progress=False)
    assert results["grouping"] == grouping
    assert results["recordings_known"] == (grouping == "recordings")
    assert unit in results["primary"]["ci_method"]
    text = render_markdown(results)
    assert results["primary"]["ci_method"] in text
    for claim in ("keep each source recording whole", "source recordings resampled"):
        assert (claim in text) == (grouping == "recordings")


def test_learning_curve_lines_print_the_metric_of_the_run() -> None:
    # A multi-label curve's gain is in points of macro mAP: its two sides must be mAP too,
    # not the top-1 hit rates beside it.
    systems = [{"name": name, "mean": {"map": 0.5, "accuracy": 0.9}}
               for name in ("pitch/logreg", "auto", "neural-auto")]
    entry = {"fraction": 0.5, "train_clips": 40.0, "branch": "neural.m", "system": "auto",
             "reference": "neural-auto", "metric": "map", "score": 0.612,
             "reference_score": 0.587, "accuracy": 0.9, "reference_accuracy": 0.95,
             "gain_pp": 2.5, "ci95_pp": [-1.0, 6.0]}
    results = {"metric": "map", "systems": systems, "primary": None,
               "best_single": "pitch/logreg", "best_fusion": None, "learning_curve": [entry]}
    line = summary_text(results).splitlines()[-1]
    assert line == ("learning curve 0.5 (40 training clips): auto 61.2 % mAP vs neural-auto "
                    "58.7 % mAP: +2.50 pp [-1.00, +6.00]")
