# The two README commands: `make train` (main job) and `make test` (whole test suite).
PYTHON ?= python3
export PYTHON
export MUJOCO_GL ?= egl
export XLA_PYTHON_CLIENT_PREALLOCATE ?= false

.PHONY: setup train test bench-cpu strip

setup:
	./scripts/setup.sh

train: setup
	wildamp train

test: setup
	WILDAMP_SMOKE=1 $(PYTHON) -m pytest -q tests notebooks --nbval-lax --nbval-current-env --nbval-cell-timeout=600

bench-cpu: setup
	wildamp bench physics --envs 256 --out results/bench_physics_cpu.json

strip:
	nbstripout notebooks/*.ipynb
