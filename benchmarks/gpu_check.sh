#!/usr/bin/env bash
# featurekit on a GPU, in a few minutes: what a CPU-only machine cannot check.
#
#   FEATUREKIT_TEST_DATA=DIR FEATUREKIT_WEIGHTS_DIR=DIR bash benchmarks/gpu_check.sh
#
# FEATUREKIT_TEST_DATA holds esc10/ (../shared/data); FEATUREKIT_WEIGHTS_DIR holds the mn04_as
# checkpoint, golden/ and panns-golden/ (../shared/weights). Runs from any directory, needs no
# install of featurekit itself (its dependencies: see README), and prints:
#   1. the mn04_as and Cnn10 golden tests on CUDA (full float32) and the CUDA/CPU agreement of
#      embeddings on generated clips (pytest);
#   2. `featurekit embed --model mn04_as --device cuda` of ESC-10 into fresh stores with the
#      defaults (batch 64 on CUDA) and every core decoding, then one decoding thread
#      (--jobs 1); clips/s in each summary line, and how far the CUDA embeddings are from a
#      CPU run's;
#   3. benchmarks/bench_neural.py: clips/s of decoding, front end, network and the whole
#      command on the CPU and on CUDA;
#   4. benchmarks/bench_decoding.py: decoding threads against worker processes, and the share
#      of the GIL a decoding thread holds (which the thread launching CUDA kernels waits on).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FEATUREKIT_TEST_DATA:?set it to the folder holding esc10/ (../shared/data)}"
: "${FEATUREKIT_WEIGHTS_DIR:?set it to the shared weights folder (../shared/weights)}"
export FEATUREKIT_TEST_DATA FEATUREKIT_WEIGHTS_DIR FEATUREKIT_OFFLINE=1 FEATUREKIT_NO_PROGRESS=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
esc10="$FEATUREKIT_TEST_DATA/esc10"
jobs=$(nproc)
stores=$(mktemp -d)
trap 'rm -rf "$stores"' EXIT

python -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; \
print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))"

echo "== 1. golden outputs on CUDA, CUDA against CPU"
python -m pytest -q -p no:cacheprovider -rs tests/test_neural_fidelity.py \
    tests/test_neural_api.py -k "golden or cuda"

echo "== 2. featurekit embed of ESC-10 (mn04_as)"
embed() {
    python -m featurekit embed --dataset esc10 --data-dir "$esc10" --model mn04_as "$@" \
        2>&1 | grep -v "partial copy"
}
echo "-- cuda, --jobs $jobs (defaults otherwise)"
embed --store "$stores/cuda" --device cuda --jobs "$jobs"
echo "-- cuda, --jobs 1"
embed --store "$stores/cuda-jobs1" --device cuda --jobs 1
echo "-- cpu, --jobs $jobs"
embed --store "$stores/cpu" --device cpu --jobs "$jobs"
python - "$stores" <<'EOF'
import sys

import numpy as np

from featurekit.store.reader import FeatureStore


def embeddings(path):
    store = FeatureStore(path)
    names = store.feature_names("esc10", "neural.mn04_as")
    table = store.read("esc10", branches="neural.mn04_as").sort_values("clip_id")
    return table[names].to_numpy(np.float64)


cuda, cpu = embeddings(f"{sys.argv[1]}/cuda"), embeddings(f"{sys.argv[1]}/cpu")
cosine = (cuda * cpu).sum(1) / np.linalg.norm(cuda, axis=1) / np.linalg.norm(cpu, axis=1)
print(f"cuda against cpu, {len(cpu)} clips: min cosine {cosine.min():.7f}, max abs difference "
      f"{np.abs(cuda - cpu).max():.2e} (largest |value| {np.abs(cpu).max():.2f})")
EOF

echo "== 3. bench_neural.py, ESC-10, --jobs $jobs"
python benchmarks/bench_neural.py --dataset esc10 --data-dir "$esc10" --jobs "$jobs" \
    2>&1 | grep -v "partial copy"

echo "== 4. bench_decoding.py, ESC-10, --jobs $jobs"
python benchmarks/bench_decoding.py --dataset esc10 --data-dir "$esc10" --jobs "$jobs" \
    2>&1 | grep -v "partial copy"
