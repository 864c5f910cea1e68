"""The Hugging Face door: ``hf:ID_OR_DIR[@layer=K]``, on a tiny randomly initialised wav2vec 2.0
and a tiny CLAP saved to temporary folders (nothing is ever downloaded)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_audio import make_folder_dataset

from featurekit.cli import main
from featurekit.computers.neural import NeuralBranch
from featurekit.computers.runner import run_branch
from featurekit.config import ExtractionConfig
from featurekit.datasets import load_dataset
from featurekit.errors import ConfigError, MissingDependencyError
from featurekit.io.audio import load_audio
from featurekit.neural import load_pretrained, model_info, registry
from featurekit.neural.embedding import embed_waveforms, window_starts
from featurekit.store.reader import FeatureStore

transformers = pytest.importorskip("transformers")  # the dev extra installs it
pytestmark = pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Doors opened by a test close with it."""
    monkeypatch.setattr(registry, "_DOORS", {})
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer wav2vec 2.0 of width 32 at 16 kHz (one token per 80 samples), untrained."""
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hf") / "tiny"
    transformers.Wav2Vec2Model(config).save_pretrained(directory)
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=16000).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def clap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CLAP whose audio tower has two Swin stages of width 8 and 16 on 16 mel bands, with
    a 2-s input at 48 kHz (32 time steps) and embeddings of size 8, untrained."""
    audio = {"depths": [1, 1], "num_attention_heads": [1, 2], "patch_embeds_hidden_size": 8,
             "hidden_size": 16, "num_hidden_layers": 2, "num_mel_bins": 16, "spec_size": 64,
             "window_size": 4}
    text = {"vocab_size": 64, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 1, "intermediate_size": 16, "max_position_embeddings": 40}
    config = transformers.ClapConfig(text_config=text, audio_config=audio, projection_dim=8)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("hf") / "clap"
    transformers.ClapModel(config).save_pretrained(directory)
    # An unfused CLAP's extractor: one spectrogram (fusion's four need a fused tower).
    transformers.ClapFeatureExtractor(feature_size=16, max_length_s=2,
                                      truncation="rand_trunc").save_pretrained(directory)
    return directory


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "audio", clips_per_class=6, duration=1.2)


def _hidden(directory: Path, y: np.ndarray, layer: int) -> np.ndarray:
    """Hidden states of ``layer`` for one 16-kHz clip, by transformers alone."""
    extractor = transformers.AutoFeatureExtractor.from_pretrained(directory)
    model = transformers.AutoModel.from_pretrained(directory).eval()
    with torch.inference_mode():
        out = model(**extractor([y], sampling_rate=16000, return_tensors="pt"),
                    output_hidden_states=True)
    return out.hidden_states[layer][0].numpy()


def embedded_twice(name: str, branch: str, dataset: Any, tmp_path: Path) -> list[pd.DataFrame]:
    """The store branch ``branch`` of ``dataset`` computed by ``name`` into two stores (``a``,
    ``b`` under ``tmp_path``), checked identical."""
    tables = []
    for store in ("a", "b"):
        computer = NeuralBranch(name, device="cpu")
        assert computer.branch == branch
        assert run_branch(computer, dataset, tmp_path / store, frames=True,
                          progress=False).exit_code == 0
        tables.append(FeatureStore(tmp_path / store).read(dataset.name, branch))
    np.testing.assert_array_equal(tables[0].to_numpy(), tables[1].to_numpy())
    return tables


