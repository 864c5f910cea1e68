"""The ``neural.<model>`` store branch: frozen embeddings (and optional AudioSet tags)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from featurekit._util.versions import package_versions
from featurekit.errors import ConfigError, WeightsError
from featurekit.names import embedding_names, indexed_names
from featurekit.neural.base import AudioTagger
from featurekit.neural.embedding import (
    MIN_DURATION_S,
    WINDOW_S,
    ClipEmbedding,
    embed_waveforms,
    load_for,
    torch_threads,
)
from featurekit.neural.registry import (
    UNTRAINED,
    default_batch_size,
    default_device,
    load_pretrained,
    model_info,
    resolve_weights,
    weights_checksums,
)
from featurekit.store.records import ClipResult

__all__ = ["NeuralBranch"]


class NeuralBranch:
    """Computes branch ``neural.<model>`` of a feature store with a frozen pretrained model.

    Parameters
    ----------
    model : str
        Registered model name (``mn04_as``, ``cnn14`` …) or a door (``hear:MODULE[:WEIGHTS]``,
        ``hf:ID_OR_DIR[@layer=K]``, :mod:`featurekit.neural.doors`), stored under its store
        name (:func:`featurekit.names.model_store_name`).
    weights : path-like or ``"untrained"``, optional
        Checkpoint file; default: resolved by :func:`featurekit.neural.resolve_weights`.
        None for a model added by :func:`featurekit.neural.register_model` (its factory
        loads its own; its name and ``version`` are in the configuration instead).
        ``"untrained"`` (tests and timing only) is recorded in the provenance.
    n_threads : int, keyword-only
        torch intra-op threads while computing.
    n_workers : int, keyword-only, optional
        Threads that decode and resample the files, a few batches ahead of the network (see
        :func:`~featurekit.neural.embedding.load_for`); joblib convention: 1 decodes in the
        calling thread, -1 uses every core. Default ``n_threads``.
    batch_size : int, keyword-only, optional
        Windows per forward pass; default
        :func:`~featurekit.neural.registry.default_batch_size` of the device (8 on the CPU,
        64 on CUDA).
    tags : bool, keyword-only
        Also store the 527 AudioSet tag probabilities (a door's model has none: refused).
    device : str, keyword-only, optional
        Default CUDA when available, else CPU.
    allow_tf32 : bool, keyword-only
        Let CUDA use TF32 tensor cores (faster; embeddings differ from full float32 by up to
        about 1e-2). Recorded in the configuration, so a store refuses to mix the two.
    offline : bool, keyword-only, optional
        Never download weights.

    Notes
    -----
    Files are loaded at the model rate (soxr HQ resampling) by
    :func:`~featurekit.neural.embedding.load_for` and follow the clip policy of
    :mod:`featurekit.neural.embedding`. Decoding and network run in the calling process only
    (``process_parallel`` is false), the one process that may initialise CUDA. The weights
    are resolved (and their checksum taken) when the branch is created, so missing weights
    fail before a run starts; the model itself is loaded on first use and not pickled.
    """

    process_parallel = False

    def __init__(self, model: str = "mn04_as",
                 weights: str | os.PathLike[str] | None = None, *, n_threads: int = 1,
                 n_workers: int | None = None, batch_size: int | None = None,
                 tags: bool = False, device: str | None = None, allow_tf32: bool = False,
                 offline: bool | None = None) -> None:
        info = model_info(model)
        if tags and info.source is not None:
            raise ConfigError(f"model {model!r} has no tags: a door's model (hear:, hf:) gives "
                              "embeddings and frames only")
        if n_threads < 1 or (batch_size is not None and batch_size < 1):
            raise ConfigError("n_threads and batch_size must be >= 1")
        if n_workers is not None and (n_workers == 0 or n_workers < -1):
            raise ConfigError(f"n_workers must be a positive count or -1, got {n_workers}")
        # A door (hear:..., hf:...) is known by its store name from here on.
        model = info.name
        self.model, self.n_threads, self.batch_size, self.tags = model, n_threads, batch_size, tags
        self.n_workers = n_threads if n_workers is None else n_workers
        self.device, self.allow_tf32 = device, allow_tf32
        self.branch = f"neural.{model}"
        # A door names its weights inside the model name (hear:MODULE:untrained): random
        # weights there must be marked too, or a benchmark would accept them.
        self.untrained = ((isinstance(weights, str) and weights == UNTRAINED)
                          or (info.source or {}).get("weights") == UNTRAINED)
        if info.registered and weights is not None:  # refused here, before any clip
            raise WeightsError(f"model {model!r} was registered with a factory that loads its "
                               f"own weights; weights={str(weights)!r} does not apply")
        if self.untrained or info.registered:
            self.weights_path, self.weights_sha256 = None, None
        else:
            path = resolve_weights(model, weights, offline=offline)
            self.weights_path, self.weights_sha256 = str(path), weights_checksums(path)[0]
        self._info = info
        self._tagger: AudioTagger | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_tagger": None}

    @property
    def tagger(self) -> AudioTagger:
        """The loaded model (loaded on first access)."""
        if self._tagger is None:
            weights = UNTRAINED if self.untrained and not self._info.registered \
                else self.weights_path
            self._tagger = load_pretrained(self.model, weights, device=self.device,
                                           offline=True)
        return self._tagger

    @property
    def clips_per_task(self) -> int | None:
        """Clips the runner hands over at a time: on a GPU eight batches, since every
        :meth:`compute_batch` call ends with the GPU finishing while the decoding threads wait
        and starts with the reverse; on the CPU the runner's default (``None``)."""
        device = self.device or default_device()
        if not str(device).startswith("cuda"):
            return None
        return 8 * (self.batch_size or default_batch_size(device))

    @property
    def feature_names(self) -> list[str]:
        n_tags = self._tagger.n_classes if self._tagger is not None else 527
        return embedding_names(self.model, self._info.embedding_dim,
                               tags=n_tags if self.tags else 0)

    @property
    def _window_s(self) -> float:
        """Length of the windows long clips are cut into, seconds: the model's own, known
        before it is built (``ModelInfo.window_s``), else featurekit's."""
        return WINDOW_S if self._info.window_s is None else self._info.window_s

    def _config(self) -> dict[str, Any]:
        config = {"model": self.model,
                  "weights_file": (None if self.weights_path is None
                                   else os.path.basename(self.weights_path)),
                  "weights_sha256": self.weights_sha256, "untrained": self.untrained,
                  "sample_rate": self._info.sample_rate,
                  "embedding_dim": self._info.embedding_dim, "tags": self.tags,
                  "min_duration_s": MIN_DURATION_S, "window_s": self._window_s}
        # Only when asked for, so that full-float32 stores keep the hash they had before the
        # option existed.
        if self.allow_tf32:
            config["allow_tf32"] = True
        if self._info.source is not None:  # a door's model: its source (module, weights ...)
            config["source"] = dict(self._info.source)
        elif self._info.registered:  # what builds it stands in for the weights file
            build = self._info.build
            config["factory"] = f"{build.__module__}.{getattr(build, '__qualname__', build)}"
            config["version"] = self._info.version
        return config

    def config_hash(self) -> str:
        text = json.dumps(self._config(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def provenance(self) -> Mapping[str, Any]:
        # The device is a fact of the run, not of the configuration: CPU and CUDA agree to
        # float32 precision (TF32, which does not, is in the configuration).
        return {"config": self._config(), "config_hash": self.config_hash(),
                "versions": package_versions("featurekit", "numpy", "torch", "soxr"),
                "untrained": self.untrained, "license": self._info.license,
                "citation": self._info.citation, "url": self._info.url,
                "device": self.device or default_device(), "allow_tf32": self.allow_tf32}

    def compute_batch(self, paths: Sequence[str | os.PathLike[str] | np.ndarray], *,
                      frames: bool = False,
                      sr: int | None = None) -> list[ClipResult | BaseException]:
        """Embeddings of each file (or array at ``sr`` Hz), or the exception it raised, in
        order."""
        notes: list[tuple[str, ...]] = []
        if hasattr(self.tagger, "with_frames"):  # a model whose frames cost extra passes
            self.tagger.with_frames = frames
        clips = load_for(self.tagger, paths, n_jobs=self.n_workers, batch_size=self.batch_size,
                         sr=sr)

        def waveforms() -> Iterator[np.ndarray | BaseException]:
            for loaded in clips:
                if isinstance(loaded, BaseException):  # recorded per clip by the runner
                    notes.append(())
                    yield loaded
                else:
                    notes.append(loaded[1])
                    yield loaded[0]

        with torch_threads(self.n_threads):
            embedded = embed_waveforms(self.tagger, waveforms(), batch_size=self.batch_size,
                                       allow_tf32=self.allow_tf32)
        return [clip if isinstance(clip, BaseException)
                else self._clip_result(clip, clip_notes, frames=frames)
                for clip, clip_notes in zip(embedded, notes, strict=True)]

    def _clip_result(self, clip: ClipEmbedding, notes: tuple[str, ...], *,
                     frames: bool) -> ClipResult:
        values = np.concatenate([clip.embedding, clip.tags]) if self.tags else clip.embedding
        if clip.n_windows > 1:
            notes = (*notes, f"averaged over {clip.n_windows} windows of {self._window_s:g} s")
        table = None
        if frames:
            table = pd.DataFrame(clip.frames, columns=indexed_names(f"{self.branch}.neuralogram",
                                                               clip.frames.shape[1]))
            table.insert(0, "time_s", clip.frame_times_s)
        return ClipResult(values=values.astype(np.float32, copy=False), notes=notes,
                          frames=table)
