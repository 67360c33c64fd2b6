# GPU host roles (issue 6): nvidia_driver, nvidia_container_toolkit and the CUDA gate.
# The molecule stages use the Makefile's test-molecule-% rule (molecule test -s <scenario>).
TEST_STAGES += test-gpu-unit test-molecule-nvidia_driver test-molecule-nvidia_container_toolkit

.PHONY: test-gpu-unit
test-gpu-unit: venv ## GPU: CUDA tables, NVIDIA parsers, cuda_gate role on fake hosts
	$(TIMED) gpu-unit $(BIN)/pytest -q tests/gpu

.PHONY: test-gpu
test-gpu: test-gpu-unit test-molecule-nvidia_driver test-molecule-nvidia_container_toolkit ## GPU: every stage above
