#!/usr/bin/env bash
# The GPU check, one short script (under 10 minutes) for a machine with an NVIDIA accelerator:
#   1. a Python whose torch sees CUDA: the one given as $PYTHON (default python3), else PyPI's Linux build of
#      torch (the CUDA one) installed into .gpu-venv;
#   2. the test suite's device-marked tests with RKS_TEST_DEVICE=cuda (tests/test_device.py);
#   3. a 1-GPU one-shot and a 1-GPU DNAS search on spaces/rankitect_blocks.rks, timed;
#   4. the supernet-vs-subnet step ratio and examples/s on the GPU (benchmarks/bench_supernet.py);
#   5. with two or more GPUs, rks train and a DNAS search on two ranks under torchrun with NCCL (--nproc 2).
# Where there is no CUDA device its CUDA parts skip, each with the reason, and it exits 0.
#   bash benchmarks/gpu_check.sh [OUT_DIR]     (the logs go to OUT_DIR, default ./gpu_check)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu_check}
mkdir -p "$out"
py=${PYTHON:-python3}
say() { echo "gpu_check: $*"; }
sees_cuda() { "$1" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1; }

if ! sees_cuda "$py"; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    say "$py has no torch that sees CUDA: installing PyPI's torch (the CUDA build) into .gpu-venv"
    python3 -m venv .gpu-venv && .gpu-venv/bin/pip install -q "torch>=2.3" && py=.gpu-venv/bin/python \
      || say "could not install torch with CUDA (is PyPI reachable from here?)"
  fi
fi
if ! sees_cuda "$py"; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    why="the GPU is there but no torch here sees it"
  else
    why="no NVIDIA GPU on this machine (nvidia-smi finds none)"
  fi
  say "skip: the device tests on CUDA: $why"
  say "skip: the 1-GPU one-shot and DNAS searches: $why"
  say "skip: the supernet-vs-subnet step ratio on the GPU: $why"
  say "skip: the NCCL runs on two ranks: $why"
  exit 0
fi
nvidia-smi -L
"$py" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, torch.cuda.get_device_name(0))'
"$py" -m pip install -q -e ".[test]" >"$out/install.log" 2>&1 \
  || say "could not install the project with pip ($out/install.log); running it from the checkout"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0

say "device-marked tests on CUDA"
RKS_TEST_DEVICE=cuda "$py" -m pytest -q -o addopts="" -m device tests 2>&1 | tee "$out/device_tests.log" || status=1

for method in oneshot dnas; do
  say "1-GPU $method search on spaces/rankitect_blocks.rks"
  start=$(date +%s.%N)
  "$py" -m rankitect_dsl.cli search spaces/rankitect_blocks.rks --method "$method" --flops-target 1x \
    --examples 200000 --batch-size 2048 --data synthetic:1 --device cuda --retrain-seeds 1 \
    --storage "sqlite:///$out/$method.db" --export "$out/$method" --json >"$out/$method.json" 2>"$out/$method.err" \
    || { status=1; tail -5 "$out/$method.err"; }
  end=$(date +%s.%N)
  "$py" - "$out/$method.json" "$start" "$end" <<'PY' || status=1
import json, sys
summary = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
seconds = float(sys.argv[3]) - float(sys.argv[2])
steps = summary.get("steps", 0)
print(f"  {summary['method']}: {seconds:.1f} s in all, {summary['seconds']:.1f} s searching and retraining, "
      f"{steps} supernet steps, {summary.get('examples_processed', 0) / max(summary['seconds'], 1e-9):,.0f} "
      f"examples/s through the search; winner {summary['best']['flops']:,} FLOPs, beats the baseline: "
      f"{summary['beats_baseline']}")
PY
done

say "supernet against the exported subnet on the GPU"
"$py" benchmarks/bench_supernet.py --space spaces/rankitect_blocks.rks --device cuda --batch 2048 2>&1 \
  | tee "$out/bench_supernet.log" || status=1

gpus=$("$py" -c 'import torch; print(torch.cuda.device_count())')
if [ "$gpus" -ge 2 ]; then
  say "rks train and a DNAS search on two ranks, NCCL (--nproc 2 --device cuda)"
  "$py" -m rankitect_dsl.cli train spaces/rankitect_blocks.rks --baseline --data synthetic:1 --examples 200000 \
    --batch-size 2048 --device cuda --nproc 2 --json >"$out/train_nccl.json" 2>"$out/train_nccl.err" \
    || { status=1; tail -5 "$out/train_nccl.err"; }
  "$py" -m rankitect_dsl.cli search spaces/rankitect_blocks.rks --method dnas --flops-target 1x \
    --examples 100000 --batch-size 2048 --data synthetic:1 --device cuda --nproc 2 --retrain-seeds 0 \
    --storage "sqlite:///$out/dnas_nccl.db" --json >"$out/dnas_nccl.json" 2>"$out/dnas_nccl.err" \
    || { status=1; tail -5 "$out/dnas_nccl.err"; }
else
  say "skip: the NCCL runs on two ranks: $gpus GPU(s) here, two needed"
fi
exit $status
