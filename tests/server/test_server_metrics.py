"""Metrics: idempotent upserts, reads, best metrics, non-finite values."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import HubServer
from server_helpers import API, client, new_model


def test_resending_an_epoch_replaces_it_without_duplicates(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        url = f"{API}/models/{m['id']}/metrics"
        c.post(url, json={"epochs": [{"epoch": 0, "metrics": {"loss": 2.0, "metrics/mAP50(B)": 0.1}}]})
        again = c.post(
            url, json={"epochs": [{"epoch": 0, "metrics": {"loss": 1.5, "metrics/mAP50(B)": 0.2}}]}
        )
        assert again.json() == {"epochs": 1, "points": 2, "replaced": 1}  # the hub says it had epoch 0
        r = c.post(url, json={"epochs": [{"epoch": 1, "metrics": {"loss": 1.0, "metrics/mAP50(B)": 0.3}}]})
        assert r.status_code == 200 and r.json() == {"epochs": 1, "points": 2, "replaced": 0}
        rows = c.get(url).json()
    assert rows == [
        {"epoch": 0, "metrics": {"loss": 1.5, "metrics/mAP50(B)": 0.2}},
        {"epoch": 1, "metrics": {"loss": 1.0, "metrics/mAP50(B)": 0.3}},
    ]


def test_series_and_best_metrics(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        epochs = [
            {"epoch": i, "metrics": {"train/box_loss": loss, "metrics/mAP50(B)": mp, "lr/pg0": 0.01}}
            for i, (loss, mp) in enumerate([(3.0, 0.1), (2.0, 0.4), (2.5, 0.3)])
        ]
        c.post(f"{API}/models/{m['id']}/metrics", json={"epochs": epochs})
        series = c.get(f"{API}/models/{m['id']}/metrics/series", params={"name": "train/box_loss"}).json()
        model = c.get(f"{API}/models/{m['id']}").json()
        empty = c.get(f"{API}/models/{m['id']}/metrics/series", params={"name": "nope"}).json()
    assert series == {"name": "train/box_loss", "epochs": [0, 1, 2], "values": [3.0, 2.0, 2.5]}
    assert model["best_metrics"] == {"metrics/mAP50(B)": 0.4, "train/box_loss": 2.0}
    assert model["last_epoch"] == 2 and model["status"] == "training"
    assert empty == {"name": "nope", "epochs": [], "values": []}


def test_values_keep_double_precision(hub_server: HubServer) -> None:
    with client(hub_server) as c:
        m = new_model(c)
        c.post(
            f"{API}/models/{m['id']}/metrics",
            json={"epochs": [{"epoch": 0, "metrics": {"x": 0.1234567890123}}]},
        )
        assert c.get(f"{API}/models/{m['id']}/metrics").json()[0]["metrics"]["x"] == 0.1234567890123


def test_nan_and_infinity_tokens_are_stored_as_null(hub_server: HubServer) -> None:
    body = (
        b'{"epochs": [{"epoch": 0, "metrics": {"a": NaN, "b": Infinity, "c": -Infinity, "d": null, "e": 1}}]}'
    )
    with client(hub_server) as c:
        m = new_model(c)
        r = c.post(
            f"{API}/models/{m['id']}/metrics", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 200, r.text
        rows = c.get(f"{API}/models/{m['id']}/metrics").json()
    assert rows == [{"epoch": 0, "metrics": {"a": None, "b": None, "c": None, "d": None, "e": 1.0}}]
