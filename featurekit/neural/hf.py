"""The Hugging Face door: ``hf:ID_OR_DIR[@layer=K]``, an audio model of ``transformers``.

The model is ``AutoModel`` with ``AutoFeatureExtractor`` (wav2vec 2.0, HuBERT, WavLM, AST ...)
from a hub id or a local directory (``save_pretrained``). Its clip embedding is the mean over
tokens of the hidden states of layer ``K`` (0 is the embedding layer's output; default the
last), its frames those hidden states, one row per token.

A CLAP model (``ClapModel``, model type ``clap``) is read for its audio tower alone
(``ClapAudioModelWithProjection``: the text tower is never built). Its clip
embedding is what CLAP compares with texts, ``ClapModel.get_audio_features``: the projected
audio embedding, L2-normalised, of size ``projection_dim``. Its frames are the audio tower's
last hidden state averaged over frequency, one row per time step (``max_length_s`` over their
number, 0.3125 s for the published models), up to the end of the audio given (the feature
extractor repeats a short clip to fill its input). ``@layer=K`` does not apply to it: its
Swin stages' hidden states are spectrogram images folded for the transformer, not one
sequence per layer.

Clips are cut into windows of the model's own input length where its feature extractor
states one (CLAP: ``max_length_s``; AST: ``max_length`` frames of 10 ms, 10.24 s for the
published models), else featurekit's 10-s windows (:mod:`featurekit.neural.embedding`); each
window is fed to the feature extractor at its ``sampling_rate``, and the windows' embeddings
averaged.

Needs the ``hf`` extra (``pip install "featurekit[hf]"``). Files are read with
``local_files_only`` when offline (``FEATUREKIT_OFFLINE=1``) and always for a local directory:
featurekit then downloads nothing.
"""

from __future__ import annotations

import hashlib
import math
from functools import partial
from pathlib import Path
from typing import Any

import torch

from featurekit._util.optional import require
from featurekit.errors import ConfigError
from featurekit.names import HF_DOOR, model_store_name
from featurekit.neural.base import AudioTagger
from featurekit.neural.info import REGISTERED, ModelInfo

__all__ = ["ClapTagger", "HFTagger", "open_hf"]

#: What separates the model from its layer in ``hf:ID_OR_DIR@layer=K``.
LAYER_MARK = "@layer="
#: Length of the silence whose token count gives the frame period of a model whose
#: configuration states none, seconds.
_PROBE_S = 1.0
#: Weight files of a saved model whose SHA-256 enters the configuration.
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
#: Frame shift of the Kaldi filter bank of AST's feature extractor, seconds.
_AST_FRAME_SHIFT_S = 0.01
#: Model type of the CLAP models whose audio tower the door reads.
_CLAP = "clap"


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
        cannot be loaded, a layer the model does not have (any layer for CLAP), or a model
        of several towers other than CLAP.
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
    window_s = _window_s(transformers, extractor)
    only = options["local_files_only"]
    if config.model_type == _CLAP:
        if mark:
            raise ConfigError(f"{name!r}: @layer=K does not apply to CLAP, whose clip "
                              "embedding is its projected audio embedding (its Swin stages "
                              "are folded spectrogram images, not one sequence per layer); "
                              "use hf:ID_OR_DIR")
        embedding_dim = config.audio_config.projection_dim
        build = partial(ClapTagger, source, local_files_only=only)
        stored: dict[str, Any] = {"tower": "audio", "output": "get_audio_features"}
    else:
        n_layers = getattr(config, "num_hidden_layers", None)
        embedding_dim = getattr(config, "hidden_size", None)
        # Another model of several towers answers for one it does not run on audio alone,
        # as does a CLAP audio tower saved without its projection's owner.
        towers = (hasattr(config, "audio_config") or hasattr(config, "text_config")
                  or config.model_type.startswith(_CLAP))
        if towers or not isinstance(n_layers, int) or not isinstance(embedding_dim, int):
            raise ConfigError(f"{name!r}: {config.model_type} models are not supported (only "
                              "CLAP models, whose audio tower is read, and single audio "
                              "models whose configuration states num_hidden_layers and "
                              "hidden_size)")
        layer = int(layer_text) if mark else n_layers
        if layer > n_layers:
            raise ConfigError(f"{name!r}: the model has layers 0 to {n_layers}")
        build = partial(HFTagger, source, layer=layer, local_files_only=only)
        stored = {"layer": layer}
    sha256 = _weights_sha256(Path(source)) if local else None
    return ModelInfo(
        name=model_store_name(name), family=REGISTERED, file_name="",
        url="" if local else f"https://huggingface.co/{source}", sha256=None, md5=None,
        sample_rate=int(extractor.sampling_rate), embedding_dim=int(embedding_dim),
        license="unknown", citation="", build=build,
        source={"door": "hf", "model": source, **stored,
                "revision": getattr(config, "_commit_hash", None), "weights_sha256": sha256},
        window_s=window_s)


