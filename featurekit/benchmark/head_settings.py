"""Head settings: parameters that replace heads' defaults, and the data that chose them.

A figure is trustworthy only when the settings that produced it were chosen on data disjoint
from the data it reports. Every head therefore says which datasets chose its defaults
(:attr:`~featurekit.learn.heads.base.HeadSpec.defaults_chosen_on`), a settings file
(``featurekit benchmark --head-settings FILE``) says which datasets chose its parameters, and
each benchmark records, per head, the settings it ran with, where they were chosen and
whether that data overlaps the dataset it reports (:func:`settings_record`).

A settings file is JSON::

    {"chosen_on": ["urbansound8k"],
     "evidence": "benchmarks/notes/heads.md",
     "heads": {"mlp": {"hidden_layer_sizes": [256], "refit": false}}}

Lists become tuples (``hidden_layer_sizes``); heads the file does not name keep their defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.errors import ConfigError

if TYPE_CHECKING:
    from featurekit.learn.heads.base import HeadSpec

__all__ = ["HeadSettings", "dataset_source", "read_head_settings", "settings_record",
           "with_settings"]

#: Datasets that share clips: ESC-10 is the subset of ESC-50 with ten of its classes.
_SOURCES = {"esc10": "esc50", "esc50": "esc50", "urbansound8k": "urbansound8k",
            "fsd50k": "fsd50k"}


@dataclass(frozen=True)
class HeadSettings:
    """Parameters for some heads, and the datasets whose data chose them.

    Attributes
    ----------
    params : mapping of str to mapping
        Head name -> constructor parameters that replace its defaults.
    chosen_on : tuple of str
        Dataset names (``esc10``, ``urbansound8k``, ...) whose data chose ``params``.
    evidence : str
        Where the choice is documented (a note, a command).
    """

    params: Mapping[str, Mapping[str, Any]]
    chosen_on: tuple[str, ...]
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready copy."""
        return {"params": {head: dict(values) for head, values in self.params.items()},
                "chosen_on": list(self.chosen_on), "evidence": self.evidence}


def dataset_source(name: str) -> str | None:
    """The collection a dataset's clips come from (``esc10`` -> ``esc50``); None when the name
    does not say (``csv``, ``folder``: the user's own clips)."""
    return _SOURCES.get(name)


def read_head_settings(path: str | os.PathLike[str]) -> HeadSettings:
    """Read a settings file (module docstring), checking its shape.

    Parameters
    ----------
    path : path-like
        JSON file.

    Returns
    -------
    HeadSettings

    Raises
    ------
    ConfigError
        The file is missing, not JSON, or lacks ``chosen_on`` (a list of dataset names) or
        ``heads`` (head name -> object of parameters).
    """
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"head settings file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"head settings file {path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"head settings file {path}: expected a JSON object")
    chosen_on = document.get("chosen_on")
    if (not isinstance(chosen_on, list) or not chosen_on
            or not all(isinstance(name, str) for name in chosen_on)):
        raise ConfigError(f"head settings file {path}: 'chosen_on' must list the datasets "
                          "whose data chose these settings")
    heads = document.get("heads")
    if (not isinstance(heads, dict) or not heads
            or not all(isinstance(values, dict) for values in heads.values())):
        raise ConfigError(f"head settings file {path}: 'heads' must map head names to "
                          "objects of parameters")
    params = {str(head): {str(key): tuple(value) if isinstance(value, list) else value
                          for key, value in values.items()}
              for head, values in heads.items()}
    return HeadSettings(params, tuple(chosen_on), str(document.get("evidence", "")))


def with_settings(specs: Mapping[str, HeadSpec],
                  settings: HeadSettings | None) -> dict[str, HeadSpec]:
    """``specs`` with ``settings`` applied: each named head builds with its parameters and
    records the settings' datasets as where its defaults were chosen.

    Parameters
    ----------
    specs : mapping of str to HeadSpec
        The heads a benchmark runs, by name.
    settings : HeadSettings or None
        None returns ``specs`` unchanged.

    Returns
    -------
    dict of str to HeadSpec

    Raises
    ------
    ConfigError
        The settings name a head the benchmark does not run, or a parameter the head does
        not take (or a value it refuses).
    """
    specs = dict(specs)
    if settings is None:
        return specs
    for name, params in settings.params.items():
        if name not in specs:
            raise ConfigError(f"head settings name head {name!r}, which this benchmark does "
                              f"not run (its heads: {', '.join(specs)})")
        spec = specs[name]
        try:
            spec.factory(**params).get_params()
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"head settings for {name!r}: {exc}") from None
        specs[name] = replace(spec, factory=partial(spec.factory, **params),
                              defaults_chosen_on=settings.chosen_on)
    return specs


def settings_record(specs: Mapping[str, HeadSpec], dataset: str,
                    settings: HeadSettings | None) -> dict[str, Any]:
    """What results.json says of the heads' settings.

    Parameters
    ----------
    specs : mapping of str to HeadSpec
        The heads as run (after :func:`with_settings`).
    dataset : str
        The dataset the benchmark reports.
    settings : HeadSettings or None
        The settings file's content, if one was given.

    Returns
    -------
    dict
        ``heads``: per head, ``chosen_on`` (datasets; empty when no data chose its settings)
        and ``params`` (those the settings replaced); ``overlapping``: heads whose settings
        were chosen on the reported dataset's clips; ``disjoint``: True when none is, False
        when one is, None when the dataset's name does not say where its clips come from
        (``csv``, ``folder``); ``evidence``.
    """
    source = dataset_source(dataset)
    heads = {name: {"chosen_on": list(spec.defaults_chosen_on),
                    "params": dict(settings.params.get(name, {})) if settings else {}}
             for name, spec in specs.items()}
    overlapping = sorted(name for name, spec in specs.items()
                         if source is not None
                         and any(dataset_source(chosen) == source
                                 for chosen in spec.defaults_chosen_on))
    return {"heads": heads, "overlapping": overlapping,
            "disjoint": None if source is None else not overlapping,
            "evidence": settings.evidence if settings else "benchmarks/notes/heads.md"}
