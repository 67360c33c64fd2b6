## ---- serving stand-in (issue 4) -------------------------------------------------------------
# The TF-Serving-compatible CPU stand-in (NOT TensorFlow Serving): image and tests.

.PHONY: standin-image
standin-image: docker-engine ## Build tfs-fleet/serving-standin (cached; FORCE=1 rebuilds)
	PIP="$(abspath $(PY)) -m pip" scripts/build_standin_image.sh $(if $(FORCE),--force)

.PHONY: test-standin
test-standin: venv docker-engine ## Stand-in tests: flags, REST/gRPC conformance, models, container
	$(TIMED) standin $(BIN)/pytest -q -p no:cacheprovider tests/standin
