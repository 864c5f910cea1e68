"""Which pretrained models featurekit knows, where their weights come from, and how to load them.

Weights are looked up, in order:

1. an explicit ``weights`` path;
2. the registered file name anywhere under ``$FEATUREKIT_WEIGHTS_DIR`` (sub-folders included);
3. the user cache, ``$XDG_CACHE_HOME/featurekit/weights`` (``~/.cache/featurekit/weights``);
4. a download into that cache (streamed, resumable, checksum-verified, atomic), unless
   offline (``offline=True`` or ``FEATUREKIT_OFFLINE=1``).

``weights="untrained"`` builds the architecture with seeded random weights, for tests and
timing only; such a model is marked ``untrained`` in its provenance.

Other models join by name: :func:`register_model` in the running process, an installed
package's entry point in group :data:`ENTRY_POINT_GROUP` (``featurekit.models``), found when
:func:`available_models` or :func:`model_info` first asks, or a door: ``hear:MODULE[:WEIGHTS]``
(any HEAR 2021 module) or ``hf:ID_OR_DIR[@layer=K]`` (a Hugging Face audio model), see
:mod:`featurekit.neural.doors`. Their factories load their own weights: nothing is resolved
or downloaded for them by featurekit.
"""

from __future__ import annotations

import importlib
import os
import pickle
import re
from collections.abc import Callable, Mapping
from functools import cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.errors import ConfigError, WeightsError
from featurekit.names import E2E_BRANCH, is_door
from featurekit.neural.info import REGISTERED, ModelInfo

if TYPE_CHECKING:
    import torch

    from featurekit.neural.base import AudioTagger

# torch and the architectures are imported by the functions that build or load a model, so
# that the registry's table (model names for the CLI's parsers) imports without them.

__all__ = ["DEFAULT_BATCH_SIZES", "ENTRY_POINT_GROUP", "UNTRAINED", "ModelInfo",
           "available_models", "default_batch_size", "default_device", "load_pretrained",
           "model_info", "register_model", "resolve_weights", "weights_cache_dir",
           "weights_checksums"]

#: Value of ``weights`` that asks for randomly initialised (untrained) weights.
UNTRAINED = "untrained"
#: Windows per forward pass when none is asked for, by device type. On the CPU larger batches
#: are not faster (``benchmarks/bench_neural.py``); a GPU needs large ones to stay busy, and
#: 64 ten-second windows of the largest model (Cnn14) still fit in a few GB.
DEFAULT_BATCH_SIZES = {"cpu": 8, "cuda": 64}
#: Entry-point group of installed packages' models (see :func:`register_model`).
ENTRY_POINT_GROUP = "featurekit.models"
WEIGHTS_DIR_VAR = "FEATUREKIT_WEIGHTS_DIR"
OFFLINE_VAR = "FEATUREKIT_OFFLINE"
_UNTRAINED_SEED = 0
#: Registered names: a store branch and column prefix each, so no '.', '/' or leading '_'.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

_EFFICIENTAT_CITATION = ("F. Schmid, K. Koutini, G. Widmer. Efficient Large-Scale Audio Tagging "
                         "via Transformer-to-CNN Knowledge Distillation. ICASSP 2023.")
_PANNS_CITATION = ("Q. Kong, Y. Cao, T. Iqbal, Y. Wang, W. Wang, M. D. Plumbley. PANNs: "
                   "Large-Scale Pretrained Audio Neural Networks for Audio Pattern Recognition. "
                   "IEEE/ACM TASLP 28, 2020.")
_EFFICIENTAT_URL = "https://github.com/fschmid56/EfficientAT/releases/download/v0.0.1/{}"
_PANNS_URL = "https://zenodo.org/record/3987831/files/{}?download=1"


def _build(module: str, factory: str, *args: Any) -> AudioTagger:
    return getattr(importlib.import_module(module), factory)(*args)


def _efficientat(name: str, width: float, file_name: str, *, embedding_dim: int,
                 sha256: str | None = None, md5: str | None = None) -> ModelInfo:
    return ModelInfo(name=name, family="efficientat", file_name=file_name,
                     url=_EFFICIENTAT_URL.format(file_name), sha256=sha256, md5=md5,
                     sample_rate=32000, embedding_dim=embedding_dim,
                     license="MIT", citation=_EFFICIENTAT_CITATION,
                     build=partial(_build, "featurekit.neural.efficientat",
                                   "EfficientATMobileNet", width))


