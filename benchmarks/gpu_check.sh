#!/usr/bin/env bash
# The GPU path, proven in one run on a CUDA machine (well inside the 15 minutes a borrowed GPU gives):
#   1. the CUDA-only tests,
#   2. the training-throughput benchmark on the GPU (the fast CNN at airbench's widths, bf16),
#   3. a 300-second cifar10-cnn search on the CIFAR-10 JPEG copy, then export and retrain of its best,
# and one summary at the end. Usage, from the repository root:
#   CIFAR_JPEG=/path/to/cifar10-jpeg.tar.gz bash benchmarks/gpu_check.sh
# CIFAR_JPEG defaults to ../shared/datasets/cifar10-jpeg/cifar10-jpeg.tar.gz (a folder works too).
# Needs a venv with the CUDA build of torch 2.13.0 at .venv (made here if absent: on a CUDA machine
# pip's torch is the CUDA build).
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv && .venv/bin/pip install --quiet -c constraints.txt -e '.[test]' || exit 1
fi
PY=.venv/bin/python
$PY -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: run this on a GPU machine')" || exit 2
$PY -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)" | tee "$OUT/summary.txt"

echo "== 1. CUDA-only tests" | tee -a "$OUT/summary.txt"
$PY -m pytest -q -n 0 -p no:cacheprovider tests/training/test_fit.py tests/training/test_models.py 2>&1 \
  | tail -3 | tee -a "$OUT/summary.txt"

echo "== 2. throughput (GPU, bf16)" | tee -a "$OUT/summary.txt"
timeout 180 $PY benchmarks/throughput.py --device cuda --repeats 3 --json "$OUT/throughput.json" 2>&1 \
  | tail -12 | tee -a "$OUT/summary.txt"

echo "== 3. cifar10-cnn --timeout 300 on CIFAR-10 (JPEG q75 copy), export, retrain" | tee -a "$OUT/summary.txt"
SRC="${CIFAR_JPEG:-../shared/datasets/cifar10-jpeg/cifar10-jpeg.tar.gz}"
if [ -d "$SRC" ]; then DATA="$SRC"; else
  mkdir -p "$OUT/data" && tar xzf "$SRC" -C "$OUT/data" || exit 2
  DATA="$(dirname "$(find "$OUT/data" -maxdepth 3 -type d -name train | head -1)")"
fi
DB="sqlite:///$OUT/gpu.db"
.venv/bin/anncnn-tune optimize --study cifar10-cnn --dataset "$DATA" --timeout 300 --n-trials 200 \
  --device cuda --storage "$DB" --quiet 2>&1 | tail -3 | tee -a "$OUT/summary.txt"
NAME="$(.venv/bin/anncnn-tune studies --storage "$DB" 2>/dev/null | grep -o 'cifar10-cnn-on-[A-Za-z0-9._-]*' | head -1)"
.venv/bin/anncnn-tune export --study "$NAME" --storage "$DB" -o "$OUT/best.yaml" 2>&1 | tail -1 | tee -a "$OUT/summary.txt"
( time .venv/bin/anncnn-tune retrain "$OUT/best.yaml" --out "$OUT/retrain" --device cuda ) 2>&1 | tail -8 \
  | tee -a "$OUT/summary.txt"
echo "== done in $(( $(date +%s) - START )) s; files in $OUT" | tee -a "$OUT/summary.txt"
