# tfserving_image role (issue 5): the docker save reader's unit tests and check-mode runs of the
# role against the local engine (pull tags, digest, login and failures against the real registry, the CUDA
# gate refusing and switching to a build, Dockerfile rendering), then its molecule scenario
# (archive shipped once and loaded, async two-stage build on a fake old GPU host).

.PHONY: test-image
test-image: venv images ## tfserving_image: unit tests and check-mode role runs (tests/image)
	$(TIMED) image-pytest $(BIN)/pytest -q tests/image
