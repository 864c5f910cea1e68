"""Models added by name: :func:`featurekit.neural.register_model` and the ``featurekit.models``
entry-point group, accepted by ``embed`` (library and command line) and the benchmark's checks."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_audio import make_folder_dataset
from fixtures_models import FrameStats

from featurekit.cli import main
from featurekit.computers.neural import NeuralBranch
from featurekit.computers.runner import run_branch
from featurekit.datasets import load_dataset
from featurekit.errors import ConfigError, WeightsError
from featurekit.neural import (
    ENTRY_POINT_GROUP,
    available_models,
    load_pretrained,
    model_info,
    register_model,
    registry,
)
from featurekit.pipeline import check_models
from featurekit.store.reader import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by a test end with it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "audio", clips_per_class=3, duration=1.5)


def test_a_registered_model_embeds_a_dataset_like_a_built_in_one(folder: Path,
                                                                 tmp_path: Path) -> None:
    register_model("frame_stats", FrameStats, sample_rate=8000, embedding_dim=4, version="1")
    assert "frame_stats" in available_models()
    assert check_models("frame_stats") == ["frame_stats"]
    dataset = load_dataset("folder", folder)
    summary = run_branch(NeuralBranch("frame_stats"), dataset, tmp_path / "store",
                         frames=True, progress=False)
    assert summary.exit_code == 0
    store = FeatureStore(tmp_path / "store")
    table = store.read(dataset.name, "neural.frame_stats")
    assert len(table) == 6 and table.columns[-1] == "neural.frame_stats.emb_003"
    config = store.provenance(dataset.name, "neural.frame_stats")["config"]
    assert config["factory"].endswith("FrameStats") and config["version"] == "1"
    assert config["weights_file"] is None
    frames = store.frames(dataset.name, "neural.frame_stats")
    assert list(frames.columns[2:]) == [f"neural.frame_stats.neuralogram_{i:03d}"
                                        for i in range(4)]
    # The stored embedding is the model's own output on the 8-kHz clip.
    model = load_pretrained("frame_stats", device="cpu")
    clip = dataset.clips.sort_values("clip_id").iloc[0]
    from featurekit.io.audio import load_audio

    y = load_audio(clip["path"], sr=8000)[0]
    expected = model(torch.from_numpy(y[None, :].astype(np.float32)))["embedding"][0].numpy()
    np.testing.assert_allclose(table.iloc[0, 4:].to_numpy(np.float32), expected, rtol=1e-5,
                               atol=1e-6)


def test_the_embed_command_accepts_a_registered_name(folder: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    register_model("frame_stats", FrameStats, sample_rate=8000, embedding_dim=4)
    common = ["embed", "--dataset", "folder", "--data-dir", str(folder), "--store",
              str(tmp_path / "store"), "--model", "frame_stats"]
    assert main(common) == 0, capsys.readouterr().err
    assert len(FeatureStore(tmp_path / "store").read("audio", "neural.frame_stats")) == 6
    assert main([*common, "--weights", str(tmp_path / "w.pt")]) == 2
    assert "loads its own weights" in capsys.readouterr().err


def test_names_are_refused_when_taken_unless_replaced() -> None:
    with pytest.raises(ConfigError, match="'mn04_as' is already registered; pass replace=True"):
        register_model("mn04_as", FrameStats, sample_rate=8000, embedding_dim=4)
    register_model("mn04_as", FrameStats, sample_rate=8000, embedding_dim=4, replace=True)
    assert model_info("mn04_as").registered
    for name in ("a.b", "_x", "e2e", ""):
        with pytest.raises(ConfigError, match="model name"):
            register_model(name, FrameStats, sample_rate=8000, embedding_dim=4)
    with pytest.raises(ConfigError, match=r"embedding_dim .* must be a positive integer"):
        register_model("z", FrameStats, sample_rate=8000, embedding_dim=0)
    with pytest.raises(ConfigError, match="not callable"):
        register_model("z", "FrameStats", sample_rate=8000, embedding_dim=4)


def test_a_factory_must_return_what_it_declared() -> None:
    register_model("liar", FrameStats, sample_rate=16000, embedding_dim=4)
    with pytest.raises(ConfigError, match=r"'sample_rate': 16000.*'sample_rate': 8000"):
        load_pretrained("liar", device="cpu")
    register_model("not_a_module", lambda: object(), sample_rate=8000, embedding_dim=4)
    with pytest.raises(ConfigError, match=r"torch\.nn\.Module"):
        load_pretrained("not_a_module", device="cpu")
    with pytest.raises(WeightsError, match="loads its own weights"):
        load_pretrained("liar", "weights.pt", device="cpu")


def _entry_points(*points: importlib.metadata.EntryPoint):
    def entry_points(**selection: str) -> list[importlib.metadata.EntryPoint]:
        assert selection == {"group": ENTRY_POINT_GROUP}
        return list(points)
    return entry_points


def test_installed_entry_points_are_models_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(
        importlib.metadata.EntryPoint("plugin_stats", "fixtures_models:FRAME_STATS",
                                      ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("mn04_as", "fixtures_models:FRAME_STATS",
                                      ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("broken", "fixtures_models:FrameStats",
                                      ENTRY_POINT_GROUP)))
    names = available_models()
    assert names.count("mn04_as") == 1 and names[-2:] == ["plugin_stats", "broken"]
    assert model_info("mn04_as").family == "efficientat"  # built-in names win
    info = model_info("plugin_stats")
    assert (info.registered, info.sample_rate, info.version) == (True, 8000, "1")
    assert isinstance(load_pretrained("plugin_stats", device="cpu"), FrameStats)
    assert check_models(["plugin_stats", "mn04_as"]) == ["plugin_stats", "mn04_as"]
    with pytest.raises(ConfigError, match=r"entry point 'broken' .* must be a mapping"):
        model_info("broken")


def test_a_registered_model_is_trained_on_and_predicts_from_audio(folder: Path,
                                                                  tmp_path: Path) -> None:
    from featurekit.model.classifier import AudioClassifier
    from featurekit.model.load import load_model

    register_model("frame_stats", FrameStats, sample_rate=8000, embedding_dim=4)
    clips = load_dataset("folder", folder).clips
    classifier = AudioClassifier("neural.frame_stats/logreg", model="frame_stats").fit(
        clips["path"].tolist(), clips["label"].to_numpy())
    assert classifier.feature_names_ == [f"neural.frame_stats.emb_{i:03d}" for i in range(4)]
    loaded = load_model(classifier.save(tmp_path / "model.fk"))
    np.testing.assert_array_equal(loaded.predict_proba(clips["path"].tolist()),
                                  classifier.predict_proba(clips["path"].tolist()))
