## ---- benchmark (issue 16) -------------------------------------------------------------------
# `make bench` measures the project against what a user would otherwise run, as side-by-side
# ratios in one run (src/tfs_bench, scripts/bench.py; method and figures: docs/bench.md). Not a
# test stage: `make test` never runs it. It writes artifacts/bench/results.json, the table in
# docs/bench.md and the plots in docs/bench/. First the figures on loopback (client, cold start,
# version swap on the stand-in), then the sandbox fleet's (TFS_FLEET_SANDBOX=bench: 6 hosts and
# the LB host, created, converged once, removed at the end): idempotent re-runs over SSH, a
# rollout through the front door under load, a 1 GiB model sync against bare rsync: 17.5
# minutes measured on 2 shared cores at low load (about 27 at load 15). BENCH_ARGS passes
# options (`scripts/bench.py --help`), e.g. BENCH_ARGS=--no-fleet for the loopback figures alone
# (about 1.5 minutes).
BENCH_ARGS ?=

.PHONY: bench
bench: venv images standin-archive ## Measure the project against its baselines, fleet figures included (docs/bench.md; not in `make test`)
	$(PY) scripts/bench.py $(BENCH_ARGS)
