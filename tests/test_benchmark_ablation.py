"""``--ablation full|families|none``: the subsets of each mode, a ``none`` run's primary
comparison equal to the default's, ``full``'s pairs, and the plan counting each mode's work."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_features import feature_frame, full_label, high_bit, low_bit

from featurekit.benchmark import BenchmarkConfig, ablation_subsets, run, run_benchmark
from featurekit.benchmark.report import write_report
from featurekit.cli import main
from featurekit.errors import ConfigError

BRANCHES = ["pitch", "timbre", "spectral", "neural.a", "neural.b"]
HANDCRAFTED = ("pitch", "timbre", "spectral")


def test_families_is_the_ablation_every_run_had() -> None:
    subsets = ablation_subsets(BRANCHES)
    assert subsets == ablation_subsets(BRANCHES, "families")
    assert subsets == {
        **{(name,): [f"alone:{name}"] for name in BRANCHES},
        HANDCRAFTED: ["handcrafted"],
        # Two networks: both together, neural-auto's candidates beside each alone.
        ("neural.a", "neural.b"): ["neural"],
        tuple(BRANCHES): ["all"],
        **{tuple(b for b in BRANCHES if b != name): [f"all_but:{name}"] for name in BRANCHES},
        (*HANDCRAFTED, "neural.a"): ["all_but:neural.b", "handcrafted+neural.a"],
        (*HANDCRAFTED, "neural.b"): ["all_but:neural.a", "handcrafted+neural.b"],
    }


def test_full_adds_every_pair_of_branches() -> None:
    families, full = ablation_subsets(BRANCHES), ablation_subsets(BRANCHES, "full")
    pairs = {subset: labels for subset, labels in full.items() if subset not in families}
    assert list(full)[:len(families)] == list(families)
    # 5 choose 2, but the two neural branches together are already a subset of families
    assert len(pairs) == 9
    assert pairs[("pitch", "neural.b")] == ["pair:pitch+neural.b"]
    assert full[("neural.a", "neural.b")] == ["neural", "pair:neural.a+neural.b"]
    # A pair already in the ablation carries both labels.
    three = ablation_subsets(["pitch", "timbre", "neural.a"], "full")
    assert three[("pitch", "timbre")] == ["handcrafted", "all_but:neural.a", "pair:pitch+timbre"]
    assert len(three) == len(ablation_subsets(["pitch", "timbre", "neural.a"]))


def test_none_keeps_what_the_primary_and_branch_comparisons_read() -> None:
    assert ablation_subsets(BRANCHES, "none") == {
        ("neural.a",): ["alone:neural.a"], ("neural.b",): ["alone:neural.b"],
        HANDCRAFTED: ["handcrafted"], ("neural.a", "neural.b"): ["neural"],
        tuple(BRANCHES): ["all"],
        (*HANDCRAFTED, "neural.a"): ["handcrafted+neural.a"],
        (*HANDCRAFTED, "neural.b"): ["handcrafted+neural.b"],
    }
    # Without a neural branch, single-auto chooses among every branch alone.
    assert ablation_subsets(HANDCRAFTED, "none") == {
        **{(name,): [f"alone:{name}"] for name in HANDCRAFTED},
        HANDCRAFTED: ["handcrafted", "all"]}
    # One handcrafted branch stands for the handcrafted families.
    assert ablation_subsets(["pitch", "neural.a"], "none") == {
        ("pitch",): ["alone:pitch"], ("neural.a",): ["alone:neural.a"],
        ("pitch", "neural.a"): ["all", "handcrafted+neural.a"]}


def test_an_unknown_mode_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="unknown ablation 'some'; choose from full, "
                                          "families, none"):
        BenchmarkConfig(ablation="some")
    with pytest.raises(ConfigError, match="choose from full, families, none"):
        ablation_subsets(BRANCHES, "pairs")


def test_the_mode_is_recorded_and_hashed_only_when_not_the_default() -> None:
    default, none = BenchmarkConfig(), BenchmarkConfig(ablation="none")
    assert default.to_dict()["ablation"] == "families"
    assert none.to_dict()["ablation"] == "none"
    assert BenchmarkConfig(ablation="families").config_hash() == default.config_hash()
    assert none.config_hash() != default.config_hash()


def _frame() -> object:
    return feature_frame(n_clips=72, n_folds=3,
                         widths={"pitch": 3, "spectral": 4, "timbre": 3, "neural.tiny": 5},
                         signal={"pitch": (low_bit, 3.0), "spectral": (high_bit, 3.0),
                                 "timbre": (low_bit, 2.0), "neural.tiny": (full_label, 0.8)})


def _run(mode: str) -> dict:
    config = BenchmarkConfig(heads=("logreg",), fusions=("early", "mean"), repeats=1,
                             n_bootstrap=100, ablation=mode)
    return run_benchmark(_frame(), dataset="generated", config=config, progress=False)


def test_none_runs_the_primary_comparison_of_the_default(tmp_path: Path) -> None:
    families, none = _run("families"), _run("none")
    assert none["primary"] == families["primary"]
    assert none["branch_comparisons"] == families["branch_comparisons"]
    by_name = {system["name"]: system for system in families["systems"]}
    kept = [system for system in none["systems"] if system["name"] in by_name]
    assert len(kept) == len(none["systems"]) < len(families["systems"])
    for system in kept:  # the same fits, seeds and inner splits
        assert system["per_fold"] == by_name[system["name"]]["per_fold"]
    assert {tuple(s["branches"]) for s in none["systems"] if s["head"]} == {
        ("neural.tiny",), ("pitch", "timbre", "spectral"),
        ("pitch", "timbre", "spectral", "neural.tiny")}
    # The plan counts the run's work, which the mode cut.
    assert none["plan"]["fits"] == none["n_fits"] < families["n_fits"]
    assert none["plan"]["units"] < families["plan"]["units"]
    # The primary and synergy comparisons (both kept by the mode), then the ablation's.
    assert none["synergy"] == families["synergy"]
    assert none["plan"]["comparisons"] == (2 + len(none["branch_comparisons"])
                                           + len(none["comparisons"])
                                           + len(none["fusion_vs_own_branches"]))
    assert none["config"]["ablation"] == "none"
    # Fusions are compared with those of their branches evaluated alone (the neural one);
    # the contributions hold only branches evaluated alone (the neural one's marginal value
    # is everything against the handcrafted families, which its ablation keeps).
    assert all(c["reference"] == "neural.tiny/logreg" for c in none["fusion_vs_own_branches"])
    assert list(none["contributions"]["branches"]) == ["neural.tiny"]
    assert "marginal_pp" in none["contributions"]["branches"]["neural.tiny"]
    written = write_report(none, tmp_path)
    report = written["report"].read_text(encoding="utf-8")
    assert "Ablation `none`: only what the primary and branch comparisons need" in report
    # Results written before the option state the subsets they evaluated.
    del none["config"]["ablation"]
    before = write_report(none, tmp_path / "before")["report"].read_text(encoding="utf-8")
    assert "Ablation `families`: each branch alone" in before


def test_full_adds_the_pairs_and_the_plan_counts_them() -> None:
    families, full = _run("families"), _run("full")
    assert full["primary"] == families["primary"]
    pairs = {tuple(s["branches"]) for s in full["systems"]
             if any(role.startswith("pair:") for role in s["ablation"])}
    assert len(pairs) == 6  # 4 choose 2, each a new subset
    assert full["plan"]["fits"] == full["n_fits"] > families["n_fits"]
    assert len(full["systems"]) > len(families["systems"])


def test_the_cli_refuses_an_unknown_mode_and_sets_refuse_any_other_than_the_default(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--dataset", "urbansound8k", "--data-dir", str(tmp_path),
              "--store", str(tmp_path / "store"), "--ablation", "pairs"])
    assert exit_info.value.code == 2
    assert "choose from 'full', 'families', 'none'" in capsys.readouterr().err
    # Feature sets have subsets of their own: refused before the dataset is read.
    with pytest.raises(ConfigError, match="leave the ablation at its default with sets"):
        run("urbansound8k", tmp_path / "absent", tmp_path / "store", sets="featurekit",
            config=BenchmarkConfig(ablation="none"))
