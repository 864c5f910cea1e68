"""``featurekit train``: one system fitted on a dataset's training folds, from a feature store.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from featurekit.benchmark.config import (
    AUTO,
    BenchmarkConfig,
)
from featurekit.config import ExtractionConfig
from featurekit.errors import ConfigError
from featurekit.model.classifier import AudioClassifier
from featurekit.model.systems import check_system


def train(dataset: str, data_dir: str | os.PathLike[str], store: str | os.PathLike[str], *,
          system: str = AUTO, model: str | Sequence[str] | None = "mn04_as",
          weights: str | os.PathLike[str] | None = None, folds: Sequence[int] | None = None,
          config: BenchmarkConfig | None = None, extraction: ExtractionConfig | None = None,
          n_jobs: int = 1, progress: bool | None = None) -> AudioClassifier:
    """Fit one system on a dataset's training folds, from a feature store.

    Computes whatever the store lacks of the training clips (as ``featurekit benchmark``
    does: :func:`featurekit.pipeline.fill_store`), reads the table the benchmark
    reads, and fits :class:`AudioClassifier` on the clips of ``folds``.

    Parameters
    ----------
    dataset : str
        Dataset name (``urbansound8k``, ``esc50``, ``esc10``, ``folder``, ``csv``).
    data_dir : path-like
        Where the dataset lies.
    store : path-like
        Feature store (created if missing).
    system, model, weights, config :
        As in :class:`AudioClassifier`; ``model`` may also name embeddings imported into the
        store (``featurekit import-embeddings``), which are read, never computed.
    folds : sequence of int, optional
        Training folds (default: every fold present).
    extraction : ExtractionConfig, optional
        Handcrafted configuration; default: the one already stored, else the defaults.
    n_jobs : int
        Worker processes for extraction and fits, torch threads for embedding.
    progress : bool, optional
        Progress bars on stderr.

    Returns
    -------
    AudioClassifier
        Fitted; :meth:`~AudioClassifier.save` it.

    Raises
    ------
    ConfigError
        Unknown system, heads, fusions, model (neither computable nor imported into the
        store) or folds, or a multi-label dataset; raised before the store is written.
    StoreError
        The store holds another configuration, or computing a branch failed.
    """
    from featurekit.computers.imported import imported_models
    from featurekit.datasets import load_dataset
    from featurekit.names import E2E_BRANCH
    from featurekit.pipeline import (
        check_models,
        check_n_jobs,
        fill_store,
        model_names,
        read_features,
        stored_extraction,
    )
    from featurekit.store.reader import FeatureStore

    # Every argument is checked before the store is filled (see featurekit.benchmark.run).
    check_n_jobs(n_jobs)
    if E2E_BRANCH in model_names(model):
        raise ConfigError("featurekit train fits systems of clip-level features; the e2e "
                          "stream (a CNN trained from scratch) is evaluated by featurekit "
                          "benchmark --model e2e only")
    data = load_dataset(dataset, data_dir)
    feature_store = FeatureStore(store)
    # Names of imported embeddings are known only to the store (read, not written, here).
    check_models(model, imported=imported_models(feature_store, data.name))
    if data.multilabel:  # its label column holds label sets; a classifier here has one class
        raise ConfigError(f"{data.name} is multi-label; featurekit train fits single-label "
                          "classifiers (featurekit benchmark evaluates multi-label systems)")
    present = data.folds
    wanted = present if folds is None else sorted(set(int(f) for f in folds))
    unknown = sorted(set(wanted) - set(present))
    if unknown or not wanted:
        raise ConfigError(f"training fold(s) {unknown or wanted} not in {data.name} (folds "
                          f"present: {present})")
    training = dataclasses.replace(data, clips=data.clips[data.clips["fold"].isin(wanted)]
                                   .reset_index(drop=True))
    check_system(system, extraction or stored_extraction(feature_store, data.name), model,
                 config or BenchmarkConfig())
    fill_store(training, feature_store, model=model, weights=weights, extraction=extraction,
               n_jobs=n_jobs, progress=progress)
    table, provenance = read_features(feature_store, data.name, model=model,
                                      clips=data.clips)
    table = table[table["clip_id"].isin(training.clips["clip_id"])].reset_index(drop=True)
    classifier = AudioClassifier(system, model=model, weights=weights,
                                 extraction=extraction, config=config, n_jobs=n_jobs)
    classifier._fit_table(table, provenance, progress=progress,
                          trained_on={"dataset": data.name, "data_dir": str(data.root),
                                      "folds": list(wanted), "clips": len(table)})
    return classifier
