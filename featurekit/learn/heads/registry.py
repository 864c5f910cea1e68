"""The tabular heads by name, and how to build one.
"""

from __future__ import annotations

from typing import Any

from featurekit.errors import ConfigError
from featurekit.learn.heads.base import HeadSpec
from featurekit.learn.heads.logreg import LogRegHead
from featurekit.learn.heads.mlp import MLPHead
from featurekit.learn.heads.xgb import XGBHead

HEADS: dict[str, HeadSpec] = {
    "xgb": HeadSpec("xgb", XGBHead, seeded=True,
                    param_grid={"max_depth": [3, 6], "colsample_bytree": [0.2, 0.5]},
                    defaults_chosen_on=("esc10",)),
    "mlp": HeadSpec("mlp", MLPHead, seeded=True,
                    param_grid={"hidden_layer_sizes": [(128,), (512,)],
                                "alpha": [1e-4, 1e-2]},
                    defaults_chosen_on=("esc10",)),
    "logreg": HeadSpec("logreg", LogRegHead, seeded=False,
                       param_grid={"C": [0.01, 0.1, 1.0, 10.0]},
                       defaults_chosen_on=("esc10",)),
}


def get_head_spec(head: str | HeadSpec) -> HeadSpec:
    """Look a head up by name (or pass a :class:`HeadSpec` through)."""
    if isinstance(head, HeadSpec):
        return head
    try:
        return HEADS[head]
    except KeyError:
        raise ConfigError(f"unknown head {head!r}; choose from {', '.join(HEADS)}") from None


def make_head(head: str | HeadSpec, *, random_state: int | None = None,
              **params: Any) -> Any:
    """An unfitted head; ``random_state`` is passed only to seeded heads."""
    spec = get_head_spec(head)
    if spec.seeded:
        params["random_state"] = random_state
    return spec.factory(**params)
