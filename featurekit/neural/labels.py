"""The AudioSet class names that the pretrained models' tag outputs follow."""

from __future__ import annotations

__all__ = ["audioset_labels"]


def audioset_labels() -> list[str]:
    """The 527 AudioSet class names in model output order.

    From the AudioSet ontology's ``class_labels_indices.csv`` (Gemmeke et al., ICASSP 2017;
    CC BY-SA 4.0), shipped with featurekit as ``featurekit/neural/audioset_labels.csv``.
    """
    import csv
    from importlib.resources import files

    text = files("featurekit.neural").joinpath("audioset_labels.csv").read_text("utf-8")
    return [row["display_name"] for row in csv.DictReader(text.splitlines())]
