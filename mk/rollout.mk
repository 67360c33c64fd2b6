## ---- fleet stage: rollout, load balancer, metric gate (issues 7, 11, 12) --------------------
# One 3-host sandbox fleet (TFS_FLEET_SANDBOX=rollout; SSH as `ops`, sudo password from a vault
# file; ports 30401-30403, 30501-30503, 30601-30603), created once and removed at the end, for
# tests/fleet in file order (tests/fleet/conftest.py), on a mixed fleet, as a fleet looks in the
# middle of an OS upgrade (issue 26): hosts 1 and 3 on Debian 12, host 2, the LB and the
# monitoring host on Debian 13. TFS_FLEET_FLEET_OS=debian12 (or debian13) runs it on one release.
#   test_1  the rollout's fault matrix (docs/rollout.md);
#   test_2  an LB host and a monitoring host join (front door 30500/30600, Prometheus 30090),
#           site.yml sets them up, the LB cases under load (docs/lb.md);
#   test_3  the metric gate on that Prometheus (roles/tfserving_monitoring/README.md).

.PHONY: test-fleet
test-fleet: venv images images-debian13 standin-archive ## Fleet stage (mixed Debian 12/13 fleet): rollout fault matrix, then the LB cases and the metric gate on the same fleet
	$(TIMED) fleet $(BIN)/pytest -q -p no:cacheprovider --durations=30 -m fleet tests/fleet

.PHONY: test-rollout
test-rollout: venv images images-debian13 standin-archive ## Only the rollout fault matrix (tests/fleet/test_1) on the fleet stage's fleet
	$(TIMED) rollout $(BIN)/pytest -q -p no:cacheprovider tests/fleet/test_1_rollout_faults.py

.PHONY: rollout
rollout: venv ## Roll out the export base to the sandbox fleet (canary first, gated batches)
	$(BIN)/ansible-playbook -i inventories/sandbox playbooks/rollout.yml $$(scripts/sandbox_args sandbox)
