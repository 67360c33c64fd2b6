## ---- SSH path (issue 10) --------------------------------------------------------------------
# The sandbox, the serving scenarios and the rollout tests reach their hosts over SSH as an
# unprivileged user with sudo (docs/ssh.md). The re-run cost over SSH (1 and 6 hosts, project
# against stock settings) is measured by `make bench` (mk/bench.mk, docs/bench.md).
