"""Dataset -> feature store -> features table: the one path that the benchmark, the feature-set
comparison and the trained model all take.

* :func:`fill_store` computes whatever a store lacks of a dataset's branches (handcrafted
  descriptors, each pretrained model's embeddings, the end-to-end stream's log-mel frames,
  reference feature sets), resumably, with per-clip error records;
* :func:`read_features` reads those branches back as one table keyed by clip, with each clip's
  source recording, refusing branches computed with untrained weights.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from featurekit.computers.base import BranchComputer
from featurekit.computers.corrupted import CorruptedComputer, Corruption
from featurekit.computers.factory import make_computer
from featurekit.computers.imported import imported_models
from featurekit.computers.runner import run_branch
from featurekit.config import ExtractionConfig
from featurekit.errors import ConfigError, StoreError
from featurekit.names import (
    E2E_BRANCH,
    HANDCRAFTED_BRANCH,
    LOGMEL_BRANCH,
    is_door,
    neural_branch,
)

__all__ = ["FillEstimate", "check_corruptible", "check_models", "check_n_jobs",
           "check_provenance", "corrupted_dataset", "estimate_fill", "fill_store",
           "model_branches", "model_names", "open_doors", "read_features", "stored_extraction"]


def model_names(model: str | Sequence[str] | None) -> list[str]:
    """Model names of a ``model`` argument (``e2e`` for the end-to-end stream)."""
    return [model] if isinstance(model, str) else list(model or [])


def check_models(model: str | Sequence[str] | None, *,
                 imported: Sequence[str] | None = None) -> list[str]:
    """Model names of a ``model`` argument, each checked before any work starts.

    Parameters
    ----------
    model : str or sequence of str, optional
    imported : sequence of str, keyword-only, optional
        Names whose embeddings a store holds as imported branches
        (:func:`featurekit.computers.imported.imported_models`): accepted, never computed.
        None: the caller computes every model (``train``), so importing is not suggested.

    Returns
    -------
    list of str
        As :func:`model_names`.

    Raises
    ------
    ConfigError
        A name that is neither a registered pretrained model
        (:func:`featurekit.neural.registry.available_models`), a door that opens
        (``hear:...``, ``hf:...``, :mod:`featurekit.neural.doors`), ``e2e`` nor ``imported``
        (naming it, every choice and how to import embeddings), or a name given twice.
    """
    from featurekit.neural.registry import available_models

    names = model_names(model)
    known = [*available_models(), E2E_BRANCH, *(imported or ())]
    open_doors(names)  # a module without the HEAR API fails here, before any work
    unknown = [name for name in names if name not in known and not is_door(name)]
    if unknown:
        hint = ("" if imported is None else
                f"; embeddings computed elsewhere become a model once imported: featurekit "
                f"import-embeddings --name {unknown[0]} --from FILE --dataset ... "
                "--data-dir ... --store ...")
        raise ConfigError(f"unknown model {unknown[0]!r}; choose from "
                          f"{', '.join(known)}{hint}")
    if len(set(names)) != len(names):
        raise ConfigError(f"models repeat a name: {', '.join(names)}")
    return names


def open_doors(model: str | Sequence[str] | None) -> None:
    """Open the doors among ``model``'s names (``hear:...``, ``hf:...``) in this process, so
    that their store branches' computers, which are told the branch only, find the model.

    Raises
    ------
    ConfigError
        A door that does not open (:func:`featurekit.neural.doors.open_door`).
    """
    from featurekit.neural.registry import model_info

    for name in model_names(model):
        if is_door(name):
            model_info(name)


def model_branches(model: str | Sequence[str] | None) -> list[str]:
    """Store branches of a ``model`` argument: ``neural.<model>`` for each pretrained model,
    ``logmel`` (the end-to-end stream's input) for ``e2e``."""
    return [LOGMEL_BRANCH if name == E2E_BRANCH else neural_branch(name)
            for name in model_names(model)]


def check_provenance(provenance: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse branches computed with untrained (random) weights.

    Raises
    ------
    ConfigError
        A branch's provenance is marked ``untrained``.
    """
    for branch, facts in provenance.items():
        if facts.get("untrained"):
            raise ConfigError(f"branch {branch!r} was computed with untrained (random) weights; "
                              "the benchmark only runs on pretrained embeddings (re-embed "
                              "with real weights)")


def stored_extraction(store: Any, dataset: str) -> ExtractionConfig:
    """The handcrafted configuration already stored for ``dataset``, else the defaults."""
    if HANDCRAFTED_BRANCH in store.branches(dataset):
        return ExtractionConfig.from_dict(store.provenance(dataset, HANDCRAFTED_BRANCH)["config"])
    return ExtractionConfig()


def _computers(data: Any, feature_store: Any, *, model: str | Sequence[str] | None,
               branches: Sequence[str], weights: str | None,
               extraction: ExtractionConfig | None, n_jobs: int,
               corruption: Corruption | None = None, seed: int = 0) -> list[BranchComputer]:
    """The computers of ``branches`` then of the models' branches (see :func:`fill_store`),
    leaving out imported branches: nothing computes those. With ``corruption``, ``data`` is
    the clean dataset, and each computer runs on corrupted copies of its clips."""
    from joblib import effective_n_jobs

    if extraction is None:
        extraction = stored_extraction(feature_store, data.name)
    imported = model_branches(imported_models(feature_store, data.name))
    open_doors(model)
    computers = [make_computer(branch, extraction=extraction, weights=weights,
                               n_threads=effective_n_jobs(n_jobs))
                 for branch in [*branches, *model_branches(model)] if branch not in imported]
    if corruption is None:
        return computers
    check_corruptible(feature_store, data.name, model)
    return [CorruptedComputer(computer, corruption, seed) for computer in computers]


def check_corruptible(feature_store: Any, dataset: str,
                      model: str | Sequence[str] | None) -> None:
    """Refuse models of ``dataset`` whose branches hold imported embeddings: nothing here can
    compute them on corrupted audio.

    Raises
    ------
    ConfigError
    """
    if imported := [name for name in model_names(model)
                    if name in imported_models(feature_store, dataset)]:
        raise ConfigError(f"model(s) {', '.join(imported)} hold imported embeddings, which "
                          "featurekit cannot compute on corrupted audio: leave them out of a "
                          "robustness run")


def corrupted_dataset(data: Any, corruption: Corruption, clip_ids: Sequence[str]) -> Any:
    """The corrupted copy of ``data``'s clips ``clip_ids`` as a dataset of its own, named
    ``<dataset>@<corruption>`` (so that a store keeps its branches apart from the clean ones),
    with the clean clips' files, folds and labels (:class:`~featurekit.computers.corrupted.
    CorruptedComputer` corrupts them as it reads them)."""
    from dataclasses import replace

    clips = data.clips[data.clips["clip_id"].isin(list(clip_ids))].reset_index(drop=True)
    return replace(data, name=f"{data.name}@{corruption.name}", clips=clips)


def _filled_dataset(data: Any, corruption: Corruption | None,
                    clip_ids: Sequence[str] | None) -> Any:
    """The dataset a fill computes: ``data`` itself, or its corrupted copy of ``clip_ids``."""
    if corruption is None:
        return data
    return corrupted_dataset(data, corruption,
                             data.clips["clip_id"] if clip_ids is None else clip_ids)


def fill_store(data: Any, feature_store: Any, *, model: str | Sequence[str] | None,
               branches: Sequence[str] = (HANDCRAFTED_BRANCH,), weights: str | None = None,
               extraction: ExtractionConfig | None = None, frames: bool = False,
               n_jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
               progress: bool | None = None, corruption: Corruption | None = None,
               clip_ids: Sequence[str] | None = None, seed: int = 0) -> list[BranchComputer]:
    """Compute whatever ``feature_store`` lacks of a dataset's branches.

    Parameters
    ----------
    data : Dataset
        From :func:`featurekit.load_dataset`.
    feature_store : FeatureStore
    model : str or sequence of str, optional
        Pretrained model(s) of the neural branch(es); ``e2e`` adds the ``logmel`` branch.
    branches : sequence of str
        Store branches computed besides the models' (default ``handcrafted``; reference
        feature sets' branches for a comparison of sets).
    weights : str, optional
        Checkpoint file of the model (default: resolved as by ``featurekit embed``).
    extraction : ExtractionConfig, optional
        Handcrafted configuration; default: the one already stored, else the defaults.
    frames : bool
        Frame-level descriptors are needed (kept computing for a branch that holds them).
    n_jobs, backend, scheduler, progress :
        Parallelism of extraction and embedding
        (:func:`featurekit.computers.runner.run_branch`).
    corruption : Corruption, optional
        Compute the branches on corrupted copies of the clips instead, into the store's
        dataset ``<data.name>@<corruption>`` (:func:`corrupted_dataset`), with the clean
        dataset's handcrafted configuration; imported embeddings are refused (nothing here
        computes them).
    clip_ids : sequence of str, optional
        With ``corruption``: the clips to corrupt (default every clip).
    seed : int
        With ``corruption``: the run's seed (:func:`featurekit.computers.corrupted.clip_rng`).

    Returns
    -------
    list of BranchComputer
        The computers, in the order of ``branches`` then the models'.

    Raises
    ------
    StoreError
        Frames are needed from a branch stored without them, or computing a branch failed.
    """
    # Every computer is built before any work: an unknown branch or a missing engine stops
    # the run before an hour of extraction rather than after it.
    for name in imported_models(feature_store, data.name):
        branch = neural_branch(name)
        if (frames and name in model_names(model)
                and not feature_store.metadata(data.name, branch).get("frames")):
            raise StoreError(f"the sequence head needs frames, but {data.name}/{branch} in "
                             f"store {feature_store.path} was imported without them; "
                             f"import them with `featurekit import-embeddings --name {name} "
                             "--frames FILE --overwrite ...`")
    computers = _computers(data, feature_store, model=model, branches=branches,
                           weights=weights, extraction=extraction, n_jobs=n_jobs,
                           corruption=corruption, seed=seed)
    data = _filled_dataset(data, corruption, clip_ids)
    for computer in computers:
        stored = computer.branch in feature_store.branches(data.name)
        # The e2e stream's branch is nothing but frames.
        has_frames = computer.branch == LOGMEL_BRANCH or (
            stored and bool(feature_store.metadata(data.name, computer.branch).get("frames")))
        if frames and stored and not has_frames:
            command = "extract" if computer.branch == HANDCRAFTED_BRANCH else "embed"
            raise StoreError(f"the sequence head needs frame-level descriptors, but "
                             f"{data.name}/{computer.branch} in store {feature_store.path} was "
                             f"computed without them; use another store, or recompute the "
                             f"branch with `featurekit {command} --frames --overwrite`")
        summary = run_branch(computer, data, feature_store, n_jobs=n_jobs,
                             frames=frames or has_frames, backend=backend,
                             scheduler=scheduler, progress=progress is not False)
        print(summary, file=sys.stderr)
        if summary.exit_code:
            raise StoreError(f"computing {data.name}/{computer.branch} failed: {summary}")
    return computers


@dataclass(frozen=True)
class FillEstimate:
    """What filling one branch of a store would cost.

    Attributes
    ----------
    branch : str
        Store branch.
    missing : int
        The dataset's clips not yet stored in it.
    seconds_per_clip : float or None
        Measured on a few of those clips in this process (None when none is missing).
    workers : int
        Processes the fill spreads clips over (1 for a computer that runs in-process).
    """

    branch: str
    missing: int
    seconds_per_clip: float | None
    workers: int

    @property
    def estimated_s(self) -> float:
        """Estimated seconds: missing clips x seconds per clip / workers."""
        return self.missing * (self.seconds_per_clip or 0.0) / self.workers


#: Clips computed to time a branch's fill, after one that warms it up (loads a model).
FILL_SAMPLE_CLIPS = 3


def estimate_fill(data: Any, feature_store: Any, *, model: str | Sequence[str] | None,
                  branches: Sequence[str] = (HANDCRAFTED_BRANCH,), weights: str | None = None,
                  extraction: ExtractionConfig | None = None, frames: bool = False,
                  n_jobs: int = 1, corruption: Corruption | None = None,
                  clip_ids: Sequence[str] | None = None,
                  seed: int = 0) -> list[FillEstimate]:
    """Estimate what :func:`fill_store` would compute, without writing anything.

    For each branch with clips missing from the store, its computer computes one clip (which
    loads what it needs) and then :data:`FILL_SAMPLE_CLIPS` more, timed, in this process; the
    fill is those seconds per clip times the missing clips, spread over the workers.

    Parameters
    ----------
    data, feature_store, model, branches, weights, extraction, frames, n_jobs :
        As :func:`fill_store`.
    corruption, clip_ids, seed :
        As :func:`fill_store`: the estimate of computing the branches on corrupted copies
        (the sample clips are corrupted and computed, as the fill would).

    Returns
    -------
    list of FillEstimate
        One per branch, in :func:`fill_store`'s order.
    """
    from joblib import effective_n_jobs

    estimates = []
    computers = _computers(data, feature_store, model=model, branches=branches,
                           weights=weights, extraction=extraction, n_jobs=n_jobs,
                           corruption=corruption, seed=seed)
    data = _filled_dataset(data, corruption, clip_ids)
    for computer in computers:
        stored = (feature_store.stored_clip_ids(data.name, computer.branch)
                  if computer.branch in feature_store.branches(data.name) else set())
        paths = [str(path) for clip, path in zip(data.clips["clip_id"], data.clips["path"],
                                                 strict=True) if clip not in stored]
        workers = effective_n_jobs(n_jobs) if computer.process_parallel else 1
        per_clip = None
        if paths:
            computer.compute_batch(paths[:1], frames=frames)
            sample = paths[1:1 + FILL_SAMPLE_CLIPS] or paths[:1]
            started = time.perf_counter()
            computer.compute_batch(sample, frames=frames)
            per_clip = (time.perf_counter() - started) / len(sample)
        estimates.append(FillEstimate(computer.branch, len(paths), per_clip, workers))
    return estimates


def read_features(store: Any, dataset: str, *, model: str | Sequence[str] | None = None,
                  clips: pd.DataFrame | None = None,
                  recordings: Mapping[str, str] | pd.Series | None = None,
                  branches: Sequence[str] = (HANDCRAFTED_BRANCH,),
                  ) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The features table of a dataset's branches in a store.

    Parameters
    ----------
    store : FeatureStore
    dataset : str
    model : str or sequence of str, optional
        Neural model(s) whose branch ``neural.<model>`` joins ``branches``; ``e2e`` (the
        end-to-end stream) reads the ``logmel`` branch, so that only clips with log-mel frames
        are kept.
    clips : pandas.DataFrame, optional
        The dataset's clips table as loaded now (``Dataset.clips``: ``clip_id, fold, label,
        label_id, recording``). It is authoritative: each clip's fold, label and recording
        come from it, not from the store, which keeps what they were when the clip was first
        computed (a user who fixes a fold or a label in a CSV and reruns on the same store
        must not be evaluated on the old split); stored clips no longer in the dataset are
        left out. Both are warned about.
    recordings : mapping of clip_id to recording id, optional
        Without ``clips``: inserted as the ``recording`` column (a clip without one is its own
        recording).
    branches : sequence of str
        Store branches read beside the neural ones (default ``handcrafted``; the reference
        feature sets' branches for a comparison of sets).

    Returns
    -------
    table : pandas.DataFrame
        ``clip_id, fold, label, label_id`` (``recording``) then feature columns.
    provenance : dict
        Store branch -> its provenance.

    Raises
    ------
    StoreError
        A branch is missing from the store.
    ConfigError
        A neural branch was computed with untrained weights.
    """
    wanted = [*branches, *model_branches(model)]
    present = store.branches(dataset)
    missing = [branch for branch in wanted if branch not in present]
    if missing:
        raise StoreError(f"store {store.path} lacks branch(es) {', '.join(missing)} of "
                         f"dataset {dataset!r}; run featurekit extract / embed first")
    provenance = {branch: store.provenance(dataset, branch) for branch in wanted}
    check_provenance(provenance)
    data = store.read(dataset, branches=wanted)
    if clips is not None:
        return _with_dataset_keys(data, clips, f"{dataset} in store {store.path}"), provenance
    if recordings is not None:
        mapped = data["clip_id"].map(pd.Series(recordings) if isinstance(recordings, Mapping)
                                     else recordings)
        data.insert(4, "recording", mapped.fillna(data["clip_id"]).astype(str))
    return data, provenance


def _with_dataset_keys(data: pd.DataFrame, clips: pd.DataFrame, where: str) -> pd.DataFrame:
    """A store read whose fold, label, label_id and recording are the dataset's, keeping only
    the dataset's clips (see :func:`read_features`)."""
    from featurekit.datasets.base import DatasetWarning

    keys = clips.set_index("clip_id")
    known = data["clip_id"].isin(keys.index)
    if not known.all():
        gone = data.loc[~known, "clip_id"]
        warnings.warn(f"{where}: {gone.size} stored clip(s) are no longer in the dataset "
                      f"(e.g. {gone.iloc[0]!r}) and are left out", DatasetWarning, stacklevel=3)
        data = data[known].reset_index(drop=True)
    changed = pd.Series(False, index=data.index)
    for column in ("fold", "label", "label_id"):
        current = data["clip_id"].map(keys[column])
        changed |= current.astype(str) != data[column].astype(str)
        data[column] = current.astype(data[column].dtype)
    if changed.any():
        warnings.warn(f"{where}: {int(changed.sum())} clip(s) have another fold or label in "
                      "the dataset than when they were stored (e.g. "
                      f"{data.loc[changed, 'clip_id'].iloc[0]!r}); the dataset's are used",
                      DatasetWarning, stacklevel=3)
    data.insert(4, "recording", data["clip_id"].map(keys["recording"]).astype(str))
    return data


def check_n_jobs(n_jobs: int) -> None:
    """Refuse a worker count that is neither positive nor -1 (all cores)."""
    if n_jobs == 0 or n_jobs < -1:
        raise ConfigError("n_jobs must be a positive count or -1")
