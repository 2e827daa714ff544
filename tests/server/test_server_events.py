"""Anonymous usage events."""

from __future__ import annotations

from typing import TYPE_CHECKING

from server_helpers import API, client

if TYPE_CHECKING:
    from conftest import HubServer


def test_events_are_counted_per_kind_and_version(hub_server: HubServer) -> None:
    events = [
        {
            "kind": "train",
            "install_id": "i1",
            "task": "detect",
            "versions": {"trainhub": "0.1.0", "ultralytics": "8.3.1"},
        },
        {"kind": "train", "install_id": "i2", "versions": {"trainhub": "0.1.0"}},
        {"kind": "predict", "install_id": "i1", "mode": "predict", "ts": 1.5},
    ]
    with client(hub_server) as c:
        r = c.post(f"{API}/events", json={"events": events})
        assert r.status_code == 202 and r.json() == {"accepted": 3, "duplicates": 0}
        s = c.get(f"{API}/events/summary").json()
    assert s["total"] == 3 and s["installs"] == 2
    assert s["by_kind"] == {"train": 2, "predict": 1}
    assert s["by_trainhub_version"] == {"0.1.0": 2, "unknown": 1}
    assert s["by_ultralytics_version"] == {"8.3.1": 1, "unknown": 2}
