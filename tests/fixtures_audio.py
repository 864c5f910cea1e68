"""Generated mini datasets in the official UrbanSound8K and ESC-50 layouts (and a folder layout).

Shared by the test modules (``from fixtures_audio import make_urbansound8k``). Everything is
generated, deterministic, and small: a few short clips per fold in mixed sample rates
(8 / 22.05 / 44.1 / 48 kHz), mono and stereo, 16/24-bit and float WAV, plus FLAC and OGG
copies whose metadata still says ``.wav`` (as in the real copies under ../shared). The
official metadata columns are written exactly. Clip content depends on the class (a
class-specific pitch, harmonic tilt, noise level and tremolo rate), so that a classifier on
good features beats chance by far.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf


@dataclass(frozen=True)
class AudioFormat:
    """How one generated clip is stored."""

    samplerate: int
    channels: int
    subtype: str
    extension: str


#: Formats cycled through clip by clip.
MIXED_FORMATS = (
    AudioFormat(22050, 1, "PCM_16", ".wav"),
    AudioFormat(44100, 2, "PCM_24", ".wav"),
    AudioFormat(8000, 1, "FLOAT", ".wav"),
    AudioFormat(48000, 2, "PCM_16", ".flac"),
    AudioFormat(44100, 1, "VORBIS", ".ogg"),
    AudioFormat(48000, 1, "PCM_24", ".wav"),
)
#: One plain format, for tests that need identical decoding everywhere.
WAV_ONLY = (AudioFormat(22050, 1, "PCM_16", ".wav"),)

#: UrbanSound8K classes, position = official classID.
URBANSOUND8K_CLASSES = (
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
)
#: Official ESC-50 targets of some classes (enough for the fixtures).
ESC50_TARGETS = {
    "dog": 0, "rooster": 1, "pig": 2, "cow": 3, "frog": 4, "rain": 10, "sea_waves": 11,
    "crackling_fire": 12, "crying_baby": 20, "sneezing": 21, "clapping": 22,
    "clock_tick": 38, "helicopter": 40, "chainsaw": 41, "siren": 42, "car_horn": 43,
}
#: The ESC-10 classes.
ESC10_CLASSES = ("dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby",
                 "sneezing", "clock_tick", "helicopter", "chainsaw")

#: Kinds of broken files added by ``with_bad_files=True``, in source-id order.
BAD_FILE_KINDS = ("corrupt", "empty", "silent", "nan")
_BAD_SOURCE_ID = 990001  # fsID / src_file of the first bad clip; the others follow


def class_signal(class_index: int, *, sr: int, duration: float, seed: int) -> np.ndarray:
    """A mono test signal whose character depends on ``class_index``.

    Harmonic tone at ``110 * 2**(5 * class_index / 12)`` Hz (detuned by up to ±2 % per clip)
    with a class-dependent spectral tilt, tremolo rate and noise level; peak about 0.5.
    Returns float64 samples, shape ``(round(duration * sr),)``.
    """
    rng = np.random.default_rng(seed)
    n = max(1, round(duration * sr))
    t = np.arange(n) / sr
    f0 = 110.0 * 2.0 ** (5 * class_index / 12) * (1 + rng.uniform(-0.02, 0.02))
    tilt = 0.3 + 0.15 * (class_index % 4)
    y = np.zeros(n)
    for harmonic in range(1, 9):
        if harmonic * f0 < 0.45 * sr:
            y += harmonic ** -(1 / tilt) * np.sin(2 * np.pi * harmonic * f0 * t
                                                 + rng.uniform(0, 2 * np.pi))
    y *= 1 + 0.5 * np.sin(2 * np.pi * (2 + 3 * (class_index % 5)) * t)
    y += (0.02 + 0.08 * (class_index % 3)) * rng.standard_normal(n)
    return 0.5 * y / np.max(np.abs(y))


def write_clip(path: Path, y: np.ndarray, fmt: AudioFormat) -> Path:
    """Write mono ``y`` in ``fmt`` (stereo gets a quieter, delayed second channel)."""
    data = y if fmt.channels == 1 else np.stack([y, 0.7 * np.roll(y, 7)], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data.astype(np.float32), fmt.samplerate, subtype=fmt.subtype)
    return path


def _write_bad(path: Path, kind: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "corrupt":
        path.write_bytes(b"RIFF" + rng.integers(0, 256, 400, dtype=np.uint8).tobytes())
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "silent":
        sf.write(path, np.zeros(11025, dtype=np.float32), 22050, subtype="PCM_16")
    elif kind == "nan":
        y = np.full(11025, np.nan, dtype=np.float32)
        sf.write(path, y, 22050, subtype="FLOAT")
    else:
        raise ValueError(f"unknown bad file kind {kind!r}")


def _write_csv(path: Path, header: Sequence[str], rows: list[list[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _format_for(formats: Sequence[AudioFormat], fold: int, index: int,
                n_classes: int) -> AudioFormat:
    # Shifted per fold and per round over the classes, so a class is never tied to a format.
    return formats[(index + fold + index // n_classes) % len(formats)]


def _duration(base: float, index: int) -> float:
    return base * (0.6 + 0.8 * ((index * 7) % 10) / 9)


def make_urbansound8k(root: str | Path, *, folds: Sequence[int] = (1, 2, 3),
                      clips_per_fold: int = 6,
                      classes: Sequence[str] = ("air_conditioner", "car_horn", "dog_bark"),
                      duration: float = 0.5,
                      formats: Sequence[AudioFormat] = MIXED_FORMATS,
                      with_bad_files: bool = False,
                      metadata_only_folds: Sequence[int] = ()) -> Path:
    """Write a mini UrbanSound8K under ``root/UrbanSound8K`` and return ``root``.

    Layout and metadata as the official release: ``audio/fold<k>/<fsID>-<classID>-<occ>-
    <slice>.<ext>`` and ``metadata/UrbanSound8K.csv`` with columns
    ``slice_file_name,fsID,start,end,salience,fold,classID,class`` (file names always
    ``.wav``). Clips cycle through ``classes`` and ``formats``; two consecutive clips are
    slices of one recording (same fsID, same fold). ``with_bad_files`` adds to the first fold
    one clip of each :data:`BAD_FILE_KINDS` (see :func:`bad_clip_ids`), labelled
    ``classes[0]``. ``metadata_only_folds`` are listed in the metadata without audio (a
    partial copy of a complete metadata file).
    """
    root = Path(root)
    base = root / "UrbanSound8K"
    rows: list[list[object]] = []
    for fold in [*folds, *metadata_only_folds]:
        for i in range(clips_per_fold):
            label = classes[i % len(classes)]
            class_id = URBANSOUND8K_CLASSES.index(label)
            fs_id = 100000 + 1000 * fold + i // 2
            name = f"{fs_id}-{class_id}-0-{i % 2}"
            length = _duration(duration, i)
            start = round(1.5 * (i % 2), 6)
            rows.append([f"{name}.wav", fs_id, start, round(start + length, 6), 1 + i % 2,
                         fold, class_id, label])
            if fold in metadata_only_folds:
                continue
            fmt = _format_for(formats, fold, i, len(classes))
            y = class_signal(class_id, sr=fmt.samplerate, duration=length,
                             seed=1000 * fold + i)
            write_clip(base / "audio" / f"fold{fold}" / f"{name}{fmt.extension}", y, fmt)
    if with_bad_files:
        fold, label = folds[0], classes[0]
        class_id = URBANSOUND8K_CLASSES.index(label)
        rng = np.random.default_rng(7)
        for offset, kind in enumerate(BAD_FILE_KINDS):
            name = f"{_BAD_SOURCE_ID + offset}-{class_id}-0-0"
            rows.append([f"{name}.wav", _BAD_SOURCE_ID + offset, 0.0, 0.5, 1, fold,
                         class_id, label])
            _write_bad(base / "audio" / f"fold{fold}" / f"{name}.wav", kind, rng)
    _write_csv(base / "metadata" / "UrbanSound8K.csv",
               ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID",
                "class"], rows)
    return root


def make_esc50(root: str | Path, *, folds: Sequence[int] = (1, 2, 3, 4, 5),
               clips_per_fold: int = 4, classes: Sequence[str] = ("dog", "rooster", "rain", "pig"),
               duration: float = 0.5, formats: Sequence[AudioFormat] = MIXED_FORMATS,
               with_bad_files: bool = False, root_dir: str = "ESC-50-master") -> Path:
    """Write a mini ESC-50 under ``root/<root_dir>`` and return ``root``.

    Layout and metadata as the official release: ``audio/<fold>-<src_file>-<take>-<target>
    .<ext>`` and ``meta/esc50.csv`` with columns
    ``filename,fold,target,category,esc10,src_file,take`` (file names always ``.wav``;
    ``esc10`` is ``True`` for the ESC-10 classes). ``classes`` must be keys of
    :data:`ESC50_TARGETS`. ``with_bad_files`` as in :func:`make_urbansound8k`. Pass
    ``root_dir=""`` to write ``audio/`` and ``meta/`` directly under ``root``.
    """
    root = Path(root)
    base = root / root_dir if root_dir else root
    rows: list[list[object]] = []
    for fold in folds:
        for i in range(clips_per_fold):
            label = classes[i % len(classes)]
            target = ESC50_TARGETS[label]
            src_file, take = 100000 + 1000 * fold + i // 2, "AB"[i % 2]
            name = f"{fold}-{src_file}-{take}-{target}"
            rows.append([f"{name}.wav", fold, target, label, label in ESC10_CLASSES,
                         src_file, take])
            fmt = _format_for(formats, fold, i, len(classes))
            y = class_signal(target, sr=fmt.samplerate, duration=_duration(duration, i),
                             seed=2000 * fold + i)
            write_clip(base / "audio" / f"{name}{fmt.extension}", y, fmt)
    if with_bad_files:
        fold, label = folds[0], classes[0]
        rng = np.random.default_rng(7)
        for offset, kind in enumerate(BAD_FILE_KINDS):
            name = f"{fold}-{_BAD_SOURCE_ID + offset}-A-{ESC50_TARGETS[label]}"
            rows.append([f"{name}.wav", fold, ESC50_TARGETS[label], label,
                         label in ESC10_CLASSES, _BAD_SOURCE_ID + offset, "A"])
            _write_bad(base / "audio" / f"{name}.wav", kind, rng)
    _write_csv(base / "meta" / "esc50.csv",
               ["filename", "fold", "target", "category", "esc10", "src_file", "take"], rows)
    return root


def bad_clip_ids(root: str | Path) -> dict[str, str]:
    """``{kind: clip_id}`` of the broken clips a ``make_*(..., with_bad_files=True)`` wrote."""
    root = Path(root)
    candidates = [(root / "UrbanSound8K" / "metadata" / "UrbanSound8K.csv", "fsID",
                   "slice_file_name"),
                  *((path, "src_file", "filename") for path in root.glob("**/meta/esc50.csv"))]
    for path, id_column, file_column in candidates:
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as handle:
                rows = list(csv.DictReader(handle))
            found = {int(row[id_column]) - _BAD_SOURCE_ID: Path(row[file_column]).stem
                     for row in rows if 0 <= int(row[id_column]) - _BAD_SOURCE_ID
                     < len(BAD_FILE_KINDS)}
            return {BAD_FILE_KINDS[offset]: clip_id for offset, clip_id in sorted(found.items())}
    raise FileNotFoundError(f"no generated dataset metadata under {root}")


def make_folder_dataset(root: str | Path, *, classes: Sequence[str] = ("high", "low"),
                        clips_per_class: int = 5, duration: float = 0.3,
                        formats: Sequence[AudioFormat] = WAV_ONLY) -> Path:
    """Write ``root/<class>/clip_<k><ext>`` (one sub-folder per label) and return ``root``."""
    root = Path(root)
    for class_index, label in enumerate(classes):
        for k in range(clips_per_class):
            fmt = formats[k % len(formats)]
            y = class_signal(3 * class_index, sr=fmt.samplerate, duration=duration,
                             seed=100 * class_index + k)
            write_clip(root / label / f"clip_{k:02d}{fmt.extension}", y, fmt)
    return root
