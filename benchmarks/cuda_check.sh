#!/usr/bin/env bash
# GPU check: the method smoke tests on CUDA, the VAE speed benchmark on CUDA, and one short
# end-to-end run with --device cuda. Run from the repository root on a machine with a GPU.
set -uo pipefail
out=${1:-cuda-check}
mkdir -p "$out"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider tests/test_methods_smoke.py -k cuda 2>&1 | tail -3
python3 benchmarks/bench_vae_speed.py --methods acmr cada-vae --vae-epochs 3 --device cuda
python3 -m gzslbench run -m acmr -d synth-cub -D scale=0.25 --set epochs=10 --device cuda --out "$out" -q
python3 -m gzslbench table --results "$out"
