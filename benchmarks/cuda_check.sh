#!/usr/bin/env bash
# The GPU check in one script (about 8 minutes on one H200):
#  1. the CUDA tests: every method on CUDA, and CUDA-graph replays against eager runs;
#  2. VAE speed at CUB size, CUDA graphs off and on, one seed and 5 seeds batched;
#  3. GAN speed per epoch at CUB size (f-CLSWGAN, f-VAEGAN, TF-VAEGAN, LsrGAN);
#  4. 5 ACMR seeds at CUB size (100 VAE epochs) as planned, wall time and table;
#  5. one f-CLSWGAN and one LsrGAN seed at CUB size and 3 f-CLSWGAN at scale 0.25 at the reference
#     schedules, and Table 2;
#  6. 3 f-CLSWGAN seeds one after another against 3 processes sharing the GPU.
# Run from the repository root on a machine with a GPU, with the project installed (or on PYTHONPATH):
#   bash benchmarks/cuda_check.sh [OUT]
# Each step has its own time limit, so one that fails or hangs leaves the others' results.
set -uo pipefail
out=${1:-cuda-check}
mkdir -p "$out"
start=$(date +%s)
step() { echo "== [$(($(date +%s) - start)) s] $*"; }
timed() { # LABEL LIMIT COMMAND...: run COMMAND under LIMIT seconds and print its wall time
  local label=$1 limit=$2 t0
  shift 2
  t0=$(date +%s)
  timeout "$limit" "$@"
  echo "$label: rc $?, $(($(date +%s) - t0)) s"
}
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

step "CUDA tests"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graphs.py tests/test_methods_smoke.py \
  -k "cuda or graph" 2>&1 | tail -15

step "VAE speed, graphs on then off"
timeout 90 python3 benchmarks/bench_vae_speed.py --methods acmr cada-vae --vae-epochs 6 --device cuda --graphs both
timeout 60 python3 benchmarks/bench_vae_speed.py --methods acmr --vae-epochs 6 --device cuda --seeds 5 --graphs both

step "GAN speed"
timeout 120 python3 benchmarks/bench_gan_speed.py --device cuda --gan-epochs 2

step "5 ACMR seeds at CUB size"
timed "acmr, synth-cub, 5 seeds, 100 VAE epochs, as planned" 180 \
  python3 -m gzslbench run -m acmr -d synth-cub --seeds 5 --device cuda --results "$out/acmr" -q
python3 -m gzslbench table --results "$out/acmr"

step "f-CLSWGAN and LsrGAN at the reference schedules"
timed "f-clswgan, synth-cub, 1 seed" 100 \
  python3 -m gzslbench run -m f-clswgan -d synth-cub --device cuda --results "$out/f-clswgan" -q
timed "lsrgan, synth-cub, 1 seed" 100 \
  python3 -m gzslbench run -m lsrgan -d synth-cub --device cuda --results "$out/lsrgan" -q
timed "f-clswgan, synth-cub scale 0.25, 3 seeds in 3 processes" 90 \
  python3 -m gzslbench run -m f-clswgan -d synth-cub -D scale=0.25 --seeds 3 --n-jobs 3 --batch-seeds 1 \
  --device cuda --results "$out/f-clswgan-quarter" -q
python3 -m gzslbench table --style table2 --reported --results "$out/f-clswgan-quarter" | head -30

step "f-CLSWGAN, 3 seeds one after another against 3 processes sharing the GPU (10 GAN epochs)"
for jobs in 1 3; do
  timed "f-clswgan, synth-cub scale 0.25, 3 seeds, 10 epochs, $jobs process(es)" 90 \
    python3 -m gzslbench run -m f-clswgan -d synth-cub -D scale=0.25 --seeds 3 --n-jobs $jobs --batch-seeds 1 \
    --set epochs=10 --device cuda --results "$out/f-clswgan-jobs-$jobs" -q
done
step done
