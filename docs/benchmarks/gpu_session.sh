#!/usr/bin/env bash
# What a lent GPU machine runs: every step script's demo on CUDA and benchmark.py --device cuda.
#   bash docs/benchmarks/gpu_session.sh [demos] [bench] [explore]     (figures and logs go to $OUT or ./gpu_out)
# The machine has its own PyTorch; fvcore and its pure-Python needs travel as wheels in .whl/ when present.
set -uo pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 TQDM_MININTERVAL=30
PY=${PY:-python3}
if ! $PY -c "import fvcore" 2>/dev/null && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)" | tee -a "$OUT/gpu.txt"
status=0
[ $# -gt 0 ] || set -- demos bench
for what in "$@"; do
  case $what in
    demos)
      $PY -m datasets.synthetic --out data/synthetic > "$OUT/world.log" 2>&1 || status=1
      for s in step2a_deeplab_cityscapes step2b_bisenet_cityscapes step3a3b_gta_to_cityscapes step4_5_adversarial; do
        start=$(date +%s)
        $PY $s.py --demo --RUNS_DIR=runs_gpu > "$OUT/$s.log" 2>&1; rc=$?
        echo "$s rc=$rc $(( $(date +%s) - start )) s" | tee -a "$OUT/demos.txt"
        [ $rc -eq 0 ] || { status=1; tail -25 "$OUT/$s.log"; }
      done
      $PY -m utils.report runs_gpu --out "$OUT/RESULTS_gpu.md" > /dev/null 2>&1 || status=1
      ;;
    profile)
      start=$(date +%s); $PY -m datasets.synthetic --out data/synthetic > "$OUT/world.log" 2>&1 || status=1
      echo "world $(( $(date +%s) - start )) s" | tee -a "$OUT/demos.txt"
      $PY -m cProfile -o /tmp/step2b.prof step2b_bisenet_cityscapes.py --demo --RUNS_DIR=runs_gpu > "$OUT/step2b_prof.log" 2>&1 || status=1
      $PY -c "import pstats; pstats.Stats('/tmp/step2b.prof').sort_stats('cumulative').print_stats(45)" > "$OUT/step2b_prof.txt"
      tail -5 "$OUT/step2b_prof.log"; grep -m 45 -A 50 "ncalls" "$OUT/step2b_prof.txt" | cut -c1-160
      ;;
    bench)
      $PY benchmark.py --device cuda --json "$OUT/benchmark_cuda.json" 2>&1 | tee "$OUT/benchmark_cuda.txt" || status=1 ;;
    explore)
      $PY benchmark.py --device cuda --explore --iters 30 --json "$OUT/benchmark_cuda_explore.json" 2>&1 \
        | tee "$OUT/benchmark_cuda_explore.txt" || status=1 ;;
  esac
done
exit $status
