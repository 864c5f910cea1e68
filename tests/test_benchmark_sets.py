"""Feature sets side by side in the benchmark: subsets, pairs, table, plot, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark.driver import run
from featurekit.benchmark.engine import run_benchmark
from featurekit.benchmark.report import render_markdown, write_report
from featurekit.benchmark.report.sets import SETS_PLOT, sets_rows, sets_summary
from featurekit.benchmark.sets import set_ablation, set_selectors
from featurekit.errors import ConfigError, StoreError
from featurekit.store.reader import FeatureStore


# -- side by side in the benchmark ----------------------------------------------------------
def test_set_ablation_subsets_and_pairs() -> None:
    branches = ["featurekit", "essentia", "neural.m"]
    subsets, pairs = set_ablation(branches)
    assert set(subsets) == {("featurekit",), ("essentia",), ("neural.m",),
                            ("featurekit", "neural.m"), ("essentia", "neural.m"),
                            ("featurekit", "essentia", "neural.m")}
    assert subsets[("featurekit", "essentia", "neural.m")] == ["all"]
    assert pairs == [(("featurekit", "neural.m"), "neural.m"), (("essentia", "neural.m"),
                                                                "neural.m"),
                     (("featurekit",), "neural.m"), (("essentia",), "neural.m"),
                     (("featurekit",), "essentia")]
    _, without_neural = set_ablation(["featurekit", "opensmile.egemaps"])
    assert without_neural == [(("featurekit",), "opensmile.egemaps")]


def test_set_selectors_need_every_set() -> None:
    columns = ["pitch.a.mean", "essentia.b.mean", "neural.m.emb_000", "neural.m.tag_000"]
    assert set_selectors(["featurekit", "essentia"], columns) == {
        "featurekit": ["pitch.a.mean"], "essentia": ["essentia.b.mean"],
        "neural.m": ["neural.m.emb_000"]}
    with pytest.raises(StoreError, match=r"opensmile\.compare"):
        set_selectors(["opensmile.compare"], columns)


def test_sets_side_by_side_on_known_signals(tmp_path: Path) -> None:
    # featurekit carries the whole label, essentia one bit, the CNN the other bit: featurekit
    # beats essentia alone, and both add to the CNN.
    frame = feature_frame(n_clips=160, n_folds=4,
                          widths={"featurekit": 4, "essentia": 4, "neural.m": 4},
                          signal={"featurekit": (full_label, 3.0), "essentia": (low_bit, 3.0),
                                  "neural.m": (high_bit, 3.0)})
    selectors = {name: f"{name}." for name in ("featurekit", "essentia", "neural.m")}
    subsets, pairs = set_ablation(list(selectors))
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean"), repeats=1,
                             n_bootstrap=200, inner_splits=2)
    results = run_benchmark(frame, dataset="synthetic", branches=selectors, config=config,
                            subsets=subsets, pairs=pairs, progress=False)
    results["feature_sets"] = {"sets": ["featurekit", "essentia"], "neural": ["neural.m"]}
    rows = {row["set"]: row for row in sets_rows(results)}
    assert rows["featurekit"]["alone"]["mean"] > 90
    assert rows["essentia"]["alone"]["mean"] < 60
    assert rows["featurekit"]["featurekit_minus_set"] is None
    assert rows["essentia"]["featurekit_minus_set"]["ci95"][0] > 20
    for name in ("featurekit", "essentia"):
        assert rows[name]["adds_to_neural"]["ci95"][0] > 10
        assert rows[name]["neural_alone"]["mean"] < 60
    assert "set essentia: alone" in "\n".join(sets_summary(results))
    text = render_markdown(results)
    assert "## Feature sets side by side" in text
    assert "| `essentia` | 4 |" in text
    written = write_report(results, tmp_path / "out")
    assert written["feature_sets"] == tmp_path / "out" / SETS_PLOT
    assert written["feature_sets"].stat().st_size > 0


def test_sets_end_to_end(tmp_path: Path, urbansound8k_dir: Path) -> None:
    pytest.importorskip("essentia")
    pytest.importorskip("opensmile")
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean",), repeats=1, n_bootstrap=100,
                             inner_splits=2)
    outcome = run("urbansound8k", urbansound8k_dir, tmp_path / "store",
                  sets="featurekit,essentia,opensmile.egemaps", model=None, config=config,
                  out=tmp_path / "out", progress=False)
    store = FeatureStore(tmp_path / "store")
    assert {"handcrafted", "essentia", "opensmile.egemaps"} <= set(store.branches(
        "urbansound8k"))
    results = outcome.results
    assert results["feature_sets"]["sets"] == ["featurekit", "essentia", "opensmile.egemaps"]
    assert {"featurekit/logreg", "essentia/logreg", "opensmile.egemaps/logreg",
            "auto(featurekit)", "auto(essentia)"} <= {s["name"] for s in results["systems"]}
    assert "## Feature sets side by side" in (tmp_path / "out" / "report.md").read_text()
    with pytest.raises(ConfigError, match="sequence head"):
        run("urbansound8k", urbansound8k_dir, tmp_path / "store", sets="featurekit",
            model=None, config=BenchmarkConfig(heads=("seq",)))
