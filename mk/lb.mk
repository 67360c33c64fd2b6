## ---- load balancer (issue 11) --------------------------------------------------------------
# roles/tfserving_lb (HAProxy in front of the fleet), drain/undrain, the load client. Its tests:
# the role's template, health check, runtime-API module and graceful reload on a real HAProxy
# (this machine's package) in front of in-process servers (stage pytest-docker); the proof under
# load runs in the fleet stage (mk/rollout.mk, tests/fleet/test_2_lb_front_door.py). docs/lb.md.

.PHONY: lb-tools
# The version line through sed, which reads to the end: with pipefail, `| head -1` failed this
# target (exit 141, SIGPIPE) whenever haproxy wrote its next line after head had exited (CI).
lb-tools: ## Install HAProxy on the controller for the LB tests (apt-get as root, when missing)
	@command -v haproxy >/dev/null || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends haproxy >/dev/null; } \
	  || { echo "haproxy is missing: install your distribution's haproxy package"; exit 1; }
	@haproxy -v | sed -n 1p

test-molecule-tfserving_lb: standin-archive lb-tools

.PHONY: lb-figures
lb-figures: venv images standin-archive ## Measure the LB cases on the fleet stage's fleet (docs/lb.md figures) and print them
	$(BIN)/pytest -q -s -p no:cacheprovider tests/fleet/test_2_lb_front_door.py
	@cat artifacts/lb/figures.md
