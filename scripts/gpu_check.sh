#!/usr/bin/env bash
# One prepared GPU measurement run (issue: GPU scale). Writes JSON results under ${OUT:-results/gpu}.
# Usage on a CUDA machine with wildamp installed:  OUT=results/gpu scripts/gpu_check.sh
# Steps (each bounded so the whole script fits in ~12 minutes on one H100):
#   1. raw MJX physics at 16,384 envs           → bench_physics_gpu.json
#   2. end-to-end PPO-only and PPO+AMP sps      → bench_train_ppo_gpu.json, bench_train_amp_gpu.json
#   3. a timed PPO+AMP training run + eval      → train_amp_gpu/ (metrics.jsonl, eval.json)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu}
mkdir -p "$OUT"
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONHASHSEED=0 MUJOCO_GL=egl
export XLA_FLAGS="${XLA_FLAGS:-} --xla_gpu_triton_gemm_any=True"
python -c "import jax; assert jax.default_backend() == 'gpu', jax.devices(); print(jax.devices())"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
timeout 120 wildamp bench physics --envs 16384 --steps 50 --out "$OUT/bench_physics_gpu.json"
timeout 200 wildamp bench train --config configs/ppo_amass_training.yaml --envs 8192 --set amp.enabled=false --out "$OUT/bench_train_ppo_gpu.json"
timeout 200 wildamp bench train --config configs/ppo_amass_training.yaml --envs 8192 --out "$OUT/bench_train_amp_gpu.json"
start=$(date +%s)
timeout 600 wildamp train --config configs/ppo_amass_training.yaml --run-dir "$OUT/train_amp_gpu" || true
echo "{\"wall_s\": $(( $(date +%s) - start ))}" > "$OUT/train_amp_gpu_wall.json"
