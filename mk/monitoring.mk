## ---- fleet observability (issue 12) -----------------------------------------------------
# Alert rules (promtool check + promtool test rules), the dashboard's queries (promtool), the
# drift and scrape-target filters and the textfile module; then the tfserving_monitoring scenario
# on a sandbox fleet of its own (TFS_FLEET_SANDBOX=mmon: 1 serving host, 1 monitoring host,
# Prometheus on 127.0.0.1:28590): every target up through the real Prometheus API, the request
# counter rising with smoke traffic, the drift metrics, every dashboard query. `make demo` adds a
# monitoring host to the demo fleet (Prometheus on 127.0.0.1:19090; the monitoring play prints it).

.PHONY: test-monitoring
test-monitoring: venv controller-tools ## Monitoring: alert rule unit tests (promtool), dashboard queries, drift filters
	$(TIMED) monitoring $(BIN)/pytest -q -p no:cacheprovider tests/monitoring

test-molecule-tfserving_monitoring: standin-archive

# The rollout's metric gate under load runs in the fleet stage (mk/rollout.mk,
# tests/fleet/test_3_metric_gate.py): a slower version rolled back with the p99 figure in the
# report, a good one passing, the drift metrics showing the skew only while the canary soaks.
