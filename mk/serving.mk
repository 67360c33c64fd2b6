## ---- serving deployment (issue 5) ---------------------------------------------------------
# The stand-in image as a `docker save` archive: what the sandbox ships to its hosts (the
# air-gapped `archive` path) and what the serving scenarios load.
STANDIN_ARCHIVE := artifacts/images/serving-standin.tar
export TFS_FLEET_STANDIN_ARCHIVE := $(abspath $(STANDIN_ARCHIVE))

.PHONY: standin-archive
standin-archive: standin-image ## docker save the stand-in image (only when its ID changed)
	@mkdir -p $(dir $(STANDIN_ARCHIVE))
	@id=$$(docker image inspect -f '{{.Id}}' tfs-fleet/serving-standin:latest); \
	if [ -f $(STANDIN_ARCHIVE) ] && [ "$$(cat $(STANDIN_ARCHIVE).id 2>/dev/null)" = "$$id" ]; then \
	  echo "$(STANDIN_ARCHIVE) is up to date"; \
	else \
	  docker save -o $(STANDIN_ARCHIVE).tmp tfs-fleet/serving-standin:latest && mv $(STANDIN_ARCHIVE).tmp $(STANDIN_ARCHIVE); \
	  echo "$$id" >$(STANDIN_ARCHIVE).id; echo "wrote $(STANDIN_ARCHIVE) ($$(du -h $(STANDIN_ARCHIVE) | cut -f1))"; \
	fi

test-molecule-tfserving test-molecule-site: standin-archive
