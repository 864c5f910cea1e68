"""Head settings files: parameters that replace heads' defaults, and the data that chose them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_features import feature_frame

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.head_settings import (
    HeadSettings,
    read_head_settings,
    settings_record,
    with_settings,
)
from featurekit.cli.benchmark import overlap_notice
from featurekit.errors import ConfigError
from featurekit.learn.heads.registry import HEADS


def _write(tmp_path: Path, document: object) -> Path:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(document))
    return path


def test_a_settings_file_reads_lists_as_tuples(tmp_path: Path) -> None:
    path = _write(tmp_path, {"chosen_on": ["urbansound8k"], "evidence": "note",
                             "heads": {"mlp": {"hidden_layer_sizes": [256], "refit": False}}})
    settings = read_head_settings(path)
    assert settings.chosen_on == ("urbansound8k",)
    assert settings.params["mlp"] == {"hidden_layer_sizes": (256,), "refit": False}


@pytest.mark.parametrize("document, message", [
    ({"heads": {"mlp": {}}}, "chosen_on"),
    ({"chosen_on": [], "heads": {"mlp": {}}}, "chosen_on"),
    ({"chosen_on": ["esc10"], "heads": {"mlp": 3}}, "heads"),
    ([1, 2], "JSON object"),
])
def test_malformed_settings_files_are_refused(tmp_path: Path, document: object,
                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_head_settings(_write(tmp_path, document))


def test_missing_and_non_json_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_head_settings(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        read_head_settings(broken)


def test_settings_build_heads_with_their_parameters_and_provenance() -> None:
    settings = HeadSettings({"logreg": {"C": 3.0}}, ("urbansound8k",))
    specs = with_settings({"logreg": HEADS["logreg"], "xgb": HEADS["xgb"]}, settings)
    assert specs["logreg"].factory().C == 3.0
    assert specs["logreg"].defaults_chosen_on == ("urbansound8k",)
    assert specs["xgb"] is HEADS["xgb"]


@pytest.mark.parametrize("params, message", [
    ({"svm": {"C": 1.0}}, "does not run"),
    ({"logreg": {"gamma": 1.0}}, "logreg"),
])
def test_settings_for_unknown_heads_or_parameters_are_refused(params: dict,
                                                              message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        with_settings({"logreg": HEADS["logreg"]}, HeadSettings(params, ("esc10",)))
    with pytest.raises(ConfigError, match=message):
        BenchmarkConfig(heads=("logreg",),
                        head_settings=HeadSettings(params, ("esc10",))).validate()


def test_the_record_says_when_the_settings_saw_the_reported_clips() -> None:
    specs = with_settings({"logreg": HEADS["logreg"], "xgb": HEADS["xgb"]},
                          HeadSettings({"logreg": {"C": 1.0}}, ("esc10",)))
    on_esc50 = settings_record(specs, "esc50", None)  # ESC-10 is part of ESC-50
    assert on_esc50["disjoint"] is False and on_esc50["overlapping"] == ["logreg", "xgb"]
    on_fsd = settings_record(specs, "fsd50k", None)
    assert on_fsd["disjoint"] is True and on_fsd["overlapping"] == []
    assert settings_record(specs, "csv", None)["disjoint"] is None
    assert overlap_notice({"head_settings": on_esc50}).startswith("warning: the settings")
    assert overlap_notice({"head_settings": on_fsd}) is None


def test_a_benchmark_runs_with_the_settings_and_records_them() -> None:
    frame = feature_frame(n_clips=120, n_folds=3)
    base = BenchmarkConfig(heads=("logreg",), fusions=("early",), repeats=1, n_bootstrap=200)
    tuned = BenchmarkConfig(heads=("logreg",), fusions=("early",), repeats=1, n_bootstrap=200,
                            head_settings=HeadSettings({"logreg": {"C": 1e-4}}, ("esc10",)))
    plain = run_benchmark(frame, dataset="urbansound8k", config=base, progress=False)
    strong = run_benchmark(frame, dataset="urbansound8k", config=tuned, progress=False)
    record = strong["head_settings"]
    assert record["heads"]["logreg"] == {"chosen_on": ["esc10"], "params": {"C": 1e-4}}
    assert record["disjoint"] is True
    assert strong["config"]["head_settings"]["params"] == {"logreg": {"C": 1e-4}}
    assert "head_settings" not in plain["config"]
    assert plain["config_hashes"]["benchmark"] != strong["config_hashes"]["benchmark"]
    # C = 1e-4 shrinks every coefficient to almost nothing: the scores must move.
    scores = [{s["name"]: s["mean"] for s in r["systems"]} for r in (plain, strong)]
    assert scores[0] != scores[1]
