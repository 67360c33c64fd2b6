# Python toolkit (issue 3): SavedModel export, TF Serving client, smoke test. See docs/toolkit.md.

.PHONY: test-toolkit
test-toolkit: venv ## pytest tests/toolkit: export (real TF), client, smoke test vs in-process server
	$(TIMED) toolkit $(BIN)/pytest -q tests/toolkit

.PHONY: toolkit-bench
toolkit-bench: venv ## Time the smoke test's cold start against a client that imports TensorFlow
	$(PY) tests/toolkit/bench_cold_start.py 5
