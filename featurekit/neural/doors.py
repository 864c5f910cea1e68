"""Doors: models that ``embed``, ``benchmark``, ``train`` and ``predict`` accept by a name
that says where they come from, without registering them.

``hear:MODULE[:WEIGHTS]``
    Any importable module with the HEAR 2021 API (https://hearbenchmark.com):
    ``load_model(model_file_path)``, ``get_scene_embeddings(audio, model)`` and
    ``get_timestamp_embeddings(audio, model)``, its model having ``sample_rate``,
    ``scene_embedding_size`` and ``timestamp_embedding_size``. ``WEIGHTS`` (everything after
    the second ``:``) is passed as ``model_file_path`` (default ``""``). The clip embedding is
    the scene embedding, the frames the timestamp embeddings (:class:`HearTagger`).
    featurekit's own :mod:`featurekit.neural.hear` is such a module.
``hf:ID_OR_DIR[@layer=K]``
    A Hugging Face audio model, hub id or local directory (:mod:`featurekit.neural.hf`).

A door's store branch is ``neural.<name>`` with the name of
:func:`featurekit.names.model_store_name` (``hear-featurekit-neural-hear``, ``hf-org-model``);
what identifies the model (module or model, weights and their SHA-256, layer) is its
``ModelInfo.source``, part of the branch's configuration hash, so a store refuses to mix two
models that share a branch name.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from featurekit.errors import ConfigError
from featurekit.names import HEAR_DOOR, HF_DOOR, model_store_name
from featurekit.neural.base import AudioTagger
from featurekit.neural.info import REGISTERED, ModelInfo

__all__ = ["HEAR_API", "HearTagger", "open_door"]

#: The functions a HEAR 2021 module must have.
HEAR_API = ("load_model", "get_scene_embeddings", "get_timestamp_embeddings")
#: Attributes its model must have.
HEAR_MODEL_ATTRIBUTES = ("sample_rate", "scene_embedding_size", "timestamp_embedding_size")
#: Length of the silence whose timestamp embeddings reveal their spacing, seconds: long
#: enough for two rows of any HEAR model (the HEAR tasks ask for at most 50 ms).
_PROBE_S = 2.0


def open_door(name: str, *, offline: bool) -> ModelInfo:
    """Registry entry of a door's model (module docstring).

    Parameters
    ----------
    name : str
        ``hear:MODULE[:WEIGHTS]`` or ``hf:ID_OR_DIR[@layer=K]``.
    offline : bool, keyword-only
        Never download (Hugging Face models are then read from the local cache only).

    Raises
    ------
    ConfigError
        A module that cannot be imported, lacks a function or attribute of the HEAR API
        (named, in one line), or whose ``load_model`` fails; see
        :func:`featurekit.neural.hf.open_hf` for ``hf:``.
    """
    if name.startswith(HF_DOOR):
        from featurekit.neural.hf import open_hf

        return open_hf(name, offline=offline)
    if not name.startswith(HEAR_DOOR):
        raise ConfigError(f"{name!r} opens no door: use hear:MODULE[:WEIGHTS] or "
                          "hf:ID_OR_DIR[@layer=K]")
    module_name, _, weights = name[len(HEAR_DOOR):].partition(":")
    module = _hear_module(module_name)
    try:
        hear_model = module.load_model(weights)
    except Exception as exc:  # a module's own failure, told in one line like ours
        raise ConfigError(f"HEAR module {module_name!r}: load_model({weights!r}) failed: "
                          f"{type(exc).__name__}: {exc}") from exc
    missing = [key for key in HEAR_MODEL_ATTRIBUTES if not hasattr(hear_model, key)]
    if missing:
        raise ConfigError(f"the model of HEAR module {module_name!r} lacks the attribute "
                          f"{missing[0]!r} of the HEAR 2021 API")
    path = Path(weights).expanduser() if weights else None
    sha256 = None
    if path is not None and path.is_file():
        from featurekit.io.download import file_checksum

        sha256 = file_checksum(path, "sha256")
    return ModelInfo(
        name=model_store_name(name), family=REGISTERED, file_name="", url="", sha256=None,
        md5=None, sample_rate=int(hear_model.sample_rate),
        embedding_dim=int(hear_model.scene_embedding_size),
        license="unknown", citation="", build=lambda: HearTagger(module, hear_model),
        source={"door": "hear", "module": module_name, "weights": weights or None,
                "weights_sha256": sha256})


def _hear_module(module_name: str) -> ModuleType:
    if not module_name:
        raise ConfigError("hear: needs a module name: hear:MODULE[:WEIGHTS]")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"HEAR module {module_name!r} cannot be imported: {exc}") from None
    for function in HEAR_API:
        if not callable(getattr(module, function, None)):
            raise ConfigError(f"module {module_name!r} lacks {function}() of the HEAR 2021 "
                              f"API ({', '.join(HEAR_API)})")
    return module


class HearTagger(AudioTagger):
    """A HEAR 2021 module's model as a featurekit model.

    ``embedding`` is the module's scene embedding of each waveform; ``frames`` its timestamp
    embeddings, computed only while :attr:`with_frames` is true (they often cost passes of
    their own); no tags (``n_classes`` 0).

    Parameters
    ----------
    module : module
        The HEAR module.
    hear_model : object
        What its ``load_model`` returned.

    Attributes
    ----------
    frame_period_s : float
        Spacing of the timestamp embeddings, seconds, read from the module's timestamps on
        two seconds of silence.
    first_frame_s : float
        Time of the first timestamp embedding from the start of the input, seconds.
    with_frames : bool
        Whether :meth:`forward` computes timestamp embeddings (set by
        :class:`~featurekit.computers.neural.NeuralBranch` from its ``frames`` option).
    """

    n_classes = 0

    def __init__(self, module: ModuleType, hear_model: Any) -> None:
        super().__init__()
        self.module, self.hear_model = module, hear_model
        self.sample_rate = int(hear_model.sample_rate)
        self.embedding_dim = int(hear_model.scene_embedding_size)
        self.timestamp_dim = int(hear_model.timestamp_embedding_size)
        self.with_frames = True
        # A model with no parameters of its own still needs one for featurekit to know the
        # device to put the waveforms on.
        self.anchor = torch.nn.Parameter(torch.zeros(0), requires_grad=False)
        # On the model's device, where HEAR modules expect their input.
        device = next(self.parameters()).device
        probe = torch.zeros((1, round(_PROBE_S * self.sample_rate)), device=device)
        times = self._timestamps(probe)[1][0]
        if times.shape[0] < 2:
            raise ConfigError(f"HEAR module {module.__name__!r} gave fewer than two timestamp "
                              f"embeddings for {_PROBE_S:g} s of audio")
        self.first_frame_s = float(times[0]) / 1000
        self.frame_period_s = float(times[1] - times[0]) / 1000

    def _timestamps(self, waveforms: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            embeddings, times = self.module.get_timestamp_embeddings(waveforms, self.hear_model)
        return (embeddings.float().cpu().numpy(),
                times.detach().cpu().numpy().astype(np.float64))

    def forward(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        """Scene embeddings (and timestamp embeddings as frames) of (batch, samples)."""
        if waveforms.ndim != 2:
            raise ValueError(f"expected waveforms of shape (batch, samples), "
                             f"got {tuple(waveforms.shape)}")
        embedding = self.module.get_scene_embeddings(waveforms, self.hear_model).float()
        batch = waveforms.shape[0]
        if not self.with_frames:
            frames = torch.zeros((batch, 0, self.timestamp_dim))
        else:
            rows, times = self._timestamps(waveforms)
            # featurekit stamps row i at first_frame_s + i * frame_period_s: a module whose
            # timestamps are not that grid would have its frames stored at the wrong times.
            expected = 1000 * (self.first_frame_s
                               + self.frame_period_s * np.arange(times.shape[1]))
            if not np.allclose(times, expected, rtol=0, atol=self.frame_period_s):  # 1e-3 hop
                raise ValueError(f"HEAR module {self.module.__name__!r}: timestamps are not "
                                 f"{1000 * self.frame_period_s:g} ms apart from "
                                 f"{1000 * self.first_frame_s:g} ms")
            frames = torch.from_numpy(rows)
        empty = torch.zeros((batch, 0))
        return {"embedding": embedding, "logits": empty, "tags": empty, "frames": frames}
