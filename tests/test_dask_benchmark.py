"""The benchmark's units and the comparisons' bootstraps run on a Dask cluster give the same
results as joblib processes."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_features import feature_frame, full_label
from test_parallel_statistics import comparison_entries, label_set_run

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.errors import ConfigError

CONFIG = BenchmarkConfig(heads=("logreg",), fusions=("early", "weighted"), repeats=2,
                         n_bootstrap=200)
WIDTHS = {"pitch": 3, "timbre": 3, "neural.tiny": 4}


def accuracies(results: dict) -> dict[str, list[float]]:
    return {s["name"]: s["repeats"]["accuracy"] for s in results["systems"]}


def test_dask_cluster_gives_the_loky_results() -> None:
    distributed = pytest.importorskip("distributed")
    frame = feature_frame(n_clips=90, widths=WIDTHS, signal={"timbre": (full_label, 1.5)})
    local = run_benchmark(frame, dataset="g", config=CONFIG, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = run_benchmark(frame, dataset="g", config=CONFIG, progress=False,
                               backend="dask", scheduler=cluster.scheduler_address)
        prefixes = list(cluster.scheduler.task_prefixes)
    assert any("fit_unit" in prefix for prefix in prefixes)
    assert any("bootstrap_difference" in prefix for prefix in prefixes)
    assert accuracies(remote) == accuracies(local)
    assert comparison_entries(remote) == comparison_entries(local)
    assert remote["primary"] and remote["comparisons"]
    np.testing.assert_equal(remote["systems"][0]["confusion"], local["systems"][0]["confusion"])


def test_label_sets_resampled_on_a_dask_cluster_give_the_loky_comparisons() -> None:
    distributed = pytest.importorskip("distributed")
    local = label_set_run(n_jobs=2)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  protocol="tcp", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        remote = label_set_run(backend="dask", scheduler=cluster.scheduler_address)
        assert any("map_scores" in prefix for prefix in cluster.scheduler.task_prefixes)
    assert comparison_entries(remote) == comparison_entries(local)


def test_backend_options_are_checked() -> None:
    frame = feature_frame(n_clips=30, widths=WIDTHS)
    with pytest.raises(ConfigError, match="unknown backend 'spark'"):
        run_benchmark(frame, dataset="g", config=CONFIG, progress=False, backend="spark")
    with pytest.raises(ConfigError, match="needs backend='dask'"):
        run_benchmark(frame, dataset="g", config=CONFIG, progress=False,
                      scheduler="tcp://127.0.0.1:1")
