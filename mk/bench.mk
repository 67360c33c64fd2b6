## ---- benchmark (issue 16) -------------------------------------------------------------------
# `make bench` measures the project against what a user would otherwise run, as side-by-side
# ratios in one run (src/tfs_bench, scripts/bench.py; method and figures: docs/bench.md). Not a
# test stage: `make test` never runs it. It writes artifacts/bench/results.json, the table in
# docs/bench.md and the plots in docs/bench/. This pass measures the figures that need no
# sandbox fleet (client, cold start, version swap) on the stand-in; the fleet's figures are listed
# as not measured. BENCH_ARGS passes options (`scripts/bench.py --help`).
BENCH_ARGS ?=

.PHONY: bench
bench: venv ## Measure the client, cold-start and version-swap ratios (docs/bench.md; not part of `make test`)
	$(PY) scripts/bench.py $(BENCH_ARGS)
