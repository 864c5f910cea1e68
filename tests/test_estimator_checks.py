"""scikit-learn's estimator checks over every public featurekit estimator.

Estimators that read a 2-D numeric matrix run every check of
:func:`~sklearn.utils.estimator_checks.parametrize_with_checks`; the checks they are known to
fail are listed in :data:`EXPECTED_FAILURES` with the reason and run as strict xfails, so one
that starts passing is noticed.

scikit-learn yields no check at all for an estimator whose tags say it does not read a 2-D
array (audio clips, NaN-padded 3-D sequences, mappings of streams). For those, the checks
that read no data (or fail before reading it) run as they are; every other check scikit-learn
would run on a 2-D estimator of the same kind must be named in :data:`MATRIX_ONLY_CHECKS`,
with why it cannot apply (a check scikit-learn adds later fails the listing test until it is
placed); and :func:`test_native_input_conventions` checks what those checks are about (fit
leaves the parameters alone, fitted attributes end in ``_``, pickling, refitting, output
shapes, feature names) on the estimator's own kind of input.
"""

from __future__ import annotations

import functools
import importlib
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import soundfile as sf
from sklearn.base import clone
from sklearn.utils import get_tags
from sklearn.utils.estimator_checks import estimator_checks_generator, parametrize_with_checks
from sklearn.utils.validation import check_is_fitted

from featurekit.config import ExtractionConfig

#: What an estimator reads (the native inputs are built by :func:`native_input`).
MATRIX, SEQUENCES, STREAMS, AUDIO = ("2-D numeric matrix", "NaN-padded 3-D sequences",
                                     "a mapping of stream name to 3-D sequences",
                                     "audio clips (paths or 1-D arrays)")
#: Two branches that exist for any number of columns (positions are taken modulo it).
BRANCHES = {"a": [0], "b": [-1]}
TINY_SEQUENCE = {"width": 8, "embedding_dim": 8, "n_layers": 1, "max_epochs": 2,
                 "batch_size": 8, "patience": 1, "device": "cpu", "random_state": 0}
SPECTRAL = ExtractionConfig(families=("spectral",))

#: Every public estimator: (module, class, small and fast constructor arguments, input). The
#: import paths are here only, so that moving a module changes this table and nothing else.
ESTIMATORS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("featurekit", "FeatureExtractor", {"families": ("spectral",)}, AUDIO),
    ("featurekit.learn.heads.xgb", "XGBHead",
     {"n_estimators": 5, "early_stopping": False, "n_jobs": 1, "random_state": 0}, MATRIX),
    ("featurekit.learn.heads.mlp", "MLPHead", {"max_iter": 20, "random_state": 0}, MATRIX),
    ("featurekit.learn.heads.logreg", "LogRegHead", {}, MATRIX),
    ("featurekit.fusion", "EarlyFusionClassifier", {"branches": BRANCHES, "head": "logreg"},
     MATRIX),
    ("featurekit.fusion", "LateFusionClassifier",
     {"branches": BRANCHES, "head": "logreg", "fusion": "mean", "inner_splits": 2}, MATRIX),
    ("featurekit.fusion", "OOFFeaturesClassifier",
     {"branches": BRANCHES, "target": "a", "head": "logreg", "inner_splits": 2}, MATRIX),
    ("featurekit.learn.torch.sequence", "SequenceClassifier", TINY_SEQUENCE, SEQUENCES),
    ("featurekit.learn.torch.e2e", "E2EClassifier",
     {"channels": (4, 8), "convs_per_stage": (1, 1), "max_epochs": 2, "batch_size": 4,
      "freq_mask_bands": 2, "device": "cpu", "random_state": 0}, SEQUENCES),
    ("featurekit.fusion", "JointSequenceClassifier", TINY_SEQUENCE, STREAMS),
    ("featurekit.fusion", "EmbeddingBlendClassifier",
     {"encoder_params": {k: v for k, v in TINY_SEQUENCE.items() if k != "random_state"},
      "n_splits": 2, "random_state": 0}, STREAMS),
    ("featurekit", "AudioClassifier",
     {"system": "spectral/logreg", "model": None, "extraction": SPECTRAL}, AUDIO),
    ("featurekit.neural.embedder", "PretrainedEmbedder",
     {"model": "mn04_as", "weights": "untrained", "batch_size": 4}, AUDIO),
)

#: Checks a 2-D estimator is known to fail, by class: check name -> why (run as strict xfail).
_Y_IS_A_LABEL_MATRIX = ("a 2-D y is a label-indicator matrix (multi-label); a one-column y "
                        "is refused, not raveled with a DataConversionWarning")