def _window_s(transformers: Any, extractor: Any) -> float | None:
    """The model's own input length, seconds, where its feature extractor states one: CLAP's
    ``max_length_s``, AST's ``max_length`` frames; else None (featurekit's windows)."""
    if getattr(extractor, "max_length_s", None):
        return float(extractor.max_length_s)
    if isinstance(extractor, transformers.ASTFeatureExtractor):
        return round(extractor.max_length * _AST_FRAME_SHIFT_S, 6)
    return None


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
    window_s : float or None
        AST's input length (``max_length`` frames of 10 ms); None for the others.
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
        self.window_s = _window_s(transformers, self.extractor)
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


class ClapTagger(AudioTagger):
    """The audio tower of a CLAP model as a featurekit model (module docstring).

    Parameters
    ----------
    source : str
        Hub id or directory of a ``ClapModel``.
    local_files_only : bool, keyword-only
        Never download.

    Attributes
    ----------
    window_s : float
        The feature extractor's ``max_length_s``: longer clips are cut into windows of it.
    frame_period_s : float
        ``window_s`` over the number of time steps of the tower's last hidden state.

    Notes
    -----
    The feature extractor of a fused CLAP (``truncation="fusion"``) marks one clip of each
    call as longer than its input, at random, when none is; the tower is given that flag as
    the extractor sets it for a single window (true for a fused model, false otherwise), so
    that a clip's embedding is ``ClapModel.get_audio_features`` of that clip alone, whatever
    the batch.
    """

    n_classes = 0

    def __init__(self, source: str, *, local_files_only: bool) -> None:
        super().__init__()
        transformers = _transformers()
        self.extractor = transformers.AutoFeatureExtractor.from_pretrained(
            source, local_files_only=local_files_only)
        self.model = _clap_audio_tower(transformers, source, local_files_only)
        self.sample_rate = int(self.extractor.sampling_rate)
        self.embedding_dim = int(self.model.config.projection_dim)
        self.window_s = float(self.extractor.max_length_s)
        self._longer = self.extractor.truncation == "fusion"
        probe = torch.zeros((1, self._window_samples))
        self.frame_period_s = self.window_s / self._tower(probe)[1].shape[1]

    @property
    def _window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    def _tower(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised projected embeddings (batch, projection_dim) and the last hidden state
        averaged over frequency (batch, time, channels)."""
        inputs = self.extractor(list(waveforms.float().cpu().numpy()),
                                sampling_rate=self.sample_rate, return_tensors="pt")
        device = next(self.model.parameters()).device
        longer = torch.full((waveforms.shape[0], 1), self._longer, device=device)
        with torch.inference_mode():
            out = self.model(input_features=inputs["input_features"].to(device),
                             is_longer=longer)
        embedding = torch.nn.functional.normalize(out.audio_embeds.float(), dim=-1)
        return embedding, out.last_hidden_state.float().mean(dim=2).transpose(1, 2)

    def forward(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """CLAP's audio embedding and frames (module docstring) of (batch, samples)."""
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), "
                             f"got {tuple(waveforms.shape)}")
        embedding, frames = self._tower(waveforms)
        # The rows of the audio given, not of its repetitions that fill the input.
        n_rows = math.ceil(frames.shape[1] * waveforms.shape[1] / self._window_samples)
        empty = torch.zeros((waveforms.shape[0], 0), device=embedding.device)
        return {"embedding": embedding, "logits": empty, "tags": empty,
                "frames": frames[:, :n_rows]}


def _clap_audio_tower(transformers: Any, source: str, local_files_only: bool) -> Any:
    """``ClapAudioModelWithProjection`` read from a ``ClapModel``'s files, in eval mode."""
    previous = transformers.logging.get_verbosity()
    # Its load report lists every weight of the text tower as unexpected.
    transformers.logging.set_verbosity_error()
    try:
        model, loading = transformers.ClapAudioModelWithProjection.from_pretrained(
            source, local_files_only=local_files_only, output_loading_info=True)
    finally:
        transformers.logging.set_verbosity(previous)
    missing = loading["missing_keys"]
    if missing:
        raise ConfigError(f"{source}: holds no CLAP audio tower ({len(missing)} of its "
                          f"weights missing, e.g. {sorted(missing)[0]})")
    return model.eval()