def _panns(name: str, factory: str, file_name: str, *, sample_rate: int,
           embedding_dim: int, md5: str, sha256: str | None = None) -> ModelInfo:
    return ModelInfo(name=name, family="panns", file_name=file_name,
                     url=_PANNS_URL.format(file_name.replace("=", "%3D")), sha256=sha256,
                     md5=md5, sample_rate=sample_rate, embedding_dim=embedding_dim,
                     license="CC-BY-4.0", citation=_PANNS_CITATION,
                     build=partial(_build, "featurekit.neural.panns", factory))


# Embedding sizes: EfficientAT's is EfficientATMobileNet.embedding_size(width) (the model
# tests check every entry against the built model). Checksums: mn04 measured on the file;
# PANNs md5 (and the Cnn14_16k sha256) as reported by several independent users of the
# Zenodo files (the publisher states none).
#: Doors opened in this process (:func:`model_info`), by the name they were opened with and
#: by their store name (the last opened of a store name wins).
_DOORS: dict[str, ModelInfo] = {}
_REGISTRY: dict[str, ModelInfo] = {info.name: info for info in (
    _efficientat("mn04_as", 0.4, "mn04_as_mAP_432.pt", embedding_dim=384,
                 sha256="899a8c6217063f6941793102a2780b3dd788ab11fce468d9cf5f0577c453321c",
                 md5="d288913b10fd32c968b3d756236060a6"),
    _efficientat("mn01_as", 0.1, "mn01_as_mAP_298.pt", embedding_dim=96),
    _efficientat("mn02_as", 0.2, "mn02_as_mAP_378.pt", embedding_dim=192),
    _efficientat("mn05_as", 0.5, "mn05_as_mAP_443.pt", embedding_dim=480),
    _efficientat("mn10_as", 1.0, "mn10_as_mAP_471.pt", embedding_dim=960),
    _efficientat("mn20_as", 2.0, "mn20_as_mAP_478.pt", embedding_dim=1920),
    _efficientat("mn30_as", 3.0, "mn30_as_mAP_482.pt", embedding_dim=2880),
    _efficientat("mn40_as", 4.0, "mn40_as_mAP_484.pt", embedding_dim=3840),
    _panns("cnn14", "cnn14", "Cnn14_mAP=0.431.pth", sample_rate=32000, embedding_dim=2048,
           md5="541141fa2ee191a88f24a3219fff024e"),
    _panns("cnn14_16k", "cnn14_16k", "Cnn14_16k_mAP=0.438.pth", sample_rate=16000,
           embedding_dim=2048, md5="362fc5ff18f1d6ad2f6d464b45893f2c",
           sha256="e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6"),
    _panns("cnn10", "cnn10", "Cnn10_mAP=0.380.pth", sample_rate=32000, embedding_dim=512,
           md5="bfb1f1f9968938fa8ef4012b8471f5f6"),
    _panns("cnn6", "cnn6", "Cnn6_mAP=0.343.pth", sample_rate=32000, embedding_dim=512,
           md5="e25e26b84585b14c7754c91e48efc9be"),
    _panns("mobilenetv1", "mobilenetv1", "MobileNetV1_mAP=0.389.pth", sample_rate=32000,
           embedding_dim=1024, md5="a419303e1c88aa1b9d2ac3811563d371"),
)}


