"""Versions of the libraries behind a number, for provenance records (one helper for all)."""

from __future__ import annotations

import platform
from importlib import metadata


def package_versions(*packages: str) -> dict[str, str]:
    """Python's version and each installed distribution's (``"not installed"`` otherwise)."""
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
