## ---- SSH path (issue 10) --------------------------------------------------------------------
# The sandbox, the serving scenarios and the rollout tests reach their hosts over SSH as an
# unprivileged user with sudo (docs/ssh.md). The re-run benchmark is not a test: it measures.
.PHONY: bench-ssh
bench-ssh: venv images standin-archive ## Time an idempotent site.yml re-run over SSH on 1, 3, 6 hosts, and with stock settings
	@test -d $(DEMO_MODELS)/half_plus_two || $(PY) scripts/export_model.py --demo half_plus_two --export-base $(DEMO_MODELS)
	$(PY) scripts/bench_ssh_rerun.py --hosts 1,3,6
