"""The installed environment: XGBoost comes from one distribution, and provenance records
its version whichever build it is.

The core install depends on ``xgboost-cpu`` (no CUDA libraries); a GPU user swaps in the CUDA
build ``xgboost`` (README, "XGBoost on a GPU"). Both install the same ``xgboost`` package
folder, so having both leaves files of one under the other's name and uninstalling either
breaks XGBoost. ``.ci/run`` also checks that the core install brings no ``nvidia-*``
distribution.
"""

from __future__ import annotations

from importlib import metadata

import pytest

from featurekit._util.versions import package_versions


def test_xgboost_is_installed_by_exactly_one_distribution() -> None:
    providers = sorted(set(metadata.packages_distributions().get("xgboost", [])))
    assert len(providers) == 1, (
        f"the xgboost package is installed by {providers}: run `pip uninstall -y xgboost "
        "xgboost-cpu` then install one of them (README, \"XGBoost on a GPU\")")
    assert providers[0] in ("xgboost", "xgboost-cpu")


def test_versions_of_an_import_package_come_from_its_distribution(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What a CPU install looks like: no distribution named "xgboost", "xgboost-cpu" provides it.
    real_version = metadata.version

    def version(name: str) -> str:
        if name == "xgboost":
            raise metadata.PackageNotFoundError(name)
        return "3.2.0" if name == "xgboost-cpu" else real_version(name)

    monkeypatch.setattr(metadata, "version", version)
    monkeypatch.setattr(metadata, "packages_distributions", lambda: {"xgboost": ["xgboost-cpu"]})
    versions = package_versions("xgboost", "no-such-package-anywhere")
    assert versions["xgboost"] == "3.2.0"
    assert versions["no-such-package-anywhere"] == "not installed"
