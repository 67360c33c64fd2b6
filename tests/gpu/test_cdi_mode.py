"""The toolkit role's GPU access mode (tfs_fleet.common.cdi_engine_mode): CDI from Docker 25.0,
26.1 with toolkit 1.19+ (CDI spec 0.7.0), the default from Docker 28.2."""

from __future__ import annotations

import pytest
from ansible_collections.tfs_fleet.common.plugins.filter.cdi import cdi_engine_mode


@pytest.mark.parametrize(
    ("engine", "toolkit", "on", "default_on"),
    [
        ("20.10.24+dfsg1", "1.20.0-1", False, False),  # Debian 12: no CDI
        ("25.0.3", "1.18.2-1", True, False),  # spec 0.6 era: Docker 25 reads it (opt-in)
        ("25.0.3", "1.20.0-1", False, False),  # spec 0.7.0 needs 26.1
        ("26.0.2", "1.19.1-1", False, False),
        ("26.1.5+dfsg1", "1.20.0-1", True, False),  # Debian 13
        ("28.1.1", "1.20.0-1", True, False),
        ("28.2.0", "1.20.0-1", True, True),
        ("29.1.3", "1.20.0-1", True, True),
        ("", "1.20.0-1", False, False),  # the engine did not answer
    ],
)
def test_mode(engine: str, toolkit: str, on: bool, default_on: bool) -> None:
    mode = cdi_engine_mode(engine, toolkit)
    assert (mode["on"], mode["default_on"]) == (on, default_on)
    assert (mode["why"] == "") == on


def test_the_reason_names_what_is_missing() -> None:
    assert "has no CDI" in cdi_engine_mode("20.10.24", "1.20.0-1")["why"]
    old = cdi_engine_mode("25.0.3", "1.20.0-1")
    assert old["min_engine"] == "26.1" and "0.7.0 needs Docker 26.1" in old["why"]
    assert cdi_engine_mode("25.0.3", "1.18.2-1")["min_engine"] == "25.0"
    off = cdi_engine_mode("29.0.0", "1.20.0-1", wanted=False)
    assert not off["on"] and off["why"] == "nvidia_container_toolkit_cdi is false"


def test_a_toolkit_version_that_is_not_one_is_named() -> None:
    with pytest.raises(ValueError, match="nvidia_container_toolkit_version 'latest'"):
        cdi_engine_mode("26.1.5", "latest")
