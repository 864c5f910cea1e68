"""Speed of the handcrafted descriptors, per family and in total, on one core.

Prints a Markdown table: milliseconds per clip and real-time factor (audio seconds processed
per second of compute), for featurekit's families, and side by side on the same waveforms
for the reference feature sets (Essentia's low-level extractors, openSMILE's eGeMAPSv02 and
ComParE_2016 functionals, each as its store branch computes it, resampling included) and a
straightforward librosa script (every feature function called on the raw signal,
``librosa.pyin`` for pitch).

Usage::

    python benchmarks/bench_descriptors.py                         # 20 synthetic 4-s clips
    python benchmarks/bench_descriptors.py --data-dir ../shared/data/urbansound8k-subset \
        --n-clips 50
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from featurekit import ExtractionConfig, load_audio
from featurekit.computers.sets import FEATURE_SETS, FEATUREKIT_SET, set_computer
from featurekit.config import FAMILIES
from featurekit.descriptors import clip_vector, feature_names
from featurekit.dsp.analysis import Analysis
from featurekit.errors import MissingDependencyError

SR = 22050
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}


def synthetic_clips(n: int, seconds: float) -> list[np.ndarray]:
    """Tones with harmonics, chirps and noise bursts: a mix of voiced and unvoiced frames."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    clips = []
    for i in range(n):
        f0 = rng.uniform(80, 800)
        harmonic = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
        noise = rng.standard_normal(t.size) * (t > seconds / 2)
        envelope = np.exp(-t * rng.uniform(0.2, 2.0))
        clips.append((0.2 * harmonic * envelope + 0.05 * (i % 3) * noise).astype(np.float32))
    return clips


def folder_clips(root: Path, n: int) -> list[np.ndarray]:
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)[:n]
    if not paths:
        raise SystemExit(f"no audio files under {root}")
    return [load_audio(p, sr=SR)[0] for p in paths]


def featurekit_runner(families: tuple[str, ...]) -> Callable[[np.ndarray], object]:
    config = ExtractionConfig(families=families)
    return lambda y: clip_vector(Analysis(y, config))


def reference_set_runner(name: str) -> tuple[Callable[[np.ndarray], object], int] | None:
    """The set's branch computer on an array, and its column count; None when its engine is
    not installed."""
    try:
        computer = set_computer(name)
    except MissingDependencyError:
        return None

    def run(y: np.ndarray) -> object:
        (result,) = computer.compute_batch([y], sr=SR)
        if isinstance(result, BaseException):
            raise result
        return result

    return run, len(computer.feature_names)


def librosa_script(y: np.ndarray) -> np.ndarray:
    """What a straightforward librosa feature script does: one call per feature."""
    import librosa

    kw = {"n_fft": 2048, "hop_length": 512}
    frames = [
        librosa.feature.spectral_centroid(y=y, sr=SR, **kw),
        librosa.feature.spectral_bandwidth(y=y, sr=SR, **kw),
        librosa.feature.spectral_rolloff(y=y, sr=SR, roll_percent=0.85, **kw),
        librosa.feature.spectral_rolloff(y=y, sr=SR, roll_percent=0.95, **kw),
        librosa.feature.spectral_flatness(y=y, **kw),
        librosa.feature.spectral_contrast(y=y, sr=SR, **kw),
        librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512),
        librosa.feature.rms(y=y, frame_length=2048, hop_length=512),
        librosa.feature.chroma_stft(y=y, sr=SR, **kw),
        librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=SR, n_mels=64, **kw)),
    ]
    mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20, n_mels=64, **kw)
    frames += [mfcc, librosa.feature.delta(mfcc, mode="nearest"),
               librosa.feature.delta(mfcc, order=2, mode="nearest")]
    f0, voiced, prob = librosa.pyin(y, fmin=65.0, fmax=2093.0, sr=SR, frame_length=2048,
                                    hop_length=512)
    stacked = np.concatenate(frames, axis=0)
    pitch = np.array([np.nanmedian(f0) if voiced.any() else 0.0, voiced.mean(), prob.mean()])
    return np.concatenate([stacked.mean(axis=1), stacked.std(axis=1), pitch])


def time_per_clip(run: Callable[[np.ndarray], object], clips: list[np.ndarray],
                  repeats: int) -> float:
    """Median over repeats of the mean seconds per clip (one warm-up call first)."""
    run(clips[0])
    totals = []
    for _ in range(repeats):
        start = time.perf_counter()
        for y in clips:
            run(y)
        totals.append((time.perf_counter() - start) / len(clips))
    return statistics.median(totals)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder of audio files (default: synthetic)")
    parser.add_argument("--n-clips", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0, help="synthetic clip length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-librosa", action="store_true")
    parser.add_argument("--skip-reference-sets", action="store_true",
                        help="skip Essentia and openSMILE")
    args = parser.parse_args()

    clips = (folder_clips(args.data_dir, args.n_clips) if args.data_dir
             else synthetic_clips(args.n_clips, args.seconds))
    audio_seconds = statistics.mean(y.size / SR for y in clips)
    source = args.data_dir or f"synthetic {args.seconds:g}-s clips"
    print(f"{len(clips)} clips from {source}, mean {audio_seconds:.2f} s, one core\n")

    rows: list[tuple[str, float]] = []
    full = f"featurekit all families ({len(feature_names(ExtractionConfig()))} columns)"
    with threadpool_limits(limits=1):
        for families in (*((family,) for family in FAMILIES), FAMILIES):
            label = full if families == FAMILIES else f"featurekit {families[0]}"
            rows.append((label, time_per_clip(featurekit_runner(families), clips, args.repeats)))
        for name in () if args.skip_reference_sets else FEATURE_SETS:
            runner = None if name == FEATUREKIT_SET else reference_set_runner(name)
            if runner is not None:
                rows.append((f"{name} ({runner[1]} columns)",
                             time_per_clip(runner[0], clips, args.repeats)))
        if not args.skip_librosa:
            rows.append(("straightforward librosa script (pyin)",
                         time_per_clip(librosa_script, clips, 1)))

    total = dict(rows)[full]
    print("| system | ms per clip | ms per 4 s of audio | real-time factor | vs featurekit |")
    print("|---|---:|---:|---:|---:|")
    for label, seconds in rows:
        per_4s = 1000 * seconds * 4.0 / audio_seconds
        print(f"| {label} | {1000 * seconds:.1f} | {per_4s:.1f} | "
              f"{audio_seconds / seconds:.0f}x | {seconds / total:.1f}x |")


if __name__ == "__main__":
    main()
