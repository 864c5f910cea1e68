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
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile
from joblib import Parallel, delayed

from featurekit.datasets.base import LABEL_SEPARATOR, Dataset
from featurekit.datasets.fsd50k import AUDIO_DIRS, GROUND_TRUTH
from featurekit.errors import DatasetError
from featurekit.io.audio import load_audio

__all__ = ["SPEEDS", "class_speeds", "mix_pair", "plan_mixtures", "variant_name",
           "write_mixture_set"]

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
                  single_share: float = 1 / 3, seed: int = 0, n_items: int | None = None,
                  classes: Sequence[str] | None = None,
                  n_classes: int | None = None) -> pd.DataFrame:
    """Which clips make each item of the set.

    Without ``n_items``, every source clip is the first clip of exactly one item; a
    ``single_share`` of them stay alone, the others get a partner of another class drawn from
    the same split (a partner may serve several items). With ``n_items``, each split holds its
    share of them (in proportion to its source clips): the source clips are taken in a fresh
    random order as often as needed, and an item whose first clip was used before is always
    mixed, with a partner it was not mixed with before, so no two items are the same sound.

    ``n_classes`` above the source's number of classes makes more classes from the same clips:
    each class is also played at other speeds (:data:`SPEEDS`, e.g. ``dog@1.26x``: 1.26 times
    faster and about 4 semitones higher), the extra speeds spread as evenly as the count
    allows over the classes in their order. Every clip then serves once per speed of its
    class; a partner is always of another source class.

    Parameters
    ----------
    clips : pandas.DataFrame
        ``clip_id, path, label, fold`` (a single-label :attr:`Dataset.clips`).
    split_of_fold : mapping of int to {"train", "val", "eval"}
        Split of each fold used; clips of other folds are left out.
    single_share : float
        Share of items that are one clip alone, in [0, 1).
    seed : int
    n_items : int, optional
        Items in all (default: one per source clip and speed).
    classes : sequence of str, optional
        The source's classes in order (default: the labels of ``clips``, sorted); the extra
        speeds go to the first.
    n_classes : int, optional
        Classes of the set, from ``len(classes)`` to ``len(SPEEDS)`` times it.

    Returns
    -------
    pandas.DataFrame
        ``fname`` (``0 .. n-1``), ``split``, ``first``, ``second`` (paths; ``second`` missing for
        a single clip), ``first_speed``, ``second_speed`` (playback speed of each, 1 for the
        original; ``second_speed`` missing for a single clip) and ``labels`` (comma-joined).
    """
    if not 0.0 <= single_share < 1.0:
        raise DatasetError(f"single_share must be in [0, 1), got {single_share}")
    bad = sorted(set(split_of_fold.values()) - set(_SPLITS))
    if bad:
        raise DatasetError(f"splits must be train, val or eval; got {', '.join(bad)}")
    if n_items is not None and n_items < len(_SPLITS):
        raise DatasetError(f"n_items must be at least {len(_SPLITS)} (one per split), "
                           f"got {n_items}")
    classes = sorted(clips["label"].unique()) if classes is None else list(classes)
    speeds_of = class_speeds(classes, n_classes)
    rng = np.random.default_rng(seed)
    parts = {}
    for split in _SPLITS:
        folds = [fold for fold, name in split_of_fold.items() if name == split]
        part = clips[clips["fold"].isin(folds)].sort_values("clip_id").reset_index(drop=True)
        if part.empty:
            raise DatasetError(f"no clip falls in the {split} split (folds {folds})")
        if part["label"].nunique() < 2:
            raise DatasetError(f"the {split} split needs clips of two classes to mix")
        # One row per clip and speed of its class.
        counts = part["label"].map(lambda label: len(speeds_of[label])).to_numpy()
        parts[split] = part.loc[part.index.repeat(counts)].reset_index(drop=True).assign(
            speed=np.concatenate([speeds_of[label] for label in part["label"]]))
    sizes = _split_sizes({split: len(part) for split, part in parts.items()}, n_items)
    items = []
    for split, part in parts.items():
        labels = part["label"].to_numpy()
        alone = rng.random(sizes[split]) < single_share
        passes = -(-sizes[split] // len(part))
        order = np.concatenate([rng.permutation(len(part)) for _ in range(passes)])
        partners_of: dict[int, set[int]] = {}
        for position, index in enumerate(order[:sizes[split]]):
            partner = None
            # Without n_items each clip's draw decides (the plans of earlier releases, same
            # seed); with it each item's, as a clip may come first more than once.
            if position >= len(part) or not alone[index if n_items is None else position]:
                others = np.flatnonzero(labels != labels[index])
                used = partners_of.setdefault(int(index), set())
                if len(used) == others.size:
                    raise DatasetError(f"the {split} split has too few clips for "
                                       f"{sizes[split]} different items; ask for fewer")
                if used:
                    others = np.setdiff1d(others, list(used))
                partner = int(rng.choice(others))
                used.add(partner)
            chosen = [index] + ([partner] if partner is not None else [])
            items.append({"split": split, "first": part["path"].iloc[index],
                          "second": None if partner is None else part["path"].iloc[partner],
                          "first_speed": float(part["speed"].iloc[index]),
                          "second_speed": (None if partner is None
                                           else float(part["speed"].iloc[partner])),
                          "labels": LABEL_SEPARATOR.join(
                              variant_name(labels[k], float(part["speed"].iloc[k]))
                              for k in chosen)})
    table = pd.DataFrame(items)
    table.insert(0, "fname", np.arange(len(table)).astype(str))
    return table


#: Playback speeds of a class's variants, in the order they are added: the original, then
#: 4 semitones up and down (2 ** (4 / 12) = 1.26), then 8.
SPEEDS = (1.0, 1.26, 0.794, 1.587, 0.63)
_VARIANT_MARK = "@"


def class_speeds(classes: Sequence[str], n_classes: int | None) -> dict[str, list[float]]:
    """The speeds of each class that make ``n_classes`` classes in all (see
    :func:`plan_mixtures`)."""
    n_classes = len(classes) if n_classes is None else n_classes
    if not len(classes) <= n_classes <= len(SPEEDS) * len(classes):
        raise DatasetError(f"n_classes must be between {len(classes)} (the source's classes) "
                           f"and {len(SPEEDS) * len(classes)} ({len(SPEEDS)} speeds of each), "
                           f"got {n_classes}")
    per_class, extra = divmod(n_classes, len(classes))
    return {label: list(SPEEDS[:per_class + (rank < extra)])
            for rank, label in enumerate(classes)}


def variant_name(label: str, speed: float) -> str:
    """A class's name at a playback speed: the label itself at speed 1, else
    ``label@<speed>x``."""
    return label if speed == 1.0 else f"{label}{_VARIANT_MARK}{speed:g}x"


def _split_sizes(available: Mapping[str, int], n_items: int | None) -> dict[str, int]:
    # Largest remainders: the sizes add up to n_items and follow the source's proportions.
    if n_items is None:
        return dict(available)
    total = sum(available.values())
    exact = {split: n_items * count / total for split, count in available.items()}
    sizes = {split: max(1, int(share)) for split, share in exact.items()}
    for split in sorted(exact, key=lambda name: int(exact[name]) - exact[name]):
        if sum(sizes.values()) >= n_items:
            break
        sizes[split] += 1
    return sizes


def write_mixture_set(dataset: Dataset, out_dir: str | os.PathLike[str],
                      split_of_fold: Mapping[int, str], *, sr: int = 22050,
                      duration: float = 5.0, single_share: float = 1 / 3,
                      seed: int = 0, n_items: int | None = None,
                      n_classes: int | None = None, n_jobs: int = 1) -> pd.DataFrame:
    """Write a multi-label set in the FSD50K layout from a single-label dataset's clips.

    Parameters
    ----------
    dataset : Dataset
        Single-label source (e.g. ESC-10); class names must not contain commas or ``@``.
    out_dir : path-like
        Created; receives ``FSD50K.dev_audio/``, ``FSD50K.eval_audio/`` and
        ``FSD50K.ground_truth/{dev,eval,vocabulary}.csv``.
    split_of_fold : mapping of int to {"train", "val", "eval"}
        The split of each source fold (e.g. ESC-10 folds 1-3 train, 4 val, 5 eval).
    sr : int
        Sample rate of the written WAV files, Hz.
    duration : float
        Length of every item, seconds (shorter clips are zero-padded).
    single_share, seed, n_items, n_classes :
        See :func:`plan_mixtures`.
    n_jobs : int
        Processes that decode, mix and write the items.

    Returns
    -------
    pandas.DataFrame
        The plan (:func:`plan_mixtures`), one row per written clip.
    """
    if dataset.multilabel:
        raise DatasetError(f"{dataset.name} is already multi-label; mix a single-label set")
    reserved = [name for name in dataset.classes
                if LABEL_SEPARATOR in name or _VARIANT_MARK in name]
    if reserved:
        raise DatasetError(f"class names with commas or '{_VARIANT_MARK}' cannot be labels "
                           f"of a set: {reserved}")
    out = Path(out_dir)
    table = plan_mixtures(dataset.clips, split_of_fold, single_share=single_share, seed=seed,
                          n_items=n_items, classes=dataset.classes, n_classes=n_classes)
    for subset in ("dev", "eval"):
        (out / AUDIO_DIRS[subset]).mkdir(parents=True, exist_ok=True)
    chunks = np.array_split(np.arange(len(table)), max(1, min(len(table), 8 * n_jobs)))
    Parallel(n_jobs=n_jobs)(delayed(_write_items)(table.iloc[chunk], out, sr=sr,
                                                  n_samples=round(duration * sr))
                            for chunk in chunks if chunk.size)
    truth = out / GROUND_TRUTH
    truth.mkdir(parents=True, exist_ok=True)
    speeds_of = class_speeds(dataset.classes, n_classes)
    classes = [variant_name(label, speed) for label in dataset.classes
               for speed in speeds_of[label]]
    mids = {name: f"/featurekit/{dataset.name}/{name}" for name in classes}

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
                                     for index, name in enumerate(classes))
    return table


def _write_items(items: pd.DataFrame, out: Path, *, sr: int, n_samples: int) -> None:
    def played(path: str, speed: float) -> np.ndarray:
        # Read at sr / speed and written at sr: the clip plays ``speed`` times faster.
        return load_audio(path, sr=round(sr / speed))[0]

    for item in items.itertuples():
        first = played(item.first, item.first_speed)
        second = (played(item.second, item.second_speed) if pd.notna(item.second)
                  else None)
        subset = "eval" if item.split == "eval" else "dev"
        soundfile.write(out / AUDIO_DIRS[subset] / f"{item.fname}.wav",
                        mix_pair(first, second, n_samples=n_samples), sr, subtype="PCM_16")
