"""Optional engines, imported where they are used, with an error that names their extra.

The core install holds what the core imports. Engines only some users need are extras:

========================  ==========================  =======================================
extra                     installs                    needed by
========================  ==========================  =======================================
``featurekit[dask]``      ``dask[distributed]``       ``backend="dask"`` (``--backend dask``)
``featurekit[opensmile]`` ``opensmile``               the openSMILE feature sets
``featurekit[essentia]``  ``essentia`` (AGPL-3.0)     the Essentia feature sets
``featurekit[hf]``        ``transformers``            ``hf:`` models (``--model hf:ID``)
``featurekit[mp3]``       ``lameenc``                 the ``mp3`` corruption (MP3 round trip)
========================  ==========================  =======================================

>>> distributed = require("distributed", extra="dask", purpose="backend='dask'")  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from types import ModuleType

from featurekit.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, extra: str, purpose: str | None = None) -> ModuleType:
    """Import ``module``, or say which extra installs it.

    Parameters
    ----------
    module : str
        Module to import, e.g. ``"distributed"`` or ``"opensmile"``.
    extra : str, keyword-only
        The featurekit extra that installs it (``pip install "featurekit[extra]"``).
    purpose : str, keyword-only, optional
        What needs it, for the message (default: the module's name).

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingDependencyError
        ``module`` (or a module it needs) cannot be imported; the message names the extra
        and the import error.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose or module} needs the optional dependency {module!r}, which cannot be "
            f"imported here ({exc}); install it with: pip install \"featurekit[{extra}]\""
        ) from exc
