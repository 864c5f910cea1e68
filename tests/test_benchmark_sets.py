"""Feature sets side by side in the benchmark: subsets, pairs, table, plot, end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig
from featurekit.benchmark.driver import run
from featurekit.benchmark.engine import run_benchmark
from featurekit.benchmark.report import render_markdown, write_report
from featurekit.benchmark.report.sets import SETS_PLOT, sets_rows, sets_summary
from featurekit.benchmark.sets import benchmark_sets, set_ablation, set_selectors
from featurekit.datasets.base import Dataset, clips_frame
from featurekit.errors import ConfigError, StoreError
from featurekit.store.reader import FeatureStore
from featurekit.store.records import ClipResult


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
    assert "Ablation `" not in text  # the sets' own subsets, not an ablation mode's
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


def _label_set_store(root: Path) -> tuple[FeatureStore, Dataset]:
    """A store of the featurekit set and a CNN branch of an official train/val/eval split of
    label sets (an FSD50K-like task), and its dataset."""
    rng = np.random.default_rng(0)
    classes = ["bark", "rain", "siren"]
    Y = (rng.random((90, 3)) < 0.4).astype(int)
    Y[Y.sum(axis=1) == 0, 1] = 1
    clips = clips_frame([f"c{i:03d}" for i in range(90)], [f"/audio/c{i:03d}.wav" for i in
                                                          range(90)],
                        [",".join(c for c, y in zip(classes, row, strict=True) if y)
                         for row in Y], np.argmax(Y, axis=1), np.arange(90) % 3 + 1)
    store = FeatureStore(root)
    for branch, names, values in (
            ("handcrafted", [f"pitch.f{j}.mean" for j in range(4)],
             Y @ rng.normal(size=(3, 4)) + rng.normal(size=(90, 4))),
            ("neural.m", [f"neural.m.emb_{j}" for j in range(3)], rng.normal(size=(90, 3)))):
        with store.writer("toy", branch, feature_names=names,
                          provenance={"config_hash": branch}) as writer:
            writer.write_batch(clips, [ClipResult(row.astype(np.float32)) for row in values])
    dataset = Dataset("toy", clips, classes, [1, 2, 3], root, protocol="train-val-eval",
                      multilabel=True)
    return store, dataset


def test_sets_keep_the_datasets_label_sets_and_official_split(tmp_path: Path) -> None:
    # Scored leave-one-fold-out on each clip's first label, the eval clips would train the
    # heads and the figures would not be the dataset's task.
    store, dataset = _label_set_store(tmp_path / "store")
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean",), repeats=1,
                             n_bootstrap=100, inner_splits=2)
    results = benchmark_sets(store, dataset, ["featurekit"], model="m", config=config,
                             progress=False)
    assert results["protocol"] == "train-val-eval" and results["folds"] == [3]
    assert results["multilabel"] and results["metric"] == "map"
    assert results["classes"] == ["bark", "rain", "siren"]
    assert results["clips_per_fold"] == {"3": 30}


def test_learning_curve_compares_the_sets_of_the_full_run() -> None:
    # Re-planned with the default ablation, a fraction's rows would compare
    # auto(featurekit+essentia+neural.m) against neural-auto, not the sets' pairs.
    frame = feature_frame(n_clips=96, n_folds=3,
                          widths={"featurekit": 3, "essentia": 3, "neural.m": 3},
                          signal={"featurekit": (full_label, 3.0), "neural.m": (low_bit, 3.0)})
    selectors = {name: f"{name}." for name in ("featurekit", "essentia", "neural.m")}
    subsets, pairs = set_ablation(list(selectors))
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean",), repeats=1, n_bootstrap=100,
                             inner_splits=2, train_fractions=(0.5, 1.0))
    results = run_benchmark(frame, dataset="synthetic", branches=selectors, config=config,
                            subsets=subsets, pairs=pairs, progress=False)
    by_fraction = {fraction: [(e["branch"], e["system"], e["reference"])
                              for e in results["learning_curve"] if e["fraction"] == fraction]
                   for fraction in (0.5, 1.0)}
    assert len(by_fraction[1.0]) == len(pairs) == 5
    assert by_fraction[0.5] == by_fraction[1.0]
