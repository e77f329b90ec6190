#!/usr/bin/env bash
# The GPU checks, as named steps, each under its own time limit (so one that fails or hangs leaves
# the others' results), with every log kept under OUT:
#   tests      the CUDA tests: every method on CUDA (records repeat, the global RNG untouched),
#              CUDA-graph replays against eager runs, the fallback of a failed capture (about 2 min);
#   graphs     VAE speed at CUB size, CUDA graphs on and off alternated, one seed and 5 batched (2 min);
#   gan-speed  seconds per GAN epoch at CUB size of f-CLSWGAN, f-VAEGAN, TF-VAEGAN, FREE, LsrGAN (2.5 min);
#   acmr       5 ACMR seeds at CUB size (100 VAE epochs) as planned, graphs off then on (4 min);
#   reference  one f-CLSWGAN and one LsrGAN seed at CUB size at the reference schedules (3 min);
#   sharing    3 f-CLSWGAN seeds (scale 0.25, 10 GAN epochs) one after another, then in 3 processes (3 min);
#   load       the CUDA-graph test of two batched seeds 5 times while 3 f-CLSWGAN runs share the GPU (2 min);
#   table2     f-CLSWGAN, f-VAEGAN and TF-VAEGAN at scale 0.25, 3 seeds, reference schedules, 3
#              processes a method sharing the GPU, and Table 2 (f-VAEGAN took 4.5 minutes with TF-VAEGAN
#              beside it; TF-VAEGAN needs more than 10: TABLE2_METHODS=tf-vaegan runs it alone).
# Run from the repository root on a machine with a GPU, with the project installed (or on PYTHONPATH):
#   bash benchmarks/cuda_check.sh OUT [STEP...]      (no STEP: tests graphs gan-speed acmr reference sharing)
set -uo pipefail
out=${1:-cuda-check}
shift || true
steps=${*:-tests graphs gan-speed acmr reference sharing}
mkdir -p "$out"
start=$(date +%s)
say() { echo "== [$(($(date +%s) - start)) s] $*"; }
timed() { # LABEL LIMIT COMMAND...: run COMMAND under LIMIT seconds and print its wall time
  local label=$1 limit=$2 t0
  shift 2
  t0=$(date +%s)
  timeout "$limit" "$@"
  echo "$label: rc $?, $(($(date +%s) - t0)) s"
}
run=(python3 -m gzslbench run --device cuda -q) # a command, not a function, so that timeout can run it
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

for step in $steps; do
  say "$step"
  case $step in
    tests)
      timeout 240 python3 -m pytest -q -p no:cacheprovider -rA tests/test_cuda_graphs.py tests/test_methods_smoke.py \
        -k "cuda or graph" >"$out/tests.log" 2>&1
      grep -E "^(PASSED|FAILED|ERROR)|passed|failed" "$out/tests.log"
      ;;
    graphs)
      timeout 90 python3 benchmarks/bench_vae_speed.py --methods acmr cada-vae --vae-epochs 4 --cls-epochs 20 \
        --device cuda --graphs both --repeats 2
      timeout 60 python3 benchmarks/bench_vae_speed.py --methods acmr --vae-epochs 4 --cls-epochs 20 --device cuda \
        --seeds 5 --graphs both --repeats 2
      ;;
    gan-speed)
      timeout 150 python3 benchmarks/bench_gan_speed.py --device cuda --gan-epochs 2
      ;;
    acmr)
      timed "acmr, synth-cub, 5 seeds, graphs off" 120 "${run[@]}" -m acmr -d synth-cub --seeds 5 --results "$out/acmr"
      GZSLBENCH_CUDA_GRAPHS=1 timed "acmr, synth-cub, 5 seeds, graphs on" 120 \
        "${run[@]}" -m acmr -d synth-cub --seeds 5 --results "$out/acmr-graphs"
      python3 -m gzslbench table --results "$out/acmr"
      python3 -m gzslbench table --results "$out/acmr-graphs"
      ;;
    reference)
      timed "f-clswgan, synth-cub, 1 seed" 100 "${run[@]}" -m f-clswgan -d synth-cub --results "$out/reference"
      timed "lsrgan, synth-cub, 1 seed" 100 "${run[@]}" -m lsrgan -d synth-cub --results "$out/reference"
      python3 -m gzslbench table --results "$out/reference"
      ;;
    sharing)
      for jobs in 1 3; do
        timed "f-clswgan, synth-cub scale 0.25, 3 seeds, 10 epochs, $jobs process(es)" 90 \
          "${run[@]}" -m f-clswgan -d synth-cub -D scale=0.25 --seeds 3 --n-jobs $jobs --batch-seeds 1 --set epochs=10 \
          --results "$out/sharing-$jobs"
      done
      ;;
    load)
      "${run[@]}" -m f-clswgan -d synth-cub -D scale=0.25 --seeds 3 --n-jobs 3 --batch-seeds 1 --set epochs=10 \
        --results "$out/load" >"$out/load-runs.log" 2>&1 &
      background=$!
      for k in 1 2 3 4 5; do
        timeout 60 python3 -m pytest -q -p no:cacheprovider \
          "tests/test_cuda_graphs.py::test_replayed_graphs_give_the_runs_eager_cuda_gives[2]" >"$out/load-$k.log" 2>&1
        tail -1 "$out/load-$k.log"
      done
      kill "$background" 2>/dev/null
      wait "$background" 2>/dev/null
      ;;
    table2) # TABLE2_METHODS and TABLE2_LIMIT (seconds) narrow it; a rerun resumes, finished runs kept
      methods=${TABLE2_METHODS:-f-clswgan,f-vaegan,tf-vaegan}
      jobs=$((3 * $(echo "$methods" | tr ',' ' ' | wc -w)))
      timed "$methods, synth-cub scale 0.25, 3 seeds, $jobs processes" "${TABLE2_LIMIT:-590}" \
        "${run[@]}" -m "$methods" -d synth-cub -D scale=0.25 --seeds 3 --n-jobs $jobs --batch-seeds 1 \
        --results "$out/table2"
      python3 -m gzslbench table --style table2 --reported --results "$out/table2"
      ;;
    *) echo "unknown step: $step" ;;
  esac
done
say done
