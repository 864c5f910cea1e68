"""A multi-label set made of single-label clips: pairs mixed, written in the FSD50K layout.

Real multi-label data (FSD50K) is large; to check the multi-label path end to end on data at
hand, :func:`write_mixture_set` mixes clips of a single-label dataset in pairs of different
classes (a mixture's labels: both classes) and leaves some clips alone (one label), then
writes the official FSD50K layout (:mod:`featurekit.datasets.fsd50k`). Each source clip's
split comes from its fold, so the clips of one source recording (which share an official
fold) never reach two splits, and the partner of a mixture comes from the same split.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from featurekit.datasets.base import LABEL_SEPARATOR, Dataset
from featurekit.datasets.fsd50k import AUDIO_DIRS, GROUND_TRUTH
from featurekit.errors import DatasetError
from featurekit.io.audio import load_audio

__all__ = ["mix_pair", "plan_mixtures", "write_mixture_set"]

_SPLITS = ("train", "val", "eval")


def mix_pair(first: np.ndarray, second: np.ndarray | None, *, n_samples: int,
             peak: float = 0.9) -> np.ndarray:
    """Two clips at equal RMS, summed (or one clip alone), fitted to ``n_samples`` and scaled
    to ``peak``.

    Clips are cut or zero-padded at the end to ``n_samples``; equal RMS (over each clip's own
    samples) keeps either sound from hiding the other, so both labels are audible.

    Returns
    -------
    np.ndarray, float32, shape (n_samples,)
    """
    def fitted(y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)[:n_samples]
        rms = float(np.sqrt(np.mean(y ** 2))) if y.size else 0.0
        out = np.zeros(n_samples)
        out[:y.size] = y / rms if rms > 0 else y
        return out

    mixed = fitted(first) + (fitted(second) if second is not None else 0.0)
    top = float(np.max(np.abs(mixed)))
    return (mixed * (peak / top if top > 0 else 1.0)).astype(np.float32)


def plan_mixtures(clips: pd.DataFrame, split_of_fold: Mapping[int, str], *,
                  single_share: float = 1 / 3, seed: int = 0) -> pd.DataFrame:
    """Which clips make each item of the set.

    Every source clip is the first clip of exactly one item; a ``single_share`` of them stay
    alone, the others get a partner of another class drawn from the same split (a partner may
    serve several items).

    Parameters
    ----------
    clips : pandas.DataFrame
        ``clip_id, path, label, fold`` (a single-label :attr:`Dataset.clips`).
    split_of_fold : mapping of int to {"train", "val", "eval"}
        Split of each fold used; clips of other folds are left out.
    single_share : float
        Share of items that are one clip alone, in [0, 1).
    seed : int

    Returns
    -------
    pandas.DataFrame
        ``fname`` (``0 .. n-1``), ``split``, ``first``, ``second`` (paths; ``second`` missing for
        a single clip) and ``labels`` (comma-joined).
    """
    if not 0.0 <= single_share < 1.0:
        raise DatasetError(f"single_share must be in [0, 1), got {single_share}")
    bad = sorted(set(split_of_fold.values()) - set(_SPLITS))
    if bad:
        raise DatasetError(f"splits must be train, val or eval; got {', '.join(bad)}")
    rng = np.random.default_rng(seed)
    items = []
    for split in _SPLITS:
        folds = [fold for fold, name in split_of_fold.items() if name == split]
        part = clips[clips["fold"].isin(folds)].sort_values("clip_id").reset_index(drop=True)
        if part.empty:
            raise DatasetError(f"no clip falls in the {split} split (folds {folds})")
        if part["label"].nunique() < 2:
            raise DatasetError(f"the {split} split needs clips of two classes to mix")
        labels = part["label"].to_numpy()
        alone = rng.random(len(part)) < single_share
        for index in rng.permutation(len(part)):
            partner = None
            if not alone[index]:
                others = np.flatnonzero(labels != labels[index])
                partner = int(rng.choice(others))
            names = [labels[index]] + ([labels[partner]] if partner is not None else [])
            items.append({"split": split, "first": part["path"].iloc[index],
                          "second": None if partner is None else part["path"].iloc[partner],
                          "labels": LABEL_SEPARATOR.join(names)})
    table = pd.DataFrame(items)
    table.insert(0, "fname", np.arange(len(table)).astype(str))
    return table


def write_mixture_set(dataset: Dataset, out_dir: str | os.PathLike[str],
                      split_of_fold: Mapping[int, str], *, sr: int = 22050,
                      duration: float = 5.0, single_share: float = 1 / 3,
                      seed: int = 0) -> pd.DataFrame:
    """Write a multi-label set in the FSD50K layout from a single-label dataset's clips.

    Parameters
    ----------
    dataset : Dataset
        Single-label source (e.g. ESC-10); class names must not contain commas.
    out_dir : path-like
        Created; receives ``FSD50K.dev_audio/``, ``FSD50K.eval_audio/`` and
        ``FSD50K.ground_truth/{dev,eval,vocabulary}.csv``.
    split_of_fold : mapping of int to {"train", "val", "eval"}
        The split of each source fold (e.g. ESC-10 folds 1-3 train, 4 val, 5 eval).
    sr : int
        Sample rate of the written WAV files, Hz.
    duration : float
        Length of every item, seconds (shorter clips are zero-padded).
    single_share, seed :
        See :func:`plan_mixtures`.

    Returns
    -------
    pandas.DataFrame
        The plan (:func:`plan_mixtures`), one row per written clip.
    """
    if dataset.multilabel:
        raise DatasetError(f"{dataset.name} is already multi-label; mix a single-label set")
    commas = [name for name in dataset.classes if LABEL_SEPARATOR in name]
    if commas:
        raise DatasetError(f"class names with commas cannot be labels of a set: {commas}")
    out = Path(out_dir)
    table = plan_mixtures(dataset.clips, split_of_fold, single_share=single_share, seed=seed)
    n_samples = round(duration * sr)
    for item in table.itertuples():
        first = load_audio(item.first, sr=sr)[0]
        second = load_audio(item.second, sr=sr)[0] if pd.notna(item.second) else None
        subset = "eval" if item.split == "eval" else "dev"
        target = out / AUDIO_DIRS[subset] / f"{item.fname}.wav"
        target.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(target, mix_pair(first, second, n_samples=n_samples), sr,
                        subtype="PCM_16")
    truth = out / GROUND_TRUTH
    truth.mkdir(parents=True, exist_ok=True)
    mids = {name: f"/featurekit/{dataset.name}/{name}" for name in dataset.classes}

    def write(name: str, rows: pd.DataFrame, with_split: bool) -> None:
        with open(truth / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["fname", "labels", "mids"] + (["split"] if with_split else []))
            for row in rows.itertuples():
                labels = row.labels.split(LABEL_SEPARATOR)
                writer.writerow([row.fname, row.labels,
                                 LABEL_SEPARATOR.join(mids[label] for label in labels)]
                                + ([row.split] if with_split else []))

    write("dev.csv", table[table["split"] != "eval"], True)
    write("eval.csv", table[table["split"] == "eval"], False)
    with open(truth / "vocabulary.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([index, name, mids[name]]
                                     for index, name in enumerate(dataset.classes))
    return table
