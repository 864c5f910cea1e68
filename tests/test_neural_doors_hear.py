"""The HEAR door: ``hear:MODULE[:WEIGHTS]`` makes any HEAR 2021 module a model by name, for the
library, the ``embed`` command and ``train``/``predict``."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_audio import make_folder_dataset

from featurekit.cli import main
from featurekit.computers.neural import NeuralBranch
from featurekit.computers.runner import run_branch
from featurekit.datasets import load_dataset
from featurekit.errors import ConfigError
from featurekit.io.audio import load_audio
from featurekit.names import model_store_name
from featurekit.neural import load_pretrained, model_info, registry
from featurekit.pipeline import check_models
from featurekit.store.reader import FeatureStore

pytestmark = pytest.mark.filterwarnings("ignore::featurekit.datasets.DatasetWarning")

#: A HEAR module: per 0.1-s hop, the mean, spread and peak of the signal, times a scale read
#: from the weights file (1 without one); timestamps at the centres of the hops.
FAKE_HEAR = '''
import torch


class Model(torch.nn.Module):
    sample_rate = 8000
    scene_embedding_size = 3
    timestamp_embedding_size = 3

    def __init__(self, scale):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale), requires_grad=False)


def load_model(model_file_path=""):
    if not model_file_path:
        return Model(1.0)
    with open(model_file_path) as file:
        return Model(float(file.read()))


def _stats(audio, model):
    hops = audio.unfold(1, 800, 800)
    return model.scale * torch.stack([hops.mean(-1), hops.std(-1), hops.abs().amax(-1)], -1)


def get_timestamp_embeddings(audio, model):
    embeddings = _stats(audio, model)
    times = 50.0 + 100.0 * torch.arange(embeddings.shape[1], dtype=torch.float32)
    return embeddings, times.expand(len(audio), -1)
'''
SCENE = '''

def get_scene_embeddings(audio, model):
    return _stats(audio, model).mean(1)
'''


@pytest.fixture(autouse=True)
def own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Doors opened by a test close with it."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_DOORS", {})
    monkeypatch.setenv("FEATUREKIT_NO_PROGRESS", "1")


def _module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, *,
            scene: bool = True) -> str:
    """Write the fake HEAR module as ``name`` on ``sys.path``."""
    (tmp_path / f"{name}.py").write_text(FAKE_HEAR + (SCENE if scene else ""))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder_dataset(tmp_path / "audio", clips_per_class=3, duration=1.5)


def test_a_hear_module_embeds_a_dataset_with_its_frames(folder: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    module = _module(tmp_path, monkeypatch, "fake_hear_lib")
    weights = tmp_path / "scale.txt"
    weights.write_text("2.0")
    name = f"hear:{module}:{weights}"
    assert check_models(name) == [name]
    dataset = load_dataset("folder", folder)
    summary = run_branch(NeuralBranch(name), dataset, tmp_path / "store", frames=True,
                         progress=False)
    assert summary.exit_code == 0
    branch = "neural.hear-fake_hear_lib"
    store = FeatureStore(tmp_path / "store")
    table = store.read(dataset.name, branch)
    assert len(table) == 6 and list(table.columns[-3:]) == [f"{branch}.emb_{i:03d}"
                                                            for i in range(3)]
    config = store.provenance(dataset.name, branch)["config"]
    assert config["source"] == {"door": "hear", "module": module, "weights": str(weights),
                                "weights_sha256": hashlib.sha256(b"2.0").hexdigest()}
    # Scene embeddings of the clip at the module's 8 kHz, scaled by the weights' 2.
    clip = dataset.clips.sort_values("clip_id").iloc[0]
    y = torch.from_numpy(load_audio(clip["path"], sr=8000)[0][None, :].astype(np.float32))
    hops = y.unfold(1, 800, 800)
    expected = 2 * torch.stack([hops.mean(-1), hops.std(-1), hops.abs().amax(-1)], -1)
    np.testing.assert_allclose(table.iloc[0, -3:].to_numpy(np.float32),
                               expected.mean(1)[0].numpy(), rtol=1e-5, atol=1e-6)
    # Timestamp embeddings as frames, stamped where the module stamps them.
    frames = store.frames(dataset.name, branch)
    first = frames[frames["clip_id"] == clip["clip_id"]]
    np.testing.assert_allclose(first["time_s"], [0.05 + 0.1 * i for i in range(15)])
    np.testing.assert_allclose(first.iloc[:, -3:].to_numpy(np.float32), expected[0].numpy(),
                               rtol=1e-5, atol=1e-6)
    # Another weights file is another configuration of the same branch: not mixed.
    weights.write_text("3.0")
    registry._DOORS.clear()
    assert NeuralBranch(name).config_hash() != config_hash_of(store, dataset.name, branch)


def config_hash_of(store: FeatureStore, dataset: str, branch: str) -> str:
    return store.provenance(dataset, branch)["config_hash"]


def test_the_embed_command_opens_the_hear_door(folder: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    module = _module(tmp_path, monkeypatch, "fake_hear_cli")
    common = ["embed", "--dataset", "folder", "--data-dir", str(folder), "--store",
              str(tmp_path / "store")]
    assert main([*common, "--model", f"hear:{module}", "--frames"]) == 0, capsys.readouterr()
    store = FeatureStore(tmp_path / "store")
    assert len(store.read("audio", "neural.hear-fake_hear_cli")) == 6
    assert len(store.frames("audio", "neural.hear-fake_hear_cli")) == 6 * 15
    assert main([*common, "--model", f"hear:{module}", "--tags"]) == 2
    assert "has no tags" in capsys.readouterr().err
    broken = _module(tmp_path, monkeypatch, "fake_hear_broken", scene=False)
    assert main([*common, "--model", f"hear:{broken}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "lacks get_scene_embeddings() of the HEAR 2021 API" in err
    assert len(err.splitlines()) == 1


def test_modules_without_the_api_are_refused_in_one_line(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"'featurekit\.names' lacks load_model\(\)"):
        model_info("hear:featurekit.names")
    with pytest.raises(ConfigError, match="'no_such_hear_module' cannot be imported"):
        check_models("hear:no_such_hear_module")
    module = _module(tmp_path, monkeypatch, "fake_hear_weights")
    with pytest.raises(ConfigError, match=r"load_model\('missing.txt'\) failed: FileNotFound"):
        model_info(f"hear:{module}:missing.txt")
    (tmp_path / "hear_no_rate.py").write_text(
        FAKE_HEAR.replace("    sample_rate = 8000\n", "") + SCENE)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="lacks the attribute 'sample_rate'"):
        model_info("hear:hear_no_rate")


def test_store_names_of_doors() -> None:
    assert model_store_name("hear:featurekit.neural.hear:/w/mn04.pt") == \
        "hear-featurekit-neural-hear"
    assert model_store_name("hf:facebook/wav2vec2-base@layer=6") == \
        "hf-facebook-wav2vec2-base-layer6"
    assert model_store_name("hf:/tmp/my model/") == "hf-my-model"
    assert model_store_name("mn04_as") == "mn04_as"


def test_featurekit_s_own_hear_module_is_a_hear_module(tmp_path: Path) -> None:
    """Its untrained weights need no download: the door gives what its API gives."""
    from featurekit.neural import hear

    name = "hear:featurekit.neural.hear:untrained"
    tagger = load_pretrained(name, device="cpu")
    assert (tagger.sample_rate, tagger.embedding_dim) == (32000, 384)
    assert (tagger.frame_period_s, tagger.first_frame_s) == (0.04, 0.0)
    audio = torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (2, 48000))
                             .astype(np.float32))
    own = hear.load_model("untrained", device="cpu")
    out = tagger(audio)
    np.testing.assert_allclose(out["embedding"].numpy(),
                               hear.get_scene_embeddings(audio, own).numpy(), atol=1e-6)
    np.testing.assert_allclose(out["frames"].numpy(),
                               hear.get_timestamp_embeddings(audio, own)[0].numpy(), atol=1e-6)
    assert out["tags"].shape == (2, 0)
    # Random weights named inside the door are marked, so a benchmark refuses the branch.
    from featurekit.computers.neural import NeuralBranch

    branch = NeuralBranch(name)
    assert branch.provenance()["untrained"] is True
    assert branch.tagger.embedding_dim == 384


def test_a_hear_module_is_trained_on_and_predicts_from_audio(folder: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    from featurekit.model.classifier import AudioClassifier
    from featurekit.model.load import load_model

    module = _module(tmp_path, monkeypatch, "fake_hear_train")
    clips = load_dataset("folder", folder).clips
    classifier = AudioClassifier("neural.hear-fake_hear_train/logreg",
                                 model=f"hear:{module}").fit(clips["path"].tolist(),
                                                             clips["label"].to_numpy())
    path = classifier.save(tmp_path / "model.fk")
    registry._DOORS.clear()  # as in a new process: the saved name opens the door again
    np.testing.assert_array_equal(load_model(path).predict_proba(clips["path"].tolist()),
                                  classifier.predict_proba(clips["path"].tolist()))


WEIGHTS_DIR = os.environ.get("FEATUREKIT_WEIGHTS_DIR")


@pytest.mark.weights
@pytest.mark.skipif(not WEIGHTS_DIR, reason="set FEATUREKIT_WEIGHTS_DIR to the shared weights "
                                            "folder (../shared/weights) to run")
def test_featurekit_s_hear_module_with_mn04_weights_gives_mn04_embeddings(
        folder: Path, tmp_path: Path) -> None:
    found = sorted(Path(WEIGHTS_DIR).rglob(model_info("mn04_as").file_name))
    if not found:
        pytest.skip(reason=f"mn04_as weights not under FEATUREKIT_WEIGHTS_DIR={WEIGHTS_DIR}")
    dataset = load_dataset("folder", folder)
    tables = []
    for name in ("mn04_as", f"hear:featurekit.neural.hear:{found[0]}"):
        branch = NeuralBranch(name, device="cpu")
        assert run_branch(branch, dataset, tmp_path / "store", progress=False).exit_code == 0
        tables.append(FeatureStore(tmp_path / "store").read(dataset.name, branch.branch))
    built_in, door = (table.sort_values("clip_id").iloc[:, -384:].to_numpy(np.float64)
                      for table in tables)
    cosine = (built_in * door).sum(1) / np.linalg.norm(built_in, axis=1) / np.linalg.norm(
        door, axis=1)
    assert cosine.min() >= 0.9999
