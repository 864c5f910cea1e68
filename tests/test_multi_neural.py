"""Several neural branches at once: ``neural-auto`` chooses among each network alone and all of
them together, in every ablation mode; ``train`` fits them all, an imported one included, and
``predict`` takes an imported branch's embeddings of the new files with ``--embeddings``."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures_audio import make_folder_dataset
from fixtures_features import feature_frame, high_bit, low_bit
from fixtures_models import FrameStats

import featurekit.model.artifact as artifact_module
from featurekit.benchmark import BenchmarkConfig, run_benchmark
from featurekit.benchmark.ablation import ablation_subsets
from featurekit.benchmark.config import ABLATION_MODES
from featurekit.benchmark.plan import make_plan
from featurekit.benchmark.report import render_markdown
from featurekit.cli import main
from featurekit.config import ExtractionConfig
from featurekit.datasets import load_dataset
from featurekit.errors import ConfigError, EmbeddingImportError
from featurekit.model.artifact import read_header
from featurekit.model.classifier import AudioClassifier
from featurekit.model.load import load_model
from featurekit.model.train import train
from featurekit.neural import register_model, registry
from featurekit.pipeline import read_features
from featurekit.store.reader import FeatureStore

pytestmark = pytest.mark.filterwarnings(
    "ignore::featurekit.datasets.DatasetWarning")  # the folder dataset's assigned folds

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


# -- train and predict: a computed network and an imported one -------------------------------

@pytest.fixture
def two_networks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    """A folder dataset, the registered network ``frame_stats`` (computed), and a store into
    which embeddings ``mine`` (carrying the label) were imported from a CSV file."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")
    register_model("frame_stats", FrameStats, sample_rate=8000, embedding_dim=4)
    root = make_folder_dataset(tmp_path / "audio", clips_per_class=10, duration=0.5)
    clips = load_dataset("folder", root).clips
    rng = np.random.default_rng(0)
    values = rng.normal(size=(len(clips), 3)) + 2 * clips[["label_id"]].to_numpy()
    table = pd.DataFrame(values, columns=["a", "b", "c"]).assign(clip_id=clips["clip_id"])
    table.to_csv(tmp_path / "mine.csv", index=False)
    common = ["--dataset", "folder", "--data-dir", str(root), "--store", str(tmp_path / "s")]
    assert main(["import-embeddings", *common, "--name", "mine", "--from",
                 str(tmp_path / "mine.csv")]) == 0
    return {"root": root, "clips": clips, "values": values, "common": common,
            "store": tmp_path / "s"}


QUICK_ARGS = ["--families", "spectral", "--heads", "logreg", "--fusions", "early,mean"]


