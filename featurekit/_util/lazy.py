"""Lazy public names: a package exposes names whose modules are imported on first use.

``import featurekit`` and ``import featurekit.fusion`` stay fast and do not pull in torch or
xgboost until a name that needs them is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str],
                 namespace: dict[str, Any]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``names[name]`` and caches the attribute.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (for the error message).
    names : mapping of str to str
        Public name -> module that defines it.
    namespace : dict
        The package's ``globals()``; a resolved name is stored there, so the hook runs once
        per name.
    """
    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__
