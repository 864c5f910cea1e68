"""Speed of featurekit's neural embedding: clips per second of each stage, and of the models.

Stages (the default; needs ``--data-dir``): the clips of a dataset as ``featurekit embed``
computes them, on the CPU with ``--jobs`` torch threads and, when torch sees one, on the GPU:

* decoding: decoding and resampling to the model's rate by ``--jobs`` threads
  (:func:`featurekit.neural.decoding.load_clips`; CPU work, the same for both devices);
* front end: the model's log-mel on the decoded clips, in batches of the device's default
  size (clips of equal length together);
* network: the forward pass after the front end (whole pass minus front end);
* embed: the whole of ``featurekit embed``
  (:func:`featurekit.computers.runner.run_branch` into a fresh
  store: decoding threads, network and Parquet parts together).

Each stage is the best of ``--repeats`` timed runs after one warm-up; embed runs once, after a
warm-up on one batch. Weights are untrained by default (speed does not depend on their
values).

``--models``: milliseconds per 4-s clip of mn04_as and Cnn14 (featurekit code), and of Cnn14
through an "upstream-style" forward pass: the published PANNs structure restated operation by
operation (torchlibrosa's two separate real/imaginary STFT convolutions, power, mel matmul,
power_to_db with its reference term, bn0 between transposes, conv blocks with in-place ReLU
and average pooling, explicit eval-mode dropout calls), run on the *same* weights. featurekit
differs from it in computing both STFT kernels in one convolution; the benchmark also checks
that both give the same embedding. Columns: CPU with each of ``--threads`` torch threads at
batch sizes ``--batches``, and the GPU when CUDA is available.

Usage::

    python benchmarks/bench_neural.py --dataset esc10 --data-dir ../shared/data/esc10 --jobs 2
    python benchmarks/bench_neural.py --models [--repeats 3] [--threads 1 2] [--batches 1 8 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from featurekit.computers.neural import NeuralBranch
from featurekit.computers.runner import run_branch
from featurekit.datasets import load_dataset
from featurekit.neural import load_pretrained
from featurekit.neural.decoding import load_clips
from featurekit.neural.embedding import MIN_DURATION_S, float32_precision, torch_threads
from featurekit.neural.panns import PannsTagger
from featurekit.neural.registry import default_batch_size

CLIP_S = 4.0


def upstream_style_cnn14(model: PannsTagger, waveforms: torch.Tensor) -> torch.Tensor:
    """Cnn14 embedding computed the way the published code does, on ``model``'s weights."""
    stft = model.spectrogram_extractor.stft
    x = F.pad(waveforms[:, None, :], (stft.n_fft // 2, stft.n_fft // 2), mode="reflect")
    real = stft.conv_real(x).transpose(1, 2)[:, None]
    imag = stft.conv_imag(x).transpose(1, 2)[:, None]
    x = real ** 2 + imag ** 2
    x = torch.matmul(x, model.logmel_extractor.melW)
    x = 10.0 * torch.log10(torch.clamp(x, min=1e-10)) - 10.0 * torch.log10(torch.tensor(1.0))
    x = model.bn0(x.transpose(1, 3)).transpose(1, 3)
    for index in range(1, 7):
        block = getattr(model, f"conv_block{index}")
        x = F.relu_(block.bn1(block.conv1(x)))
        x = F.relu_(block.bn2(block.conv2(x)))
        x = F.avg_pool2d(x, kernel_size=(2, 2) if index < 6 else (1, 1))
        x = F.dropout(x, p=0.2, training=False)
    x = torch.mean(x, dim=3)
    x = torch.max(x, dim=2)[0] + torch.mean(x, dim=2)
    x = F.dropout(x, p=0.5, training=False)
    return F.relu_(model.fc1(x))


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _best_seconds(run: Callable[[], object], repeats: int, device: str) -> float:
    """Best wall time of ``repeats`` runs of ``run`` after one warm-up, seconds."""
    run()
    _sync(device)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def models_table(args: argparse.Namespace) -> None:
    """Milliseconds per 4-s clip of each model, batch size and device (``--models``)."""
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    columns = [(f"cpu/{n}thr", "cpu", n) for n in args.threads]
    if "cuda" in devices:
        columns.append(("cuda", "cuda", None))
    header = f"{'model':<22}{'batch':>6}" + "".join(f"{name:>12}" for name, _, _ in columns)
    print(f"ms per {CLIP_S:g}-s clip (best of {args.repeats}); torch {torch.__version__}")
    print(header)
    print("-" * len(header))
    models = {device: {"mn04_as": load_pretrained("mn04_as", "untrained", device=device),
                       "cnn14": load_pretrained("cnn14", "untrained", device=device)}
              for device in devices}
    # Same network, same weights: the two Cnn14 forward passes must agree.
    probe = torch.randn(2, int(CLIP_S * 32000), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        cnn14 = models["cpu"]["cnn14"]
        assert torch.allclose(cnn14(probe)["embedding"], upstream_style_cnn14(cnn14, probe),
                              rtol=1e-4, atol=1e-5)
    rows = [("mn04_as", "mn04_as", False), ("cnn14", "cnn14", False),
            ("cnn14 (upstream-style)", "cnn14", True)]
    for label, name, upstream in rows:
        for batch_size in args.batches:
            cells = []
            for _, device, threads in columns:
                model = models[device][name]
                batch = torch.randn(batch_size, int(CLIP_S * model.sample_rate),
                                    generator=torch.Generator().manual_seed(1)).to(device)
                run = ((lambda x, m=model: upstream_style_cnn14(m, x)) if upstream else model)

                def forward(run=run, batch=batch) -> None:
                    with torch.inference_mode(), float32_precision(allow_tf32=False):
                        run(batch)

                if threads is not None:
                    torch.set_num_threads(threads)
                seconds = _best_seconds(forward, args.repeats, device)
                cells.append(1000.0 * seconds / batch_size)
            print(f"{label:<22}{batch_size:>6}" + "".join(f"{c:>12.1f}" for c in cells),
                  flush=True)


def _batches(waveforms: list[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Clips of equal length stacked ``size`` at a time (the last batch of a length smaller)."""
    by_length: dict[int, list[np.ndarray]] = defaultdict(list)
    for y in waveforms:
        by_length[y.size].append(y)
    for same in by_length.values():
        for first in range(0, len(same), size):
            yield np.stack(same[first:first + size])


def stages_table(args: argparse.Namespace) -> None:
    """Clips per second of decoding, front end, network and the whole command, per device."""
    dataset = load_dataset(args.dataset, args.data_dir)
    clips = dataset.clips.iloc[:args.clips].reset_index(drop=True)
    paths = clips["path"].astype(str).tolist()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rate = load_pretrained(args.model, "untrained", device="cpu").sample_rate
    min_samples = round(MIN_DURATION_S * rate)

    def decode() -> list:
        return list(load_clips(paths, rate, min_samples=min_samples, n_jobs=args.jobs))

    decoding = len(paths) / _best_seconds(decode, args.repeats, "cpu")
    waveforms = [loaded[0] for loaded in decode() if not isinstance(loaded, BaseException)]
    print(f"{dataset.name}: {len(paths)} clips ({len(waveforms)} decoded), {args.model} "
          f"({args.weights} weights), --jobs {args.jobs}, torch {torch.__version__}; clips/s, "
          f"best of {args.repeats}")
    header = (f"{'device':<8}{'batch':>6}{'decoding':>10}{'front end':>11}{'network':>9}"
              f"{'embed':>8}")
    print(header)
    print("-" * len(header))
    for device in devices:
        model = load_pretrained(args.model, args.weights, device=device)
        size = args.batch_size or default_batch_size(device)
        batches = [torch.from_numpy(batch) for batch in _batches(waveforms, size)]
        if device == "cuda":
            batches = [batch.to(device) for batch in batches]

        def run(step: Callable[[torch.Tensor], object], on: list[torch.Tensor] = batches):
            with torch.inference_mode(), float32_precision(allow_tf32=False):
                for batch in on:
                    step(batch)

        with torch_threads(args.jobs):
            front_end = _best_seconds(lambda m=model: run(m.logmel), args.repeats, device)
            forward = _best_seconds(lambda m=model: run(m), args.repeats, device)
            branch = NeuralBranch(args.model, args.weights, n_threads=args.jobs,
                                  n_workers=args.jobs, batch_size=args.batch_size,
                                  device=device)
            subset = SimpleNamespace(name=dataset.name, clips=clips)
            with tempfile.TemporaryDirectory(prefix="bench-neural-") as store:
                run_branch(branch, SimpleNamespace(name="warm-up", clips=clips.iloc[:size]),
                           store, progress=False)
                embed = run_branch(branch, subset, store, progress=False)
        n = len(waveforms)
        print(f"{device:<8}{size:>6}{decoding:>10.1f}{n / front_end:>11.1f}"
              f"{n / (forward - front_end):>9.1f}{embed.done / embed.seconds:>8.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="esc10")
    parser.add_argument("--data-dir", help="dataset directory (stages table)")
    parser.add_argument("--clips", type=int, default=400, help="first clips of the dataset")
    parser.add_argument("--model", default="mn04_as")
    parser.add_argument("--weights", default="untrained")
    parser.add_argument("--jobs", type=int, default=2,
                        help="decoding threads and torch threads")
    parser.add_argument("--batch-size", type=int, help="default: the device's")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", action="store_true",
                        help="the models table instead (ms per synthetic 4-s clip)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    if args.models:
        models_table(args)
    elif args.data_dir is None:
        parser.error("the stages table needs --data-dir (or ask for --models)")
    else:
        stages_table(args)


if __name__ == "__main__":
    main()
