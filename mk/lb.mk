## ---- load balancer (issue 11) --------------------------------------------------------------
# roles/tfserving_lb (HAProxy in front of the fleet), drain/undrain, the load client. test-lb:
# the role's template, health check, runtime-API module and graceful reload on a real HAProxy
# (this machine's package) in front of in-process servers, then the proof on a 3-host sandbox
# fleet behind an LB host (TFS_FLEET_SANDBOX=lbt). docs/lb.md.

.PHONY: lb-tools
lb-tools: ## Install HAProxy on the controller for the LB tests (apt-get as root, when missing)
	@command -v haproxy >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null; } \
	  || { echo "haproxy is missing: install your distribution's haproxy package"; exit 1; }
	@haproxy -v | head -1

.PHONY: test-lb
test-lb: venv lb-tools images standin-archive ## LB proof on a sandbox fleet behind HAProxy (the unit and local-HAProxy tests run in check / pytest-docker)
	$(TIMED) lb $(BIN)/pytest -q -p no:cacheprovider -m fleet tests/lb

test-molecule-tfserving_lb: standin-archive lb-tools

.PHONY: lb-figures
lb-figures: venv images standin-archive ## Measure the LB cases on the sandbox (docs/lb.md figures) and print them
	$(BIN)/pytest -q -s -p no:cacheprovider tests/lb/test_lb_fleet.py
	@cat artifacts/lb/figures.md
