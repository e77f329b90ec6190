#!/usr/bin/env bash
# GPU check, one script: the CUDA smoke tests, `benchmarks/bench.py --device cuda`, and 5 ACMR seeds
# at CUB size trained one after another and then batched, with their wall times and tables.
# Run from the repository root on a machine with a GPU, with the project installed:
#   bash benchmarks/cuda_check.sh [OUT] ; EPOCHS=100 for the full 100 VAE epochs (default 20).
set -uo pipefail
out=${1:-cuda-check}
epochs=${EPOCHS:-20}
mkdir -p "$out"
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
python3 -m pytest -q -p no:cacheprovider tests/test_methods_smoke.py -k cuda 2>&1 | tail -3
python3 benchmarks/bench.py --device cuda --json >"$out/bench.json" && python3 - "$out/bench.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
keys = ("device_name", "matmul_gflops", "acmr_gflops", "acmr_efficiency", "acmr_batched_gflops",
        "batched_speedup", "cls_stage_s", "acmr_epoch_s", "gpu_peak_mem_mb", "peak_rss_mb")
print("bench:", ", ".join(f"{k}={r[k]:.3g}" if isinstance(r.get(k), float) else f"{k}={r.get(k)}" for k in keys))
EOF
for mode in sequential batched; do
  if [ "$mode" = sequential ]; then mix=(--n-jobs 1 --batch-seeds 1); else mix=(--batch-seeds 5); fi
  start=$(date +%s)
  python3 -m gzslbench run -m acmr -d synth-cub --seeds 5 --set "epochs=$epochs" --device cuda \
    "${mix[@]}" --results "$out/$mode" -q
  echo "acmr synth-cub, 5 seeds, $epochs VAE epochs, $mode: $(($(date +%s) - start)) s"
  python3 -m gzslbench table --results "$out/$mode"
done
