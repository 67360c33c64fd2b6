## ---- fleet rollout (issue 7) ----------------------------------------------------------------
# playbooks/rollout.yml: canary, health-gated batches, automatic rollback, report. The fault
# matrix runs on a 3-host sandbox fleet of its own (TFS_FLEET_SANDBOX=rollout, ports 39501-39503
# and 39601-39603), created once and removed at the end. See docs/rollout.md.

.PHONY: test-rollout
test-rollout: venv images standin-archive ## Rollout fault matrix (good v2 under load, bad v3, unreachable host, killed sync, restarts)
	$(TIMED) rollout $(BIN)/pytest -q -p no:cacheprovider tests/rollout

.PHONY: rollout
rollout: venv ## Roll out the export base to the sandbox fleet (canary first, gated batches)
	$(BIN)/ansible-playbook -i inventories/sandbox playbooks/rollout.yml
