"""The Docker stages of `make test` run in three lanes side by side (the fleet stage and Makefile
TEST_LANE_A/B), so the sandbox fleets of the molecule scenarios and the fleet stage's fleet
(tests/fleet/fleet.py) must not publish the same loopback port. Each
scenario's ports follow the sandbox's rules (playbooks/sandbox.yml, molecule/shared/sandbox):
serving host n on gRPC base+n, REST base+100+n and SSH base-100+n; the LB host on the bases
themselves; the monitoring host on SSH base-100+90 and its Prometheus port."""

from __future__ import annotations

import sys
from itertools import combinations
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent / "fleet"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "hostchange"))
import fleet  # tests/fleet/fleet.py: the fleet stage's ports
import test_host_change_live as hostchange  # tests/hostchange: the live host changes' fleet

REPO = Path(__file__).resolve().parents[1]


def sandbox_ports(env: dict[str, str]) -> set[int]:
    grpc = int(env["TFS_FLEET_SANDBOX_PORT_BASE"])
    rest, ssh = grpc + 100, grpc - 100
    hosts = int(env.get("TFS_FLEET_SANDBOX_HOSTS", "2"))
    ports = {base + n for base in (grpc, rest, ssh) for n in range(1, hosts + 1)}
    lb = env.get("TFS_FLEET_SANDBOX_LB", "").lower()
    if lb in ("1", "2", "true"):
        ports |= {grpc, rest, ssh}
    if lb == "2":  # the pair's second LB host: the bases + 10
        ports |= {grpc + 10, rest + 10, ssh + 10}
    monitoring = env.get("TFS_FLEET_SANDBOX_MONITORING", "").lower()
    if monitoring in ("1", "2", "true"):
        ports |= {ssh + 90, int(env["TFS_FLEET_SANDBOX_PROMETHEUS_PORT"])}
    if monitoring == "2":  # the pair's second Prometheus host: number 91, Prometheus port + 1
        ports |= {ssh + 91, int(env["TFS_FLEET_SANDBOX_PROMETHEUS_PORT"]) + 1}
    return ports


def scenario_envs() -> dict[str, dict[str, str]]:
    envs = {}
    for path in sorted(REPO.glob("molecule/*/molecule.yml")):
        env = (yaml.safe_load(path.read_text()).get("provisioner") or {}).get("env") or {}
        if "TFS_FLEET_SANDBOX_PORT_BASE" in env:
            envs[path.parent.name] = {k: str(v) for k, v in env.items()}
    return envs


def test_the_rules_give_the_ports_the_lb_scenario_documents() -> None:
    env = {"TFS_FLEET_SANDBOX_PORT_BASE": "28530", "TFS_FLEET_SANDBOX_HOSTS": "1",
           "TFS_FLEET_SANDBOX_LB": "1"}  # fmt: skip
    assert sandbox_ports(env) == {28430, 28431, 28530, 28531, 28630, 28631}
    env = {"TFS_FLEET_SANDBOX_PORT_BASE": "28560", "TFS_FLEET_SANDBOX_HOSTS": "1",
           "TFS_FLEET_SANDBOX_MONITORING": "true",
           "TFS_FLEET_SANDBOX_PROMETHEUS_PORT": "28590"}  # fmt: skip
    assert sandbox_ports(env) == {28461, 28561, 28661, 28550, 28590}
    env = {**env, "TFS_FLEET_SANDBOX_MONITORING": "2"}
    assert sandbox_ports(env) == {28461, 28561, 28661, 28550, 28590, 28551, 28591}
    env = {"TFS_FLEET_SANDBOX_PORT_BASE": "28530", "TFS_FLEET_SANDBOX_HOSTS": "1",
           "TFS_FLEET_SANDBOX_LB": "2"}  # fmt: skip
    assert sandbox_ports(env) == {28430, 28431, 28530, 28531, 28630, 28631, 28440, 28540, 28640}


