"""featurekit's model code against the published models (needs FEATUREKIT_WEIGHTS_DIR).

Run with ``FEATUREKIT_WEIGHTS_DIR=../shared/weights``; the specs folder beside it
(``../shared/specs``) provides the checkpoint manifests. Tolerances are those stated in the
weights README. The golden outputs are checked on the CPU and, when torch sees a GPU, on CUDA
in full float32 (TF32 off, as featurekit embeds), with the same tolerances.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from featurekit.errors import WeightsError
from featurekit.neural import load_pretrained, model_info
from featurekit.neural.embedding import float32_precision

WEIGHTS_DIR = os.environ.get("FEATUREKIT_WEIGHTS_DIR")
pytestmark = [
    pytest.mark.weights,
    pytest.mark.skipif(not WEIGHTS_DIR, reason="set FEATUREKIT_WEIGHTS_DIR to the shared "
                                               "weights folder (../shared/weights) to run"),
]
MANIFESTS = {"mn04_as": "EfficientAT_mn04_as.tsv", "cnn14": "Cnn14.tsv",
             "cnn14_16k": "Cnn14_16k.tsv", "cnn10": "Cnn10.tsv", "cnn6": "Cnn6.tsv",
             "mobilenetv1": "MobileNetV1.tsv"}
PANNS = ["cnn14", "cnn14_16k", "cnn10", "cnn6", "mobilenetv1"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device: the golden outputs are checked on "
                                          "the CPU only"))]


def _weights() -> Path:
    return Path(WEIGHTS_DIR)


def _golden(path: Path) -> Path:
    """``path`` if it exists; skips the test, naming it, otherwise."""
    if not path.is_file():
        pytest.skip(reason=f"golden file {path} missing (expected in FEATUREKIT_WEIGHTS_DIR)")
    return path


def _manifest(name: str) -> list[tuple[str, tuple[int, ...], str]]:
    path = _weights().parent / "specs" / MANIFESTS[name]
    if not path.is_file():
        pytest.skip(reason=f"{path} missing (expected beside FEATUREKIT_WEIGHTS_DIR)")
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, dtype = line.split("\t")[:3]
        dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
        rows.append((key, dims, dtype))
    return rows


@pytest.mark.parametrize("name", list(MANIFESTS))
def test_state_dict_equals_published_manifest(name):
    state = model_info(name).build().state_dict()
    got = [(key, tuple(value.shape), str(value.dtype).removeprefix("torch."))
           for key, value in state.items()]
    assert got == _manifest(name)


@pytest.mark.parametrize("name", PANNS)
def test_checkpoint_built_from_manifest_loads_strictly(name, tmp_path):
    generator = torch.Generator().manual_seed(0)
    state = {key: (torch.randn(shape, generator=generator) if dtype == "float32"
                   else torch.tensor(3, dtype=torch.int64))
             for key, shape, dtype in _manifest(name)}
    path = tmp_path / model_info(name).file_name
    torch.save({"iteration": 0, "model": state}, path)
    del state
    model = load_pretrained(name, path, device="cpu")
    loaded = model.state_dict()
    reference = torch.load(path, weights_only=True)["model"]
    for key in ("spectrogram_extractor.stft.conv_real.weight", "logmel_extractor.melW",
                "fc_audioset.bias"):
        assert torch.equal(loaded[key], reference[key])


# --------------------------------------------------------------------- EfficientAT mn04_as
@pytest.fixture(scope="module", params=DEVICES)
def mn04_golden(request):
    golden = _weights() / "golden"
    signals = np.load(_golden(golden / "mn04_golden_signals.npz"))
    facts = json.loads(_golden(golden / "mn04_golden.json").read_text())
    try:
        model = load_pretrained("mn04_as", device=request.param, offline=True)
    except WeightsError as exc:
        pytest.skip(reason=f"mn04_as weights missing: {exc}")
    return model, signals, facts["signals"]


def _outputs(model, waveform: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Log-mel and outputs of ``model`` on one signal, in full float32, back on the CPU."""
    device = next(model.parameters()).device
    batch = torch.from_numpy(waveform)[None].to(device)
    with torch.inference_mode(), float32_precision(allow_tf32=False):
        logmel = model.logmel(batch)
        out = model(batch)
    return logmel.cpu().numpy(), {key: value.cpu().numpy() for key, value in out.items()}


@pytest.mark.parametrize("signal", ["sine440", "white_noise", "chirp_100_8000"])
def test_mn04_reproduces_golden_outputs(mn04_golden, signal):
    model, signals, facts = mn04_golden
    expected = facts[signal]
    assert model.weights_info["sha256"] == ("899a8c6217063f6941793102a2780b3dd788ab11fce468d9"
                                            "cf5f0577c453321c")
    logmel, out = _outputs(model, signals[signal])
    assert list(logmel.shape) == expected["logmel_shape"]
    np.testing.assert_allclose(logmel[0, :5, :5], expected["logmel_0_5x5"], atol=1e-4)
    assert abs(float(logmel.mean()) - expected["logmel_mean"]) < 1e-4
    assert abs(float(logmel.std()) - expected["logmel_std"]) < 1e-4
    emb = out["embedding"][0].astype(np.float64)
    ref = np.asarray(expected["embedding_384"])
    assert emb @ ref / np.linalg.norm(emb) / np.linalg.norm(ref) >= 0.9999
    assert np.abs(emb - ref).max() <= 1e-3 * np.abs(ref).max()
    np.testing.assert_allclose(out["logits"][0], expected["logits_527"], atol=1e-3)
    top5 = np.argsort(-out["logits"][0], kind="stable")[:5].tolist()
    assert top5 == expected["top5_idx"]
    np.testing.assert_allclose(out["tags"][0, top5], expected["top5_sigmoid"], atol=1e-4)


# ------------------------------------------------------------------- PANNs Cnn10 reference
@pytest.fixture(scope="module", params=DEVICES)
def cnn10_golden(request):
    folder = _weights() / "panns-golden"
    model = load_pretrained("cnn10", _golden(folder / "Cnn10_random_seed1234.pth"),
                            device=request.param)
    return (model, np.load(_golden(folder / "signals.npz")),
            np.load(_golden(folder / "Cnn10_golden.npz")))


@pytest.mark.parametrize(("signal", "clipwise_tol"), [("sine440", 5e-5), ("chirp", 5e-5),
                                                      ("noise", 1e-5),
                                                      ("square300_noise_3s", 1e-5)])
def test_cnn10_reproduces_golden_outputs(cnn10_golden, signal, clipwise_tol):
    model, signals, golden = cnn10_golden
    logmel, out = _outputs(model, signals[signal])
    ref_logmel = golden[f"{signal}/logmel"]
    assert logmel.shape == ref_logmel.shape
    tonal = signal in ("sine440", "chirp")
    # Pure tones put many cells on the -100 dB floor, where float32 noise is large.
    near_peak = ref_logmel >= ref_logmel.max(axis=-1, keepdims=True) - 60
    diff = np.abs(logmel - ref_logmel)
    assert diff[near_peak].max() <= 1e-3 if tonal else diff.max() <= 2e-4
    emb = out["embedding"]
    ref_emb = golden[f"{signal}/embedding"]
    assert np.abs(emb - ref_emb).max() <= 1e-4 * np.abs(ref_emb).max()
    np.testing.assert_allclose(out["tags"], golden[f"{signal}/clipwise_output"],
                               atol=clipwise_tol)
