"""Memory of frame sequences as the set grows: loaded into memory, or memory-mapped and read
batch by batch.

Issue #21 (memory that stays flat): the end-to-end stream's log-mel input and the sequence
heads' streams grow with the dataset (FSD50K's log-mel alone is about 4 GB). For each size
this script writes a feature store whose ``logmel`` branch holds synthetic log-mel frames
(``--frames`` x ``--bands`` per clip, float32, in parts of 256 clips, as the extractor writes
them), then, each in a fresh process:

* ``memory``: :func:`~featurekit.store.sequences.load_sequences` into memory, then one epoch
  of the public :class:`~featurekit.learn.torch.e2e.E2EClassifier` on every clip;
* ``mapped``: the same load into ``.npy`` memory maps (``directory=``, as ``featurekit
  benchmark`` does), then the same epoch on a :class:`~featurekit.learn.rows.RowView` of
  them, read batch by batch.

The process's resident memory is sampled every 20 ms and split as the kernel counts it:
``anon`` (the process's own memory: what must fit in RAM) and ``file`` (pages of mapped
files: page cache the kernel may drop at any time). Reported: the array's size, seconds and
the peak of each during the load and during the epoch.

    python benchmarks/bench_sequence_memory.py --clips 2000,8000,32000 --work /tmp/seqmem
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

WORKER = r"""
import json, sys, tempfile, threading, time
import numpy as np
import torch
from featurekit.learn.rows import RowView
from featurekit.learn.torch.e2e import E2EClassifier
from featurekit.store.reader import FeatureStore
from featurekit.store.sequences import load_sequences

spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])


def status():
    fields = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "RssShmem"):
                fields[key] = int(value.split()[0]) * 1024
    return fields


class Peaks:
    def __init__(self):
        self.anon = self.file = 0
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while self.running:
            now = status()
            self.anon = max(self.anon, now["RssAnon"])
            self.file = max(self.file, now["RssFile"] + now["RssShmem"])
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        return {"anon": self.anon, "file": self.file}


store = FeatureStore(spec["store"])
ids = [f"clip{i:06d}" for i in range(spec["clips"])]
y = np.arange(spec["clips"]) % 10
baseline = status()["RssAnon"]
with tempfile.TemporaryDirectory(dir=spec["work"]) as directory:
    peaks, started = Peaks(), time.perf_counter()
    X = load_sequences(store, "synthetic", ["e2e"], ids,
                       directory=directory if spec["mode"] == "mapped" else None)["e2e"]
    load = {"s": time.perf_counter() - started, **peaks.stop()}
    if spec["mode"] == "mapped":
        X = RowView(X, np.arange(len(X)))
    peaks, started = Peaks(), time.perf_counter()
    E2EClassifier(channels=(8, 16, 16, 32), max_epochs=1, batch_size=64, device="cpu",
                  validation_kind="none", n_jobs=spec["threads"], random_state=0).fit(X, y)
    fit = {"s": time.perf_counter() - started, **peaks.stop()}
print(json.dumps({"baseline_anon": baseline, "load": load, "fit": fit,
                  "array_bytes": int(np.prod(X.shape)) * 4}))
"""


def write_store(path: Path, n_clips: int, n_frames: int, n_bands: int) -> None:
    """A store whose ``logmel`` branch holds ``n_clips`` clips of synthetic log-mel frames
    (lengths 50-100 % of ``n_frames``), written 256 clips per part."""
    from featurekit.store.reader import FeatureStore
    from featurekit.store.records import ClipResult

    if (path / "done").exists():
        return
    store = FeatureStore(path)
    rng = np.random.default_rng(0)
    bands = [f"logmel.band_{i:03d}" for i in range(n_bands)]
    with store.writer("synthetic", "logmel", feature_names=["logmel.mean"],
                      provenance={"config_hash": "synthetic"}, frames=True,
                      overwrite=True) as writer:
        for start in range(0, n_clips, 256):
            ids = [f"clip{i:06d}" for i in range(start, min(n_clips, start + 256))]
            clips = pd.DataFrame({"clip_id": ids, "fold": 1, "label": "x", "label_id": 0,
                                  "path": [f"{clip}.wav" for clip in ids]})
            results = []
            for _ in ids:
                length = int(rng.integers(n_frames // 2, n_frames + 1))
                frames = pd.DataFrame(rng.normal(size=(length, n_bands)).astype(np.float32),
                                      columns=bands)
                frames.insert(0, "time_s", np.arange(length) * 0.032)
                results.append(ClipResult(np.zeros(1, np.float32), frames=frames))
            writer.write_batch(clips, results)
    (path / "done").touch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="2000,8000,32000",
                        help="comma-separated set sizes (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=200, help="longest clip's frames")
    parser.add_argument("--bands", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", required=True, help="directory for the stores and maps")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    gib = 1024 ** 3
    print("| clips | array (GiB) | mode | load s | load peak anon / file (GiB) | "
          "epoch s | epoch peak anon / file (GiB) |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for n_clips in (int(size) for size in args.clips.split(",")):
        store = work / f"store-{n_clips}"
        write_store(store, n_clips, args.frames, args.bands)
        for mode in ("memory", "mapped"):
            spec = {"store": str(store), "clips": n_clips, "mode": mode, "work": str(work),
                    "threads": args.threads}
            done = subprocess.run([sys.executable, "-c", WORKER, json.dumps(spec)],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                print(f"| {n_clips} | | {mode} | failed: "
                      f"{done.stderr.strip().splitlines()[-1]} | | | |", flush=True)
                continue
            row = json.loads(done.stdout.strip().splitlines()[-1])
            load, fit = row["load"], row["fit"]
            print(f"| {n_clips} | {row['array_bytes'] / gib:.2f} | {mode} | {load['s']:.1f} | "
                  f"{load['anon'] / gib:.2f} / {load['file'] / gib:.2f} | {fit['s']:.1f} | "
                  f"{fit['anon'] / gib:.2f} / {fit['file'] / gib:.2f} |", flush=True)


if __name__ == "__main__":
    main()
