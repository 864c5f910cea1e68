"""Robustness runs: systems fitted and chosen on clean audio, scored on corrupted test clips.

Engine level (generated feature tables): no fit, rule or choice sees a corrupted row or a test
row; the clean results do not change when corruptions are added; identical copies lose
nothing; corrupting only the handcrafted columns hurts the handcrafted choice and not the
neural one; clips without a copy are counted, not scored. Command level: an end-to-end run on a
mini UrbanSound8K stores each corruption as its own dataset, reports it, and reuses it.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import test_benchmark_leaks as leaks
from fixtures_features import feature_frame, full_label
from test_benchmark_leaks import SPY, Log, check_fits, spy_frame

from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.config import AUTO, HANDCRAFTED_AUTO, NEURAL_AUTO, SINGLE_AUTO
from featurekit.benchmark.robustness import CorruptedTable, check_robustness
from featurekit.errors import ConfigError, DatasetError

CONFIG = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean", "weighted"), repeats=1,
                         n_bootstrap=200, inner_splits=3)
WIDTHS = {"pitch": 3, "timbre": 3, "spectral": 3, "neural.m": 4}
ID_OFFSET = 10_000  # a corrupted row's id: its clean row's id plus this
spied = leaks.spied


def informative_frame() -> pd.DataFrame:
    return feature_frame(n_clips=90, n_folds=3, n_classes=3, widths=WIDTHS,
                         signal={name: (full_label, 1.5) for name in WIDTHS})


def copy_of(frame: pd.DataFrame, name: str = "copy", *, rows: slice | None = None,
            columns: tuple[str, ...] = (), noise: float = 0.0, seed: int = 1) -> CorruptedTable:
    """A corrupted copy of ``frame``'s feature rows: ``columns``' branches replaced by
    Gaussian noise of standard deviation ``noise`` (none: identical values)."""
    table = frame.drop(columns=["fold", "label", "label_id"]).iloc[rows or slice(None)].copy()
    rng = np.random.default_rng(seed)
    for column in table.columns[1:]:
        if column.split(".")[0] in columns or ".".join(column.split(".")[:2]) in columns:
            table[column] = rng.normal(scale=noise, size=len(table)).astype(np.float32)
    return CorruptedTable(name, "test", "level=1", {"kind": "test"}, table.reset_index(drop=True))


def run(frame: pd.DataFrame, *copies: CorruptedTable, config: BenchmarkConfig = CONFIG,
        **kwargs) -> dict:
    return run_benchmark(frame, dataset="robust", config=config, progress=False,
                         corrupted=copies, **kwargs)


def entries(results: dict, key: str = "robustness_systems") -> dict[tuple[str, str], dict]:
    return {(entry["name"], entry["system"]): entry for entry in results[key]}


# --------------------------------------------------------------------------------------------
# Nothing learns from corrupted audio
# --------------------------------------------------------------------------------------------

def test_no_fit_sees_a_corrupted_row_and_only_test_rows_are_corrupted(spied: Log) -> None:
    frame = spy_frame({"pitch": 3, "spectral": 3, "neural.m": 4})
    table = frame.drop(columns=["fold", "label", "label_id", "recording"])
    id_columns = [c for c in table.columns if c.endswith((".d0.mean", ".emb_000"))]
    table[id_columns] += ID_OFFSET  # the spies read each row's id from these columns
    copy = CorruptedTable("shifted", "test", "level=1", {}, table)
    config = BenchmarkConfig(heads=("spy",), fusions=("early", "mean", "stacking"), repeats=1,
                             n_bootstrap=100)
    results = run_benchmark(frame, dataset="spied", config=config, head_specs=SPY,
                            progress=False, corrupted=[copy])
    assert all((fit["ids"] < ID_OFFSET).all() for fit in spied.fits), \
        "a head was fitted on a corrupted row"
    corrupted = [(serial, ids - ID_OFFSET) for serial, ids in spied.predictions
                 if (ids >= ID_OFFSET).any()]
    # A corrupted copy, like its clean clip, is never predicted by a member trained on it.
    spied.predictions[:] = [(serial, ids % ID_OFFSET) for serial, ids in spied.predictions]
    check_fits(spied, frame)
    assert corrupted, "no corrupted row was predicted"
    for serial, ids in corrupted:
        assert (ids >= 0).all(), "a prediction mixed clean and corrupted rows"
        assert set(ids.tolist()) <= spied.fits[serial]["test"], \
            "a corrupted row outside the member's outer test fold was predicted"
    assert {(e["name"], e["comparison"]) for e in results["robustness"]} == {
        ("shifted", "primary"), ("shifted", "synergy")}


def test_clean_results_do_not_change_when_corruptions_are_added() -> None:
    frame = informative_frame()
    clean = run(frame)
    robust = run(frame, copy_of(frame, columns=("pitch", "timbre", "neural.m"), noise=3.0))
    assert robust["primary"] == clean["primary"] and robust["synergy"] == clean["synergy"]
    systems = {s["name"]: s for s in robust["systems"]}
    for system in clean["systems"]:
        assert systems[system["name"]]["mean"] == system["mean"], system["name"]
        assert systems[system["name"]].get("fusion_choice") == system.get("fusion_choice")
    # The robustness run adds one choice, made on clean inner predictions like the others.
    assert HANDCRAFTED_AUTO in systems and HANDCRAFTED_AUTO not in \
        {s["name"] for s in clean["systems"]}


# --------------------------------------------------------------------------------------------
# What it reports
# --------------------------------------------------------------------------------------------

def test_an_identical_copy_loses_nothing_and_repeats_the_clean_comparison() -> None:
    frame = informative_frame()
    results = run(frame, copy_of(frame))
    for entry in results["robustness_systems"]:
        assert entry["drop_pp"] == pytest.approx(0.0, abs=1e-9), entry["system"]
        assert entry["value"] == pytest.approx(entry["clean_value"])
    by_comparison = {e["comparison"]: e for e in results["robustness"]}
    for comparison in ("primary", "synergy"):
        entry, clean = by_comparison[comparison], results[comparison]
        assert entry["reference"] == clean["reference"]
        assert entry["gain_pp"] == pytest.approx(clean["gain_pp"])
        assert entry["ci95_pp"] == pytest.approx(clean["ci95_pp"])
        assert entry["drop_pp"] == entry["reference_drop_pp"] == pytest.approx(0.0, abs=1e-9)
        assert (entry["n_clips"], entry["n_missing"]) == (len(frame), 0)
        assert {"corruption", "severity", "system", "reference", "metric", "value",
                "reference_value", "gain_pp", "ci95_pp", "drop_pp",
                "reference_drop_pp"} <= set(entry)


def test_noise_in_the_handcrafted_columns_hurts_their_choice_and_not_the_networks() -> None:
    frame = informative_frame()
    results = run(frame, copy_of(frame, "handcrafted-noise",
                                 columns=("pitch", "timbre", "spectral"), noise=4.0))
    systems = entries(results)
    assert systems["handcrafted-noise", NEURAL_AUTO]["drop_pp"] == pytest.approx(0.0, abs=1e-9)
    assert systems["handcrafted-noise", HANDCRAFTED_AUTO]["clean_value"] > 0.6
    assert systems["handcrafted-noise", HANDCRAFTED_AUTO]["drop_pp"] > 20.0
    assert systems["handcrafted-noise", "pitch/logreg"]["drop_pp"] > 10.0
    primary = next(e for e in results["robustness"] if e["comparison"] == "primary")
    assert (primary["system"], primary["reference"]) == (AUTO, NEURAL_AUTO)
    assert primary["reference_drop_pp"] == pytest.approx(0.0, abs=1e-9)
    synergy = next(e for e in results["robustness"] if e["comparison"] == "synergy")
    assert synergy["reference"] == SINGLE_AUTO
    assert primary["value"] == pytest.approx(systems["handcrafted-noise", AUTO]["value"])


def test_clips_without_a_copy_are_counted_and_left_out_of_both_scores() -> None:
    frame = informative_frame()
    results = run(frame, copy_of(frame, "half", rows=slice(0, 45)),
                  copy_of(frame, "all"))
    half = {e["comparison"]: e for e in results["robustness"] if e["name"] == "half"}
    assert (half["primary"]["n_clips"], half["primary"]["n_missing"]) == (45, 45)
    # Identical copies of fewer clips: no drop, but clean scores on those clips only.
    systems = entries(results)
    for name in (AUTO, NEURAL_AUTO):
        assert systems["half", name]["drop_pp"] == pytest.approx(0.0, abs=1e-9)
    assert any(systems["half", name]["clean_value"] != systems["all", name]["clean_value"]
               for name in (AUTO, NEURAL_AUTO, HANDCRAFTED_AUTO, "pitch/logreg"))


# --------------------------------------------------------------------------------------------
# What it refuses
# --------------------------------------------------------------------------------------------

def test_copies_that_do_not_match_the_clean_table_are_refused() -> None:
    frame = informative_frame()
    stranger = copy_of(frame)
    stranger.table.loc[0, "clip_id"] = "not-a-clip"
    with pytest.raises(DatasetError, match=r"holds clips the benchmark lacks.*not-a-clip"):
        run(frame, stranger)
    whole = copy_of(frame)
    narrow = replace(whole, table=whole.table.drop(columns=["pitch.d0.mean"]))
    with pytest.raises(DatasetError, match=r"lacks feature columns.*pitch\.d0\.mean"):
        run(frame, narrow)


def test_sequence_heads_and_the_e2e_stream_are_refused() -> None:
    with pytest.raises(ConfigError, match="drop the sequence head"):
        check_robustness(BenchmarkConfig(heads=("logreg", "seq")), ["mn04_as"])
    with pytest.raises(ConfigError, match="leave e2e out of --model"):
        check_robustness(CONFIG, ["mn04_as", "e2e"])
    check_robustness(CONFIG, ["mn04_as"])
    frame = informative_frame()
    sequences = {"pitch": np.zeros((len(frame), 2, 2), dtype=np.float32)}
    with pytest.raises(ConfigError, match="takes no frame sequences"):
        run(frame, copy_of(frame), sequences=sequences)


def test_results_survive_json() -> None:
    frame = informative_frame()
    results = run(frame, copy_of(frame, columns=("neural.m",), noise=2.0))
    restored = json.loads(json.dumps(results))
    assert restored["robustness"] == results["robustness"]
    assert [c["name"] for c in restored["corruptions"]] == ["copy"]



def test_label_sets_under_an_official_split_score_macro_map_on_the_eval_clips() -> None:
    from test_multilabel import _features_table

    frame = _features_table()
    eval_clips = frame[frame["fold"] == 3]
    copy = CorruptedTable("eval-noise", "test", "level=1", {},
                          eval_clips.drop(columns=["fold", "label", "label_id"]).assign(
                              **{f"pitch.f{j}.mean": 0.0 for j in range(5)}))
    config = BenchmarkConfig(heads=("logreg",), fusions=("mean", "weighted"), repeats=1,
                             n_bootstrap=200)
    results = run_benchmark(frame, dataset="toy", config=config, multilabel=True,
                            protocol="train-val-eval", progress=False, corrupted=[copy])
    primary = next(e for e in results["robustness"] if e["comparison"] == "primary")
    assert primary["metric"] == "map" and primary["n_clips"] == len(eval_clips)
    assert primary["clean_value"] == pytest.approx(
        next(s for s in results["systems"] if s["name"] == AUTO)["mean"]["map"])
    systems = entries(results)
    assert systems["eval-noise", NEURAL_AUTO]["drop_pp"] == pytest.approx(0.0, abs=1e-9)
    assert systems["eval-noise", HANDCRAFTED_AUTO]["drop_pp"] > 5.0
