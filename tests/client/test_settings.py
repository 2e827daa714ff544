"""ClientSettings: arguments over environment over defaults, validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainhub.client.errors import ConfigError
from trainhub.client.settings import ClientSettings


def test_defaults() -> None:
    s = ClientSettings.from_env({})
    assert s.url == "http://127.0.0.1:8000"
    assert (s.mode, s.heartbeat_interval, s.rate_limit_metrics, s.rate_limit_ckpt) == (
        "online",
        30.0,
        3.0,
        900.0,
    )
    assert (s.final_timeout, s.exit_timeout) == (120.0, 5.0)
    assert s.spool_dir == Path.home() / ".cache" / "trainhub" / "spool"


def test_environment() -> None:
    env = {
        "TRAINHUB_URL": "https://hub.example.com/",
        "TRAINHUB_API_KEY": "ul_x",
        "TRAINHUB_PROJECT": "p",
        "TRAINHUB_MODE": "OFFLINE",
        "TRAINHUB_SPOOL_DIR": "/tmp/sp",
        "TRAINHUB_HEARTBEAT_INTERVAL": "5",
        "TRAINHUB_FINAL_TIMEOUT": "1.5",
        "TRAINHUB_SPOOL_MAX_BYTES": "1000",
    }
    s = ClientSettings.from_env(env)
    assert s.url == "https://hub.example.com"
    assert (s.api_key, s.project, s.mode, s.spool_dir) == ("ul_x", "p", "offline", Path("/tmp/sp"))
    assert (s.heartbeat_interval, s.final_timeout, s.spool_max_bytes) == (5.0, 1.5, 1000)


def test_arguments_win_over_the_environment() -> None:
    s = ClientSettings.from_env({"TRAINHUB_URL": "http://env:1"}, url="http://arg:2", api_key=None)
    assert s.url == "http://arg:2"


@pytest.mark.parametrize(
    "env",
    [
        {"TRAINHUB_MODE": "sometimes"},
        {"TRAINHUB_URL": "hub:8000"},
        {"TRAINHUB_EXIT_TIMEOUT": "soon"},
        {"TRAINHUB_FINAL_TIMEOUT": "-1"},
        {"TRAINHUB_HEARTBEAT_INTERVAL": "nan"},
    ],
)
def test_invalid_values_are_config_errors(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        ClientSettings.from_env(env)


def test_unknown_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ClientSettings.from_env({}, colour="blue")


def test_replace_validates() -> None:
    s = ClientSettings.from_env({})
    assert s.replace(exit_timeout=1).exit_timeout == 1.0
    with pytest.raises(ConfigError):
        s.replace(mode="nope")


def test_every_field_is_documented() -> None:
    import dataclasses

    doc = ClientSettings.__doc__ or ""
    for f in dataclasses.fields(ClientSettings):
        assert f"{f.name}:" in doc
        if f.name != "events":
            assert f"TRAINHUB_{f.name.upper()}" in doc