def test_every_sandbox_scenario_is_found() -> None:
    assert {"tfserving", "tfserving_lb", "tfserving_monitoring"} <= set(scenario_envs())


@pytest.mark.parametrize("pair", list(combinations(sorted(scenario_envs()), 2)), ids=str)
def test_no_two_sandbox_scenarios_publish_the_same_port(pair: tuple[str, str]) -> None:
    envs = scenario_envs()
    first, second = (sandbox_ports(envs[name]) for name in pair)
    assert not first & second, f"{pair} both publish {sorted(first & second)}"


def fleet_stage_ports() -> set[int]:
    """The fleet stage's 3 hosts, its LB host (on the bases) and its monitoring host (number 90
    and Prometheus), by the same rules."""
    env = {"TFS_FLEET_SANDBOX_PORT_BASE": str(fleet.GRPC_BASE),
           "TFS_FLEET_SANDBOX_HOSTS": str(len(fleet.HOSTS)), "TFS_FLEET_SANDBOX_LB": "1",
           "TFS_FLEET_SANDBOX_MONITORING": "1",
           "TFS_FLEET_SANDBOX_PROMETHEUS_PORT": str(fleet.PROMETHEUS_PORT)}  # fmt: skip
    assert (fleet.REST_BASE, fleet.SSH_BASE) == (fleet.GRPC_BASE + 100, fleet.GRPC_BASE - 100)
    return sandbox_ports(env)


def test_the_fleet_stage_ports_are_below_the_ephemeral_range() -> None:
    """Outgoing connections of the other lanes (and their free-port picks) never hold them."""
    ports = fleet_stage_ports()
    assert len(ports) == 3 * 3 + 3 + 2
    assert max(ports) < 32768


@pytest.mark.parametrize("scenario", sorted(scenario_envs()))
def test_no_sandbox_scenario_publishes_a_port_of_the_fleet_stage(scenario: str) -> None:
    shared = sandbox_ports(scenario_envs()[scenario]) & fleet_stage_ports()
    assert not shared, f"{scenario} and the fleet stage both publish {sorted(shared)}"


def hostchange_ports() -> set[int]:
    """The host-change stage's 2 hosts and its LB host (lane B, beside the fleet stage)."""
    hc = hostchange
    env = {"TFS_FLEET_SANDBOX_PORT_BASE": str(hc.GRPC_BASE),
           "TFS_FLEET_SANDBOX_HOSTS": str(len(hc.HOSTS)), "TFS_FLEET_SANDBOX_LB": "1"}  # fmt: skip
    assert (hc.REST_BASE, hc.SSH_BASE) == (hc.GRPC_BASE + 100, hc.GRPC_BASE - 100)
    return sandbox_ports(env)


def test_the_host_change_fleet_shares_no_port() -> None:
    ports = hostchange_ports()
    assert max(ports) < 32768
    assert not ports & fleet_stage_ports()
    for name, scenario in scenario_envs().items():
        assert not ports & sandbox_ports(scenario), name


def deb13_ports() -> set[int]:
    """tests/deb13 (make test-deb13, beside anything): the serving host on the bases + 1, the
    LB and monitoring host on the bases and Prometheus on 32690."""
    sys.path.insert(0, str(Path(__file__).resolve().parent / "deb13"))
    import deb13

    assert (deb13.SSH_BASE, deb13.GRPC_BASE, deb13.REST_BASE) == (32400, 32500, 32600)
    return deb13.published_ports()


def test_the_debian_13_proof_shares_no_port() -> None:
    ports = deb13_ports()
    assert ports == {32400, 32401, 32500, 32501, 32600, 32601, 32690}
    assert max(ports) < 32768
    assert not ports & fleet_stage_ports()
    assert not ports & hostchange_ports()
    for name, scenario in scenario_envs().items():
        assert not ports & sandbox_ports(scenario), name
    # The demo sandbox (make demo): 18400-18600 and Prometheus 19090.
    assert not ports & (set(range(18400, 18700)) | {19090})
