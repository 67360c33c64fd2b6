# GPU host roles (issue 6): nvidia_driver, nvidia_container_toolkit and the CUDA gate.
# The molecule stages use the Makefile's test-molecule-% rule (molecule test -s <scenario>).

.PHONY: test-gpu-unit
# tests/gpu also runs nvidia_driver on a throwaway systemd container with a fake HGX / Secure Boot
# host, and the tfserving role's GPU arguments in check mode against the local engine (issue 17).
test-gpu-unit: venv images ## GPU: CUDA tables, driver plan, gpu_facts.py, PGP keys, roles on fake hosts
	$(TIMED) gpu-unit $(BIN)/pytest -q tests/gpu

.PHONY: test-gpu
test-gpu: test-gpu-unit test-molecule-nvidia_driver test-molecule-nvidia_container_toolkit ## GPU: every stage above

.PHONY: gpu-facts
gpu-facts: ## On a GPU host: what the GPU roles decide here, as JSON (scripts/gpu_facts.py)
	python3 scripts/gpu_facts.py
