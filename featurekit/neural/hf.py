"""The Hugging Face door: ``hf:ID_OR_DIR[@layer=K]``, an audio model of ``transformers``.

The model is ``AutoModel`` with ``AutoFeatureExtractor`` (wav2vec 2.0, HuBERT, WavLM, AST ...)
from a hub id or a local directory (``save_pretrained``). Its clip embedding is the mean over
tokens of the hidden states of layer ``K`` (0 is the embedding layer's output; default the
last), its frames those hidden states, one row per token. Clips are cut into featurekit's 10-s
windows (:mod:`featurekit.neural.embedding`), each fed to the feature extractor at its
``sampling_rate``, and the windows' embeddings averaged.

Needs the ``hf`` extra (``pip install "featurekit[hf]"``). Files are read with
``local_files_only`` when offline (``FEATUREKIT_OFFLINE=1``) and always for a local directory:
featurekit then downloads nothing.
"""

from __future__ import annotations

import hashlib
from functools import partial
from pathlib import Path
from typing import Any

import torch

from featurekit._util.optional import require
from featurekit.errors import ConfigError
from featurekit.names import HF_DOOR, model_store_name
from featurekit.neural.base import AudioTagger
from featurekit.neural.info import REGISTERED, ModelInfo

__all__ = ["HFTagger", "open_hf"]

#: What separates the model from its layer in ``hf:ID_OR_DIR@layer=K``.
LAYER_MARK = "@layer="
#: Length of the silence whose token count gives the frame period of a model whose
#: configuration states none, seconds.
_PROBE_S = 1.0
#: Weight files of a saved model whose SHA-256 enters the configuration.
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")


def _transformers() -> Any:
    return require("transformers", extra="hf", purpose="Hugging Face models (hf:...)")


def open_hf(name: str, *, offline: bool) -> ModelInfo:
    """Registry entry of ``hf:ID_OR_DIR[@layer=K]`` (module docstring).

    Parameters
    ----------
    name : str
    offline : bool, keyword-only
        Read the hub cache only, never download.

    Raises
    ------
    MissingDependencyError
        ``transformers`` is not installed (names the ``hf`` extra).
    ConfigError
        A malformed layer, a path that is no directory, a model or feature extractor that
        cannot be loaded, or a layer the model does not have.
    """
    source, mark, layer_text = name[len(HF_DOOR):].partition(LAYER_MARK)
    if not source or (mark and not layer_text.isdigit()):
        raise ConfigError(f"{name!r}: use hf:ID_OR_DIR or hf:ID_OR_DIR@layer=K (K a whole "
                          "number)")
    local = source.startswith(("/", ".", "~"))
    if local:
        source = str(Path(source).expanduser())
        if not Path(source).is_dir():
            raise ConfigError(f"{name!r}: {source} is not a directory (a saved Hugging Face "
                              "model)")
    transformers = _transformers()
    options = {"local_files_only": local or offline}
    try:
        config = transformers.AutoConfig.from_pretrained(source, **options)
        extractor = transformers.AutoFeatureExtractor.from_pretrained(source, **options)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{name!r}: cannot load a Hugging Face audio model from {source} "
                          f"({str(exc).splitlines()[0]})") from None
    n_layers = getattr(config, "num_hidden_layers", None)
    hidden_size = getattr(config, "hidden_size", None)
    # A model of several towers (CLAP: audio and text) answers for one it does not run on
    # audio alone; picking its audio tower is not built.
    towers = hasattr(config, "audio_config") or hasattr(config, "text_config")
    if towers or not isinstance(n_layers, int) or not isinstance(hidden_size, int):
        raise ConfigError(f"{name!r}: {config.model_type} models are not supported (only "
                          "single audio models whose configuration states num_hidden_layers "
                          "and hidden_size; not several towers, as CLAP's)")
    layer = int(layer_text) if mark else n_layers
    if layer > n_layers:
        raise ConfigError(f"{name!r}: the model has layers 0 to {n_layers}")
    sha256 = _weights_sha256(Path(source)) if local else None
    return ModelInfo(
        name=model_store_name(name), family=REGISTERED, file_name="",
        url="" if local else f"https://huggingface.co/{source}", sha256=None, md5=None,
        sample_rate=int(extractor.sampling_rate), embedding_dim=hidden_size,
        license="unknown", citation="",
        build=partial(HFTagger, source, layer=layer, local_files_only=options["local_files_only"]),
        source={"door": "hf", "model": source, "layer": layer,
                "revision": getattr(config, "_commit_hash", None), "weights_sha256": sha256})


def _weights_sha256(directory: Path) -> str | None:
    """One SHA-256 over a saved model's weight files (names and contents, sorted)."""
    files = sorted(p for pattern in _WEIGHT_PATTERNS for p in directory.glob(pattern))
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class HFTagger(AudioTagger):
    """A Hugging Face audio model as a featurekit model (module docstring).

    Parameters
    ----------
    source : str
        Hub id or directory.
    layer : int, keyword-only
        Hidden states used: 0 the embedding layer's output, ``num_hidden_layers`` the last.
    local_files_only : bool, keyword-only
        Never download.

    Attributes
    ----------
    frame_period_s : float
        Time per token, seconds: the configuration's ``inputs_to_logits_ratio`` where it
        states one (wav2vec 2.0, HuBERT, WavLM), else one second over the number of tokens
        of one second of audio. AST's tokens are patches of a spectrogram padded to 10.24 s,
        not a time series: its frames' times are token indices on that scale.
    """

    n_classes = 0

    def __init__(self, source: str, *, layer: int, local_files_only: bool) -> None:
        super().__init__()
        transformers = _transformers()
        self.extractor = transformers.AutoFeatureExtractor.from_pretrained(
            source, local_files_only=local_files_only)
        self.model = transformers.AutoModel.from_pretrained(
            source, local_files_only=local_files_only).eval()
        self.layer = layer
        self.sample_rate = int(self.extractor.sampling_rate)
        self.embedding_dim = int(self.model.config.hidden_size)
        ratio = getattr(self.model.config, "inputs_to_logits_ratio", None)
        if ratio:
            self.frame_period_s = ratio / self.sample_rate
        else:
            probe = torch.zeros((1, round(_PROBE_S * self.sample_rate)))
            self.frame_period_s = _PROBE_S / self._hidden(probe).shape[1]

    def _hidden(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Hidden states of layer ``layer``, (batch, tokens, hidden_size)."""
        inputs = self.extractor(list(waveforms.float().cpu().numpy()),
                                sampling_rate=self.sample_rate, return_tensors="pt")
        device = next(self.model.parameters()).device
        with torch.inference_mode():
            out = self.model(**{key: value.to(device) for key, value in inputs.items()},
                             output_hidden_states=True)
        return out.hidden_states[self.layer].float()

    def forward(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Mean hidden states (embedding) and the hidden states (frames) of (batch, samples)."""
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), "
                             f"got {tuple(waveforms.shape)}")
        hidden = self._hidden(waveforms)
        empty = torch.zeros((waveforms.shape[0], 0), device=hidden.device)
        return {"embedding": hidden.mean(dim=1), "logits": empty, "tags": empty,
                "frames": hidden}
