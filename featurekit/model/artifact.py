"""The artifact file format of a trained model.

Artifact files
--------------
A magic line ``featurekit-model``, a one-line JSON header (artifact format, featurekit
version, descriptor version, payload length and SHA-256, and the provenance: configuration
hashes, library versions, classes, branches, each neural branch's model and weights or source
checksum, the system and its inner-CV score), then the payload: a pickle of the fitted
:class:`AudioClassifier`. Loading checks the header and the payload's length and checksum
before unpickling anything, and refuses artifacts of another format (but reads format 1),
featurekit release (major.minor) or descriptor version.

.. warning::
   Artifacts are pickles: unpickling runs code named in the file. The checksum detects
   corruption and truncation, not tampering. Load only artifacts you trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featurekit import __version__
from featurekit._util.fsutil import atomic_write_bytes
from featurekit.config import DESCRIPTOR_VERSION
from featurekit.errors import ArtifactError

#: First line of every artifact file.
ARTIFACT_MAGIC = b"featurekit-model\n"


#: Version of the artifact layout; bumped when the header or payload changes meaning. Format 2
#: records every neural branch (format 1 kept one weights checksum, and no imported branch).
ARTIFACT_FORMAT = 2


#: A header longer than this is not a featurekit artifact.
MAX_HEADER_BYTES = 1 << 20


#: Libraries whose versions the artifact records (and warns about when they differ).
RECORDED_PACKAGES = ("featurekit", "numpy", "scipy", "scikit-learn", "xgboost", "torch")


def release(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def read_header(path: str | os.PathLike[str]) -> tuple[dict[str, Any], int]:
    """The JSON header of an artifact and the offset of its payload (nothing unpickled).

    Raises
    ------
    ArtifactError
        Not a featurekit artifact, or an unreadable header.
    """
    with open(path, "rb") as handle:
        if handle.read(len(ARTIFACT_MAGIC)) != ARTIFACT_MAGIC:
            raise ArtifactError(f"{path}: not a featurekit model artifact")
        line = handle.readline(MAX_HEADER_BYTES)
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: corrupt artifact header ({exc})") from exc
    if not isinstance(header, dict) or not line.endswith(b"\n"):
        raise ArtifactError(f"{path}: corrupt artifact header")
    return header, len(ARTIFACT_MAGIC) + len(line)


def write_artifact(payload: Any, provenance: Mapping[str, Any],
                   path: str | os.PathLike[str]) -> Path:
    """Write ``payload`` (pickled) with its header as one artifact file, atomically: the file
    exists complete or not at all.

    Parameters
    ----------
    payload : object
        The fitted classifier.
    provenance : mapping
        What the header records about it (JSON-serialisable).
    path : path-like

    Returns
    -------
    pathlib.Path
    """
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    header = {"format": ARTIFACT_FORMAT, "featurekit": __version__,
              "descriptor_version": DESCRIPTOR_VERSION, "payload_bytes": len(data),
              "payload_sha256": hashlib.sha256(data).hexdigest(),
              "provenance": dict(provenance)}
    line = json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    atomic_write_bytes(path, ARTIFACT_MAGIC + line + data)
    return Path(path)
