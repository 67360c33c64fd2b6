"""Verifier of molecule/tfserving_lb's side_effect (issue 23): what HAProxy and the serving
host's deployment record said at each step, as side_effect.yml wrote it."""

import json
import os
from pathlib import Path

import pytest

testinfra_hosts = ["tfs-fleet-mlb-lb"]
SERVING = "tfs-fleet-mlb-1"
REST, GRPC = f"tfs_rest/{SERVING}", f"tfs_grpc/{SERVING}"
# The HA pair: the first LB host (Debian 13) and the second (Debian 12).
LBS = ("tfs-fleet-mlb-lb", "tfs-fleet-mlb-lb2")


@pytest.fixture(scope="module")
def seen():
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "drain-side-effect.json"
    return json.loads(path.read_text())


def assert_in_service(state):
    """Both servers ready and UP on each LB host's HAProxy, and no drain note in the deployment
    record."""
    assert set(state["lbs"]) == set(LBS), state
    for lb in LBS:
        assert state["lbs"][lb] == {REST: "ready", GRPC: "ready"}, (lb, state)
        assert state["status"][lb] == ["UP", "UP"], (lb, state)
    assert state["drained"] == {}, state


def test_a_bad_image_fails_before_the_drain_naming_the_variable(host, seen):
    for key in ("missing_tag", "bad_tag"):
        msg = seen[key]
        assert "failed before any drain" in msg or "Nothing was drained" in msg, (key, msg)
        assert "tfserving_image" in msg, (key, msg)
    assert "not a Docker tag" in seen["bad_tag"], seen["bad_tag"]
    assert "no-such-tag" in seen["missing_tag"], seen["missing_tag"]
    assert_in_service(seen["states"]["a"])


def test_a_drain_the_tool_left_is_undone_by_the_next_normal_run(host, seen):
    drained = seen["states"]["b_drained"]
    for lb in LBS:  # the tool drains the host on every LB host of the pair
        assert drained["lbs"][lb] == {REST: "drain", GRPC: "drain"}, (lb, drained)
    assert drained["drained"]["by"] == "tfs-fleet", drained
    assert "failed after the drain" in drained["drained"]["reason"], drained
    assert_in_service(seen["states"]["b_after"])


def test_a_drain_by_hand_stays_and_is_reported(host, seen):
    after = seen["states"]["c_after"]
    # Drained by hand on the first LB host only: kept there, untouched on the other.
    assert after["lbs"][LBS[0]] == {REST: "drain", GRPC: "drain"}, after
    assert after["lbs"][LBS[1]] == {REST: "ready", GRPC: "ready"}, after
    assert after["drained"] == {}, after
    assert seen["lb_kept"] == [{"host": SERVING, "servers": [REST, GRPC], "why": "operator"}], seen
    assert seen["other_lb_kept"] == [[]], seen