_ONE_ROW = ("one training row stops inner_splits with 'needs at least 2 training rows', not "
            "the words sklearn looks for ('1 sample', 'one class')")
EXPECTED_FAILURES: dict[str, dict[str, str]] = {
    "XGBHead": {"check_supervised_y_2d": _Y_IS_A_LABEL_MATRIX},
    "MLPHead": {"check_supervised_y_2d": _Y_IS_A_LABEL_MATRIX},
    "LogRegHead": {"check_supervised_y_2d": _Y_IS_A_LABEL_MATRIX},
    "LateFusionClassifier": {"check_fit2d_1sample": _ONE_ROW},
    "OOFFeaturesClassifier": {"check_fit2d_1sample": _ONE_ROW},
}

#: Checks that read no data, or that an estimator fails (as it should) before reading it:
#: they also run on the estimators that do not read a 2-D matrix.
DATA_FREE_CHECKS = frozenset({
    "check_estimator_cloneable", "check_estimator_tags_renamed", "check_valid_tag_types",
    "check_estimator_repr", "check_no_attributes_set_in_init", "check_mixin_order",
    "check_do_not_raise_errors_in_init_or_set_params", "check_parameters_default_constructible",
    "check_get_params_invariance", "check_set_params", "check_estimators_unfitted",
    "check_transformers_unfitted",
})

#: Checks that feed a 2-D numeric X (random matrices, sparse, object or complex dtypes, 1-D
#: or one-feature inputs, NaN/inf cells): they cannot run on an estimator whose input is
#: audio, 3-D sequences or a mapping of streams, and are not run there. What they are about
#: is checked on each estimator's own input by :func:`test_native_input_conventions`.
MATRIX_ONLY_CHECKS = frozenset({
    "check_array_api_input", "check_classifier_data_not_an_array", "check_classifiers_classes",
    "check_classifiers_one_label", "check_classifiers_one_label_sample_weights",
    "check_classifiers_regression_target", "check_classifiers_train", "check_complex_data",
    "check_decision_proba_consistency", "check_dict_unchanged",
    "check_dont_overwrite_parameters", "check_dtype_object", "check_estimator_sparse_array",
    "check_estimator_sparse_matrix", "check_estimator_sparse_tag", "check_estimators_dtypes",
    "check_estimators_empty_data_messages", "check_estimators_fit_returns_self",
    "check_estimators_nan_inf", "check_estimators_overwrite_params",
    "check_estimators_partial_fit_n_features", "check_estimators_pickle",
    "check_f_contiguous_array_estimator", "check_fit1d", "check_fit2d_1feature",
    "check_fit2d_1sample", "check_fit2d_predict1d", "check_fit_check_is_fitted",
    "check_fit_idempotent", "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_non_transformer_estimators_n_iter",
    "check_pipeline_consistency", "check_positive_only_tag_during_fit",
    "check_readonly_memmap_input", "check_requires_y_none", "check_supervised_y_2d",
    "check_supervised_y_no_nan", "check_transformer_data_not_an_array",
    "check_transformer_general", "check_transformer_n_iter",
    "check_transformer_preserve_dtypes",
})

def build(module: str, name: str, kwargs: dict[str, Any]) -> Any:
    """A fresh instance of ``module.name(**kwargs)``."""
    return getattr(importlib.import_module(module), name)(**kwargs)


def _check_name(check: Callable[..., Any]) -> str:
    return (check.func if isinstance(check, functools.partial) else check).__name__


def _expected_failures(estimator: Any) -> dict[str, str]:
    return EXPECTED_FAILURES.get(type(estimator).__name__, {})


@parametrize_with_checks([build(m, n, kw) for m, n, kw, kind in ESTIMATORS if kind == MATRIX],
                         expected_failed_checks=_expected_failures, xfail_strict=True)
def test_sklearn_checks_on_matrix_estimators(estimator: Any, check: Callable[..., Any]) -> None:
    check(estimator)


@pytest.mark.parametrize(("module", "name", "kwargs", "kind"), ESTIMATORS,
                         ids=[entry[1] for entry in ESTIMATORS])
def test_input_tags_match_the_table(module: str, name: str, kwargs: dict[str, Any],
                                    kind: str) -> None:
    # scikit-learn decides from this tag whether its checks apply at all.
    assert get_tags(build(module, name, kwargs)).input_tags.two_d_array == (kind == MATRIX)


