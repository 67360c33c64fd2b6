## ---- benchmark (issue 16) -------------------------------------------------------------------
# `make bench` measures the project against what a user would otherwise run, as side-by-side
# ratios in one run (src/tfs_bench, scripts/bench.py; method and figures: docs/bench.md). Not a
# test stage: `make test` never runs it. It writes artifacts/bench/results.json, the table in
# docs/bench.md and the plots in docs/bench/. First the figures on loopback (client, cold start,
# version swap on the stand-in), then the sandbox fleet's (TFS_FLEET_SANDBOX=bench: 6 hosts, the
# LB host and a registry host, created, the stand-in pushed into the registry, removed at the
# end): the image's distribution (first converge with the archive, then fresh hosts with pull:
# controller bytes per host and wall time), idempotent re-runs over SSH, a rollout through the
# front door under load, a 1 GiB model sync against bare rsync; last the control plane on 4 and
# 8 light hosts: 18 min 53 s on a fresh clone on 2 shared cores at low load before the
# distribution part, which adds a second first converge (about 10 minutes here; about 27
# minutes in all at load 15 before it). BENCH_ARGS passes options (`scripts/bench.py --help`), e.g. BENCH_ARGS=--no-fleet for the loopback figures alone
# (about 1.5 minutes).
BENCH_ARGS ?=

.PHONY: bench
bench: venv images standin-archive ## Measure the project against its baselines, fleet figures included (docs/bench.md; not in `make test`)
	$(PY) scripts/bench.py $(BENCH_ARGS)

.PHONY: test-bench
test-bench: venv images ## The benchmark harness end to end: 3 light hosts, rollout and verify once (pytest -m bench; not in `make test`)
	$(TIMED) bench-harness $(BIN)/pytest -q -p no:cacheprovider -m bench tests

# The control plane past 30 hosts: the rollout's and the verify's control path on 8, 16 and 32
# light hosts, linear and free, forks 5 and 20 (docs/bench.md, "Past one controller"). Too long
# for `make bench`'s 20 minutes (19 minutes on its own here), so a target of its own. All it
# writes is under artifacts/bench/control-plane-sweep/ (results.json, table.md, control_plane.png);
# docs/bench.md is not touched. CP_SWEEP_ARGS passes other --cp-* options.
CP_SWEEP_DIR := artifacts/bench/control-plane-sweep
CP_SWEEP_ARGS ?= --cp-hosts 8,16,32 --cp-strategies linear,free --cp-forks 5,20

.PHONY: bench-control-plane
bench-control-plane: venv images ## The control plane on 8-32 light hosts, linear and free, forks 5 and 20 (artifacts/bench/control-plane-sweep/)
	$(PY) scripts/bench.py --only control_plane --out $(CP_SWEEP_DIR) --doc $(CP_SWEEP_DIR)/table.md \
	  --plots $(CP_SWEEP_DIR) $(CP_SWEEP_ARGS)
