"""Versions of the libraries behind a number, for provenance records (one helper for all)."""

from __future__ import annotations

import platform
from importlib import metadata


def package_versions(*packages: str) -> dict[str, str]:
    """Python's version and each installed distribution's (``"not installed"`` otherwise).

    A name that is no distribution's is looked up as an import package: ``"xgboost"`` is
    installed by the ``xgboost-cpu`` distribution on a CPU install and by ``xgboost`` on a GPU
    one, the same release either way.
    """
    versions = {"python": platform.python_version()}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            providers = metadata.packages_distributions().get(package, [])
            versions[package] = (metadata.version(providers[0]) if providers
                                 else "not installed")
    return versions
