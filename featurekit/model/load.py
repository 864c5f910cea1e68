"""Reading a trained model back from its artifact file.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import warnings
from pathlib import Path

from featurekit import __version__
from featurekit._util.versions import package_versions
from featurekit.config import DESCRIPTOR_VERSION
from featurekit.errors import ArtifactError
from featurekit.model.artifact import ARTIFACT_FORMAT, RECORDED_PACKAGES, read_header, release
from featurekit.model.classifier import AudioClassifier
from featurekit.names import NEURAL_PREFIX

#: The artifact format before :data:`ARTIFACT_FORMAT`, still read: a model of at most one
#: neural branch, which kept that branch's weights checksum alone.
ONE_NEURAL_FORMAT = 1


def load_model(path: str | os.PathLike[str], *,
               weights: str | os.PathLike[str] | None = None,
               n_jobs: int | None = None) -> AudioClassifier:
    """Read a trained :class:`AudioClassifier` from an artifact file.

    The header is checked first (artifact format, featurekit release, descriptor version),
    then the payload's length and SHA-256; only then is it unpickled. A format-1 artifact
    (one neural branch at most) is read as the current format.

    .. warning::
       The payload is a pickle: load only artifacts you trust.

    Parameters
    ----------
    path : path-like
        Artifact written by :meth:`AudioClassifier.save` (``featurekit train``).
    weights : path-like, keyword-only, optional
        Checkpoint of the neural model, when not where ``featurekit embed`` finds it; its
        checksum must match the training weights'.
    n_jobs : int, keyword-only, optional
        Replaces the saved ``n_jobs`` (parallelism of feature computation).

    Raises
    ------
    ArtifactError
        Not an artifact, truncated or corrupt, or written by an incompatible featurekit.
    """
    header, offset = read_header(path)
    if header.get("format") not in (ONE_NEURAL_FORMAT, ARTIFACT_FORMAT):
        raise ArtifactError(f"{path}: artifact format {header.get('format')!r}; this featurekit "
                            f"{__version__} reads formats {ONE_NEURAL_FORMAT} and "
                            f"{ARTIFACT_FORMAT}")
    saved = str(header.get("featurekit"))
    if release(saved) != release(__version__):
        raise ArtifactError(f"{path}: trained with featurekit {saved}, incompatible with "
                            f"featurekit {__version__}; retrain with `featurekit train`")
    if header.get("descriptor_version") != DESCRIPTOR_VERSION:
        raise ArtifactError(f"{path}: trained on descriptor version "
                            f"{header.get('descriptor_version')}, but this featurekit computes "
                            f"version {DESCRIPTOR_VERSION}; retrain with `featurekit train`")
    payload = Path(path).read_bytes()[offset:]
    if len(payload) != header.get("payload_bytes"):
        raise ArtifactError(f"{path}: truncated or padded artifact (payload of {len(payload)} "
                            f"bytes, header says {header.get('payload_bytes')})")
    if hashlib.sha256(payload).hexdigest() != header.get("payload_sha256"):
        raise ArtifactError(f"{path}: corrupt artifact (payload checksum mismatch)")
    classifier = pickle.loads(payload)
    if not isinstance(classifier, AudioClassifier):
        raise ArtifactError(f"{path}: payload is a {type(classifier).__name__}, not an "
                            f"AudioClassifier")
    if header["format"] == ONE_NEURAL_FORMAT:
        # Its one checksum belongs to its neural branch, if the system reads one.
        classifier.weights_sha256_ = {branch: classifier.weights_sha256_
                                      for branch in classifier.branches_
                                      if branch.startswith(NEURAL_PREFIX)}
        classifier.imported_ = {}
    recorded = header.get("provenance", {}).get("versions", {})
    current = package_versions(*RECORDED_PACKAGES)
    changed = [f"{name} {recorded[name]} -> {current[name]}" for name in RECORDED_PACKAGES
               if name in recorded and recorded[name] != current[name]]
    if changed:
        warnings.warn(f"{path}: trained with other library versions ({', '.join(changed)}); "
                      "predictions may differ slightly", UserWarning, stacklevel=2)
    if weights is not None:
        classifier.weights = weights
    if n_jobs is not None:
        classifier.n_jobs = n_jobs
    return classifier