def test_a_saved_model_embeds_a_dataset_deterministically(tiny: Path, folder: Path,
                                                          tmp_path: Path) -> None:
    dataset = load_dataset("folder", folder)
    name = f"hf:{tiny}"
    tables = embedded_twice(name, "neural.hf-tiny", dataset, tmp_path)
    store = FeatureStore(tmp_path / "a")
    config = store.provenance(dataset.name, "neural.hf-tiny")["config"]
    assert config["source"]["door"] == "hf" and config["source"]["layer"] == 2
    assert len(config["source"]["weights_sha256"]) == 64
    # The embedding is the mean of the last layer's hidden states; the frames are those.
    clip = dataset.clips.sort_values("clip_id").iloc[0]
    hidden = _hidden(tiny, load_audio(clip["path"], sr=16000)[0], layer=2)
    np.testing.assert_allclose(tables[0].iloc[0, -32:].to_numpy(np.float32), hidden.mean(0),
                               rtol=1e-4, atol=1e-5)
    frames = store.frames(dataset.name, "neural.hf-tiny")
    first = frames[frames["clip_id"] == clip["clip_id"]]
    np.testing.assert_allclose(first.iloc[:, -32:].to_numpy(np.float32), hidden, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(np.diff(first["time_s"]), 0.005)
    # Another layer is another branch, with that layer's hidden states.
    layer1 = NeuralBranch(f"{name}@layer=1", device="cpu")
    assert layer1.branch == "neural.hf-tiny-layer1"
    assert run_branch(layer1, dataset, tmp_path / "a", progress=False).exit_code == 0
    np.testing.assert_allclose(
        store.read(dataset.name, "neural.hf-tiny-layer1").iloc[0, -32:].to_numpy(np.float32),
        _hidden(tiny, load_audio(clip["path"], sr=16000)[0], layer=1).mean(0), rtol=1e-4,
        atol=1e-5)


def test_a_saved_model_runs_through_the_benchmark_and_train_predict(
        tiny: Path, folder: Path, tmp_path: Path) -> None:
    from featurekit.benchmark import run as run_benchmark_on
    from featurekit.benchmark.config import BenchmarkConfig
    from featurekit.model.load import load_model
    from featurekit.model.train import train

    config = BenchmarkConfig(heads=("logreg",), fusions=("early",), repeats=1, n_bootstrap=100)
    extraction = ExtractionConfig(families=("spectral",))
    results = run_benchmark_on("folder", folder, tmp_path / "store", model=f"hf:{tiny}",
                               config=config, extraction=extraction, out=tmp_path / "bench",
                               progress=False).results
    names = [system["name"] for system in results["systems"]]
    assert "neural.hf-tiny/logreg" in names
    classifier = train("folder", folder, tmp_path / "store", model=f"hf:{tiny}",
                       system="neural.hf-tiny/logreg", config=config, extraction=extraction,
                       progress=False)
    path = classifier.save(tmp_path / "model.fk")
    registry._DOORS.clear()  # as in a new process: the saved name opens the door again
    clips = load_dataset("folder", folder).clips["path"].tolist()
    np.testing.assert_array_equal(load_model(path).predict_proba(clips),
                                  classifier.predict_proba(clips))


def _clap_features(directory: Path, windows: list[np.ndarray]) -> np.ndarray:
    """``ClapModel.get_audio_features`` of 48-kHz windows, by transformers alone."""
    extractor = transformers.AutoFeatureExtractor.from_pretrained(directory)
    model = transformers.ClapModel.from_pretrained(directory).eval()
    with torch.inference_mode():
        return np.stack([model.get_audio_features(**extractor(
            [y], sampling_rate=48000, return_tensors="pt")).pooler_output[0].numpy()
            for y in windows])


def test_a_clap_model_stores_its_projected_audio_embedding(clap: Path, folder: Path,
                                                            tmp_path: Path) -> None:
    dataset = load_dataset("folder", folder)
    tables = embedded_twice(f"hf:{clap}", "neural.hf-clap", dataset, tmp_path)
    store = FeatureStore(tmp_path / "a")
    config = store.provenance(dataset.name, "neural.hf-clap")["config"]
    assert config["source"]["tower"] == "audio" and "layer" not in config["source"]
    assert config["source"]["output"] == "get_audio_features"
    assert config["embedding_dim"] == 8 and config["window_s"] == 2.0
    columns = [c for c in tables[0].columns if c.startswith("neural.hf-clap.emb_")]
    assert len(columns) == 8
    clip = dataset.clips.sort_values("clip_id").iloc[0]
    expected = _clap_features(clap, [load_audio(clip["path"], sr=48000)[0]])[0]
    np.testing.assert_allclose(tables[0].iloc[0][columns].to_numpy(np.float32), expected,
                               rtol=1e-4, atol=1e-5)
    # Frames: 32 time steps per 2 s, those of the 1.2 s of audio only.
    frames = store.frames(dataset.name, "neural.hf-clap")
    first = frames[frames["clip_id"] == clip["clip_id"]]
    assert len(first) == 20 and first.shape[1] - 2 == 16
    np.testing.assert_allclose(np.diff(first["time_s"]), 2 / 32)


def test_a_clip_longer_than_the_models_input_is_averaged_over_its_windows(
        clap: Path) -> None:
    y = np.random.default_rng(0).normal(0, 0.1, 5 * 48000).astype(np.float32)
    notes = NeuralBranch(f"hf:{clap}", device="cpu").compute_batch([y], sr=48000)[0].notes
    assert "averaged over 3 windows of 2 s" in notes
    clip = embed_waveforms(load_pretrained(f"hf:{clap}", device="cpu"), [y])[0]
    assert clip.n_windows == 3
    windows = [y[start:start + 96000] for start in window_starts(y.size, 96000)]
    np.testing.assert_allclose(clip.embedding, _clap_features(clap, windows).mean(0),
                               rtol=1e-4, atol=1e-5)


def test_an_ast_is_cut_into_its_own_input_length(tmp_path: Path, tiny: Path) -> None:
    config = transformers.ASTConfig(hidden_size=16, num_hidden_layers=1,
                                    num_attention_heads=1, intermediate_size=16,
                                    num_mel_bins=16, max_length=300)
    config.save_pretrained(tmp_path / "ast")
    transformers.ASTFeatureExtractor(num_mel_bins=16,
                                     max_length=300).save_pretrained(tmp_path / "ast")
    assert model_info(f"hf:{tmp_path / 'ast'}").window_s == 3.0  # 300 frames of 10 ms
    assert model_info(f"hf:{tiny}").window_s is None  # wav2vec 2.0: featurekit's 10 s


def test_a_clap_model_runs_through_the_benchmark_command(clap: Path, folder: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "bench"
    assert main(["benchmark", "--dataset", "folder", "--data-dir", str(folder), "--store",
                 str(tmp_path / "store"), "--model", f"hf:{clap}", "--families", "spectral",
                 "--heads", "logreg", "--fusions", "mean", "--repeats", "1", "--bootstrap",
                 "200", "--ablation", "none", "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert "neural.hf-clap/logreg" in [system["name"] for system in results["systems"]]


def test_offline_a_hub_id_is_read_from_the_cache_only(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEATUREKIT_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ConfigError, match="cannot load a Hugging Face audio model"):
        model_info("hf:facebook/wav2vec2-base")


def test_malformed_names_and_missing_transformers_are_refused(
        tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="the model has layers 0 to 2"):
        model_info(f"hf:{tiny}@layer=3")
    with pytest.raises(ConfigError, match="@layer=K"):
        model_info(f"hf:{tiny}@layer=last")
    with pytest.raises(ConfigError, match="is not a directory"):
        model_info(f"hf:{tmp_path / 'nothing'}")
    transformers.ClapConfig().save_pretrained(tmp_path / "clap")
    transformers.ClapFeatureExtractor().save_pretrained(tmp_path / "clap")
    with pytest.raises(ConfigError, match="@layer=K does not apply to CLAP"):
        model_info(f"hf:{tmp_path / 'clap'}@layer=1")
    # A CLAP audio tower saved alone is no CLAP model.
    transformers.ClapAudioConfig().save_pretrained(tmp_path / "tower")
    transformers.ClapFeatureExtractor().save_pretrained(tmp_path / "tower")
    with pytest.raises(ConfigError, match="clap_audio_model models are not supported"):
        model_info(f"hf:{tmp_path / 'tower'}")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "featurekit\[hf\]"'):
        model_info(f"hf:{tiny}")
