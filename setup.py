"""Packages list for setuptools; everything else is in pyproject.toml.

pyproject's package finder cannot also map the top-level ``data_manifests/`` folder into the
package, so the list is built here.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["featurekit*"]), "featurekit.data_manifests"])