def test_benchmark_command_fuses_a_computed_and_an_imported_network(
        two_networks: dict, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["benchmark", *two_networks["common"], "--model", "frame_stats,mine",
                 *QUICK_ARGS, "--repeats", "1", "--seeds", "1", "--bootstrap", "100",
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    together = "neural.frame_stats+neural.mine"
    assert results["primary"]["candidates"]["neural-auto"] == [
        "neural.frame_stats/logreg", "neural.mine/logreg", f"{together}/logreg/early",
        f"{together}/logreg/mean"]
    assert results["primary"]["candidates"]["auto"] == [
        f"spectral+{together}/logreg/early", f"spectral+{together}/logreg/mean"]
    roles = {"+".join(s["branches"]): s["ablation"] for s in results["systems"] if s["head"]}
    assert roles[together] == ["neural", "all_but:spectral"]
    assert {"spectral+neural.frame_stats", "spectral+neural.mine"} <= set(roles)
    assert results["provenance"]["neural.mine"]["imported"]
    assert "neural.frame_stats" in FeatureStore(two_networks["store"]).branches("audio")


def _predict(model: Path, files: list[str], *options: str,
             capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict], str]:
    code = main(["predict", str(model), *files, *options])
    captured = capsys.readouterr()
    return code, list(csv.DictReader(captured.out.splitlines())), captured.err


def test_train_on_both_networks_and_predict_with_the_imported_embeddings(
        two_networks: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "model.fk"
    assert main(["train", *two_networks["common"], "--model", "frame_stats,mine", *QUICK_ARGS,
                 "--out", str(model)]) == 0
    assert "trained spectral+neural.frame_stats+neural.mine/logreg/" in capsys.readouterr().out
    header, _ = read_header(model)
    recorded = {entry["branch"]: entry for entry in header["provenance"]["neural_models"]}
    assert header["format"] == 2 and set(recorded) == {"neural.frame_stats", "neural.mine"}
    assert recorded["neural.mine"]["imported"] and not recorded["neural.frame_stats"]["imported"]
    assert len(recorded["neural.mine"]["source_sha256"]) == 64
    classifier = load_model(model)
    assert classifier.imported_ == {"mine": 3}
    assert classifier.branches_ == ["handcrafted", "neural.frame_stats", "neural.mine"]

    clips, values = two_networks["clips"], two_networks["values"]
    files = clips["path"].tolist()
    # The new files' embeddings, found by path, one file left out of them.
    pd.DataFrame(values[1:], columns=["a", "b", "c"]).assign(path=files[1:]).to_parquet(
        tmp_path / "new.parquet")
    code, rows, err = _predict(model, files, "--embeddings", f"mine={tmp_path}/new.parquet",
                               capsys=capsys)
    assert code == 0 and [row["path"] for row in rows] == files
    assert rows[0]["label"] == "" and rows[0]["error"].startswith("MissingEmbedding: ")
    assert "neural.mine" in rows[0]["error"] and f"failed {files[0]}" in err
    assert all(row["error"] == "" for row in rows[1:])
    # What the model computes (handcrafted, frame_stats) and is given (mine) is what it was
    # trained on: the training table's probabilities, from the store.
    table, _ = read_features(FeatureStore(two_networks["store"]), "audio",
                             model=["frame_stats", "mine"], clips=clips)
    table = table.set_index("clip_id").loc[clips["clip_id"]]
    expected = classifier.estimator_.predict_proba(
        table[classifier.feature_names_].to_numpy(np.float32))
    got = np.array([[float(row[c]) for c in classifier.classes_] for row in rows[1:]])
    np.testing.assert_allclose(got, expected[1:], atol=1e-5)
    # A .npy matrix: one row per file, in order; without a name, the only imported model's.
    np.save(tmp_path / "new.npy", values)
    code, npy_rows, _ = _predict(model, files, "--embeddings", str(tmp_path / "new.npy"),
                                 capsys=capsys)
    assert code == 0 and npy_rows[1:] == rows[1:] and npy_rows[0]["error"] == ""


def test_predict_refuses_missing_unknown_and_misshapen_embeddings(
        two_networks: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store, root = two_networks["store"], two_networks["root"]
    classifier = train("folder", root, store, model=["frame_stats", "mine"], config=QUICK,
                       extraction=ExtractionConfig(families=("spectral",)), progress=False)
    model = classifier.save(tmp_path / "model.fk")
    files = two_networks["clips"]["path"].tolist()[:2]
    code, _, err = _predict(model, files, capsys=capsys)
    assert code == 2 and "neural.mine" in err and "--embeddings mine=FILE" in err
    with pytest.raises(ConfigError, match=r"embeddings=\{'mine': FILE\}"):
        classifier.predict(files)
    pd.DataFrame({"path": files, "a": [0.0, 1.0]}).to_csv(tmp_path / "one.csv", index=False)
    for options, message in (
            (["--embeddings", f"other={tmp_path}/one.csv"], "no imported branch neural.other"),
            (["--embeddings", f"mine={tmp_path}/one.csv"], "1 dimensions, but the model was "
                                                           "trained on 3 of neural.mine"),
            (["--embeddings", f"mine={tmp_path}/absent.csv"], "embeddings file not found"),
            (["--embeddings", "a.csv", "--embeddings", "b.csv"], "gives mine twice")):
        code, _, err = _predict(model, files, *options, capsys=capsys)
        assert code == 2 and message in err, (options, err)
    np.save(tmp_path / "short.npy", np.zeros((1, 3)))
    with pytest.raises(EmbeddingImportError, match="1 rows but 2 ids given"):
        classifier.predict_clips(files, embeddings={"mine": tmp_path / "short.npy"})


def test_a_system_without_the_imported_network_predicts_from_audio_alone(
        two_networks: dict, tmp_path: Path) -> None:
    classifier = train("folder", two_networks["root"], two_networks["store"],
                       model=["frame_stats", "mine"], system="neural.frame_stats/logreg",
                       config=QUICK, extraction=ExtractionConfig(families=("spectral",)),
                       progress=False)
    assert classifier.imported_ == {} and classifier.branches_ == ["neural.frame_stats"]
    files = two_networks["clips"]["path"].tolist()
    assert classifier.predict_proba(files).shape == (len(files), 2)
    with pytest.raises(ConfigError, match=r"reads no imported branch neural\.mine"):
        classifier.predict(files, embeddings={"mine": tmp_path / "any.csv"})


def test_a_format_1_artifact_is_read_as_the_current_format(
        two_networks: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clips = two_networks["clips"]
    classifier = AudioClassifier("spectral+neural.frame_stats/logreg/early", model="frame_stats",
                                 extraction=ExtractionConfig(families=("spectral",)), config=QUICK
                                 ).fit(clips["path"].tolist(), clips["label"].to_numpy())
    assert classifier.weights_sha256_ == {"neural.frame_stats": None}
    old = copy.deepcopy(classifier)  # as format 1 pickled it: one checksum, no imported_
    old.weights_sha256_ = None
    del old.imported_
    monkeypatch.setattr(artifact_module, "ARTIFACT_FORMAT", 1)
    loaded = load_model(old.save(tmp_path / "old.fk"))
    assert read_header(tmp_path / "old.fk")[0]["format"] == 1
    assert loaded.weights_sha256_ == {"neural.frame_stats": None} and loaded.imported_ == {}
    np.testing.assert_array_equal(loaded.predict_proba(clips["path"].tolist()),
                                  classifier.predict_proba(clips["path"].tolist()))
