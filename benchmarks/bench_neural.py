"""Speed of featurekit's neural models: milliseconds per 4-s clip.

Rows: mn04_as and Cnn14 (featurekit code), and Cnn14 through an "upstream-style" forward pass:
the published PANNs structure restated operation by operation (torchlibrosa's two separate
real/imaginary STFT convolutions, power, mel matmul, power_to_db with its reference term,
bn0 between transposes, conv blocks with in-place ReLU and average pooling, explicit eval-mode
dropout calls), run on the *same* weights. featurekit differs from it in computing both STFT
kernels in one convolution; the benchmark also checks that both give the same embedding.
Weights are untrained (speed does not depend on their values).

Columns: CPU with 1 and 2 torch threads at batch sizes 1, 8 and 32, and the GPU when CUDA is
available. Each cell is the best of ``--repeats`` timed runs after one warm-up, divided by the
batch size.

Usage::

    python benchmarks/bench_neural.py [--repeats 3] [--threads 1 2] [--batches 1 8 32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from featurekit.neural import load_pretrained
from featurekit.neural.panns import PannsTagger

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


def _ms_per_clip(run: Callable[[torch.Tensor], object], batch: torch.Tensor,
                 repeats: int, sync: Callable[[], None]) -> float:
    with torch.inference_mode():
        run(batch)
        sync()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            run(batch)
            sync()
            best = min(best, time.perf_counter() - start)
    return 1000.0 * best / batch.shape[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()

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
                sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
                if threads is not None:
                    torch.set_num_threads(threads)
                cells.append(_ms_per_clip(run, batch, args.repeats, sync))
            print(f"{label:<22}{batch_size:>6}" + "".join(f"{c:>12.1f}" for c in cells),
                  flush=True)


if __name__ == "__main__":
    main()