def _listed_checks() -> Iterator[tuple[str, Any, list[Callable[..., Any]]]]:
    """(name, estimator, every check scikit-learn would run on it if it read a 2-D matrix)
    for each estimator that does not."""
    for module, name, kwargs, kind in ESTIMATORS:
        if kind == MATRIX:
            continue
        estimator = build(module, name, kwargs)
        # A copy whose tags claim a 2-D input, only to list those checks (never checked).
        probe = clone(estimator)
        tags = get_tags(probe)
        tags.input_tags.two_d_array = True
        probe.__sklearn_tags__ = lambda tags=tags: tags
        yield name, estimator, [check for _, check in
                                estimator_checks_generator(probe, legacy=True)]


def test_every_listed_check_runs_or_is_matrix_only() -> None:
    unplaced = {name: sorted({_check_name(check) for check in checks}
                             - DATA_FREE_CHECKS - MATRIX_ONLY_CHECKS)
                for name, _, checks in _listed_checks()}
    assert {name: found for name, found in unplaced.items() if found} == {}


@pytest.mark.parametrize(("estimator", "check"), [
    pytest.param(estimator, check, id=f"{name}-{_check_name(check)}")
    for name, estimator, checks in _listed_checks() for check in checks
    if _check_name(check) in DATA_FREE_CHECKS])
def test_sklearn_checks_on_other_inputs(estimator: Any, check: Callable[..., Any]) -> None:
    check(estimator)


# -- the matrix-only checks' conventions, on each estimator's own input ---------------------------

def _write_clips(directory: Path, sr: int = 16000) -> tuple[list[str], np.ndarray]:
    """Eight 0.5-s clips, tones (class "tone") and noise (class "noise"), as WAV files."""
    rng = np.random.default_rng(0)
    t = np.arange(sr // 2) / sr
    paths, labels = [], []
    for i in range(8):
        tone = i % 2 == 0
        signal = (0.5 * np.sin(2 * np.pi * (300 + 50 * i) * t) if tone
                  else 0.3 * rng.standard_normal(t.size))
        paths.append(str(directory / f"clip{i}.wav"))
        sf.write(paths[-1], signal.astype(np.float32), sr)
        labels.append("tone" if tone else "noise")
    return paths, np.array(labels)


def native_input(kind: str, directory: Path) -> tuple[Any, np.ndarray]:
    """(X, y) of an estimator's own kind: 16 sequences (some shorter, NaN-padded), two
    streams of them, or eight audio files; two classes whose inputs differ."""
    if kind == AUDIO:
        return _write_clips(directory)
    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b"], 8)

    def sequences(n_dims: int) -> np.ndarray:
        X = rng.standard_normal((16, 12, n_dims)) + (y == "b")[:, None, None]
        X[::3, 8:] = np.nan  # every third clip is shorter: padding frames
        return X

    return (sequences(8) if kind == SEQUENCES else {"mel": sequences(8), "f0": sequences(3)},
            y)


def _outputs(estimator: Any, X: Any) -> dict[str, np.ndarray]:
    return {method: getattr(estimator, method)(X) for method in
            ("predict", "predict_proba", "transform") if hasattr(estimator, method)}


@pytest.mark.parametrize(("module", "name", "kwargs", "kind"),
                         [entry for entry in ESTIMATORS if entry[3] != MATRIX],
                         ids=[entry[1] for entry in ESTIMATORS if entry[3] != MATRIX])
def test_native_input_conventions(module: str, name: str, kwargs: dict[str, Any], kind: str,
                                  tmp_path: Path) -> None:
    X, y = native_input(kind, tmp_path)
    estimator = build(module, name, kwargs)
    params, attributes = joblib.hash(estimator.get_params()), set(vars(estimator))
    assert estimator.fit(X, y) is estimator
    # check_dont_overwrite_parameters: fit sets only private or trailing-underscore
    # attributes and changes no parameter.
    assert joblib.hash(estimator.get_params()) == params
    added = set(vars(estimator)) - attributes
    assert [a for a in added if not (a.startswith("_") or a.endswith("_"))] == []
    check_is_fitted(estimator)
    outputs = _outputs(estimator, X)
    if "predict_proba" in outputs:
        proba = outputs["predict_proba"]
        assert proba.shape == (len(y), estimator.classes_.size)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
        assert set(outputs["predict"]) <= set(estimator.classes_)
    if "transform" in outputs:  # check_transformer_get_feature_names_out
        names = estimator.get_feature_names_out()
        assert outputs["transform"].shape == (len(y), len(names))
    # check_estimators_pickle and check_fit_idempotent: same outputs after either.
    for other in (pickle.loads(pickle.dumps(estimator)), clone(estimator).fit(X, y)):
        for method, values in _outputs(other, X).items():
            if values.dtype.kind == "f":
                np.testing.assert_allclose(values, outputs[method], rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(values, outputs[method])