def register_model(name: str, factory: Callable[[], AudioTagger], *, sample_rate: int,
                   embedding_dim: int, version: str = "", license: str = "unknown",
                   citation: str = "", url: str = "", replace: bool = False) -> ModelInfo:
    """Add a model that ``embed``, ``benchmark``, ``train`` and ``predict`` accept by name.

    Parameters
    ----------
    name : str
        Model name; its store branch is ``neural.<name>``. No ``.``, ``/`` or leading ``_``.
    factory : callable
        Called without arguments, returns the model with its weights loaded: a
        :class:`torch.nn.Module` with the :class:`~featurekit.neural.base.AudioTagger`
        interface (attributes ``sample_rate``, ``embedding_dim``, ``n_classes``,
        ``frame_period_s``; ``forward`` maps float32 waveforms (batch, samples) to
        ``embedding``, ``tags`` and ``frames``), most simply an ``AudioTagger`` subclass.
    sample_rate : int, keyword-only
        Input rate the model expects, Hz (clips are resampled to it).
    embedding_dim : int, keyword-only
        Size of its embedding; both are checked against the built model.
    version : str, keyword-only
        Changes the stored configuration's hash: bump it when the model's outputs change,
        so a store refuses to mix old and new embeddings.
    license, citation, url : str, keyword-only
        Recorded in the provenance of what it computes.
    replace : bool, keyword-only
        Replace a model of the same name (a built-in one included); without it a known name
        is refused.

    Returns
    -------
    ModelInfo

    Raises
    ------
    ConfigError
        A name that is taken (without ``replace``) or malformed, a factory that is not
        callable, a rate or dimension that is not a positive integer.

    Notes
    -----
    An installed package adds models without being imported: an entry point in group
    ``featurekit.models`` named as the model, whose object is a mapping of ``factory`` and
    this function's keyword arguments (README, "Your own model"). A name registered here or
    built in takes precedence over an entry point's.
    """
    if not isinstance(name, str) or not _MODEL_NAME.fullmatch(name) or name == E2E_BRANCH:
        raise ConfigError(f"model name {name!r}: use letters, digits, '_' or '-', starting "
                          f"with a letter or digit (and not {E2E_BRANCH!r}, the end-to-end "
                          "stream)")
    if name in _REGISTRY and not replace:
        raise ConfigError(f"model {name!r} is already registered; pass replace=True to "
                          "replace it")
    if not callable(factory):
        raise ConfigError(f"factory of model {name!r} is not callable: {factory!r}")
    for what, value in (("sample_rate", sample_rate), ("embedding_dim", embedding_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{what} of model {name!r} must be a positive integer, "
                              f"got {value!r}")
    info = ModelInfo(name=name, family=REGISTERED, file_name="", url=url, sha256=None,
                     md5=None, sample_rate=sample_rate, embedding_dim=embedding_dim,
                     license=license, citation=citation, build=factory, version=str(version))
    _REGISTRY[name] = info
    return info


def _entry_points() -> dict[str, Any]:
    """Entry points of :data:`ENTRY_POINT_GROUP` not shadowed by a registered name."""
    from importlib import metadata

    return {point.name: point for point in metadata.entry_points(group=ENTRY_POINT_GROUP)
            if point.name not in _REGISTRY}


def _from_entry_point(point: Any) -> ModelInfo:
    where = f"entry point {point.name!r} ({point.value}) of group {ENTRY_POINT_GROUP}"
    try:
        spec = point.load()
    except Exception as exc:  # a broken plugin must not hide behind a traceback
        raise ConfigError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not isinstance(spec, Mapping) or "factory" not in spec:
        raise ConfigError(f"{where} must be a mapping of register_model's arguments with "
                          f"'factory', got {type(spec).__name__}")
    try:
        return register_model(point.name, **spec)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def available_models() -> list[str]:
    """Names accepted by :func:`load_pretrained`: EfficientAT first, then PANNs, models
    added by :func:`register_model`, and installed entry points (not yet loaded)."""
    return [*_REGISTRY, *_entry_points()]


def model_info(name: str) -> ModelInfo:
    """Registry entry of ``name`` (an entry point is loaded and registered on first use, a
    door, ``hear:...`` or ``hf:...``, opened: :mod:`featurekit.neural.doors`); raises
    :class:`~featurekit.errors.ConfigError` if unknown."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if is_door(name) and name not in _DOORS:  # once per process: it may load a model
        info = importlib.import_module("featurekit.neural.doors").open_door(
            name, offline=_is_offline(None))
        # Also under its store name, which is all that a store branch's computer is told.
        _DOORS[name] = _DOORS[info.name] = info
    if name in _DOORS:
        return _DOORS[name]
    point = _entry_points().get(name)
    if point is None:
        raise ConfigError(f"unknown model {name!r}; available: "
                          f"{', '.join(available_models())}")
    return _from_entry_point(point)


def weights_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/featurekit/weights``, default ``~/.cache/featurekit/weights``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "featurekit" / "weights"


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return os.environ.get(OFFLINE_VAR, "").strip().lower() not in ("", "0", "false", "no")


def resolve_weights(name: str, weights: str | os.PathLike[str] | None = None, *,
                    offline: bool | None = None, progress: bool = True) -> Path:
    """Path of the checkpoint file of model ``name``, downloading it if needed and allowed.

    Parameters
    ----------
    name : str
        Registered model name.
    weights : path-like, optional
        Explicit checkpoint file; it must exist.
    offline : bool, keyword-only, optional
        Never download; default from ``FEATUREKIT_OFFLINE``.
    progress : bool, keyword-only
        Show a download progress bar.

    Raises
    ------
    WeightsError
        The explicit file does not exist, or the file is nowhere and downloading is off (the
        message names the file, the URL and ``FEATUREKIT_WEIGHTS_DIR``), or the model is a
        registered one (:func:`register_model`), which has no weights file.
    DownloadError
        The download failed or its checksum did not match.
    """
    info = model_info(name)
    if info.registered:
        raise WeightsError(f"model {name!r} was registered with a factory that loads its own "
                           "weights; there is no weights file to resolve or pass")
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"weights file for {name} not found: {path}")
        return path
    search_root = os.environ.get(WEIGHTS_DIR_VAR)
    if search_root:
        root = Path(search_root).expanduser()
        found = sorted(root.rglob(info.file_name)) if root.is_dir() else []
        if found:
            return _verified(info, found[0])
    cached = weights_cache_dir() / info.file_name
    if cached.is_file():
        return _verified(info, cached)
    if _is_offline(offline):
        raise WeightsError(
            f"weights of {name} ({info.file_name}) not found and downloads are off "
            f"({OFFLINE_VAR} or offline=True); download {info.url} and put it under "
            f"${WEIGHTS_DIR_VAR} (currently {search_root or 'unset'}) or {cached.parent}, "
            f"or pass its path explicitly")
    from featurekit.io.download import download_file

    cached.parent.mkdir(parents=True, exist_ok=True)
    return download_file(info.url, cached, sha256=info.sha256, md5=info.md5,
                         progress=progress)


def _verified(info: ModelInfo, path: Path) -> Path:
    """``path`` if it matches the registered checksum (or none is registered)."""
    if (info.sha256 or info.md5) and not _matches_registry(info, path):
        raise WeightsError(f"{path} does not match the published checksum of {info.file_name} "
                           "(corrupt or a different file): delete it, or pass it explicitly "
                           "with --weights / weights=PATH to use it anyway")
    return path


@cache
def _file_checksums(path: Path, size: int, mtime_ns: int) -> tuple[str, str]:
    from featurekit.io.download import file_checksum

    return file_checksum(path, "sha256"), file_checksum(path, "md5")


def weights_checksums(path: Path) -> tuple[str, str]:
    """(sha256, md5) of a weights file, memoised per path, size and modification time."""
    stat = path.stat()
    return _file_checksums(path.resolve(), stat.st_size, stat.st_mtime_ns)


def _matches_registry(info: ModelInfo, path: Path) -> bool:
    sha256, md5 = weights_checksums(path)
    known = [(info.sha256, sha256), (info.md5, md5)]
    return any(expected for expected, _ in known) and all(
        expected is None or expected == actual for expected, actual in known)


def _read_state_dict(info: ModelInfo, path: Path) -> Mapping[str, torch.Tensor]:
    import torch

    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # Corrupt files fail here, and so do the PANNs files: they also pickle the training
        # sampler (numpy objects), which the safe loader refuses. Full unpickling runs code
        # from the file, so it is allowed only for a published file, known by its checksum.
        if not _matches_registry(info, path):
            raise WeightsError(
                f"{path}: cannot be read as a plain tensor checkpoint (corrupt, or it holds "
                f"other Python objects) and its checksum matches no registered {info.name} "
                f"file, so it is not unpickled; if you trust it, re-save its state_dict "
                f"with torch.save") from exc
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise WeightsError(f"{path}: cannot read weights ({exc})") from exc
    if isinstance(obj, Mapping) and "model" in obj and isinstance(obj["model"], Mapping):
        obj = obj["model"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor)
                                               for v in obj.values()):
        raise WeightsError(f"{path}: not a state_dict (nor a dict with one under 'model')")
    return obj


def default_device() -> str:
    """``"cuda"`` when a GPU is available to torch, else ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def default_batch_size(device: str | torch.device) -> int:
    """Windows per forward pass on ``device`` when none is asked for
    (:data:`DEFAULT_BATCH_SIZES`; ``"cuda:1"`` is a ``"cuda"`` device, unknown types get the
    CPU's)."""
    kind = str(device).split(":")[0]
    return DEFAULT_BATCH_SIZES.get(kind, DEFAULT_BATCH_SIZES["cpu"])


def load_pretrained(name: str, weights: str | os.PathLike[str] | None = None,
                    device: str | torch.device | None = None, *,
                    offline: bool | None = None) -> AudioTagger:
    """Build model ``name`` with its published weights, in eval mode.

    Parameters
    ----------
    name : str
        One of :func:`available_models` (``mn04_as``, ``mn10_as`` …, ``cnn14``,
        ``cnn14_16k``, ``cnn10``, ``cnn6``, ``mobilenetv1``).
    weights : path-like or ``"untrained"``, optional
        Checkpoint file (the official file as published: a state_dict, or a dict with it
        under ``'model'``); ``None`` resolves it as described in the module docstring;
        ``"untrained"`` gives seeded random weights.
    device : str or torch.device, optional
        Default: :func:`default_device` (CUDA when available, else CPU).
    offline : bool, keyword-only, optional
        Never download (default from ``FEATUREKIT_OFFLINE``).

    Returns
    -------
    AudioTagger
        Eval-mode module with ``sample_rate``, ``embedding_dim`` and ``weights_info``
        (``name``, ``file``, ``sha256``, ``untrained``); calling it on float32 waveforms
        (batch, samples) returns ``embedding``, ``logits``, ``tags`` and ``frames``.

    Raises
    ------
    WeightsError
        Weights missing (offline), unreadable, or not matching the architecture (strict load);
        ``weights`` given for a registered model (its factory loads its own).
    ConfigError
        A registered model's factory returned something else than a torch module with the
        declared ``sample_rate`` and ``embedding_dim`` (and ``window_s``, a door's own window
        length, None for ``register_model``'s).
    """
    import torch

    info = model_info(name)
    if info.registered:
        model = _built(info, weights)
        return model.to(default_device() if device is None else device).eval().requires_grad_(False)
    untrained = isinstance(weights, str) and weights == UNTRAINED
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_UNTRAINED_SEED)
        model = info.build()
    if untrained:
        weights_info = {"name": name, "file": None, "sha256": None, "untrained": True}
    else:
        path = resolve_weights(name, weights, offline=offline)
        try:
            model.load_state_dict(_read_state_dict(info, path), strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: does not fit {name}: {exc}") from exc
        weights_info = {"name": name, "file": path.name, "sha256": weights_checksums(path)[0],
                        "untrained": False}
    model.weights_info = weights_info
    return model.to(default_device() if device is None else device).eval().requires_grad_(False)


def _built(info: ModelInfo, weights: str | os.PathLike[str] | None) -> AudioTagger:
    """The model a registered factory returns, checked against its registration."""
    import torch

    if weights is not None:
        raise WeightsError(f"model {info.name!r} was registered with a factory that loads its "
                           f"own weights; weights={str(weights)!r} does not apply")
    model = info.build()
    found = {key: getattr(model, key, None)
             for key in ("sample_rate", "embedding_dim", "window_s")}
    declared = {"sample_rate": info.sample_rate, "embedding_dim": info.embedding_dim,
                "window_s": info.window_s}
    if not isinstance(model, torch.nn.Module) or found != declared:
        raise ConfigError(f"factory of model {info.name!r} must return a torch.nn.Module "
                          f"with {declared}; got {type(model).__name__} with {found}")
    model.weights_info = {"name": info.name, "file": None, "sha256": None, "untrained": False,
                          "version": info.version}
    return model
