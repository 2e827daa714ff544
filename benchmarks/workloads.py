"""The HTTP workloads of :mod:`benchmarks.compare`, written once against a small target interface.

A target speaks one tracker's REST API: :class:`TrainhubTarget` (the native API) and
:class:`MlflowTarget` (MLflow's REST API, as its own client sends it). Request bodies are built
before the clock starts, so the figures measure the server, not the benchmark's JSON encoding.
"""

from __future__ import annotations

import json
import math
import secrets
import socket
import statistics
import threading
import time
from typing import Any, Protocol

import httpx

from benchmarks.clientside import METRICS, epoch_metrics

#: Points per ingest request (MLflow's log-batch takes at most 1,000 metrics).
BATCH_POINTS = 1_000
#: An ingest batch is this many metrics x (BATCH_POINTS / this) steps.
BATCH_METRICS = 10
SERIES_NAME = "train/loss"


class Target(Protocol):
    name: str
    base: str
    headers: dict[str, str]

    def create_run(self, client: httpx.Client, label: str) -> str: ...

    def batch(self, run: str, points: list[tuple[str, int, float]]) -> tuple[str, bytes]: ...

    def read_full(self, client: httpx.Client, run: str, name: str) -> int: ...

    def read_downsampled(self, client: httpx.Client, run: str, name: str, max_points: int) -> int: ...


def http_client(headers: dict[str, str], timeout: float = 300) -> httpx.Client:
    """A kept-alive client with TCP_NODELAY, as MLflow's client (urllib3) has by default.

    httpcore sets TCP_NODELAY on its sockets too; it is asked for here explicitly because without
    it a request written in two parts (headers, then body) waits for the server's delayed ACK:
    ~5-40 ms per request on loopback.
    """
    transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.Client(headers=headers, timeout=timeout, transport=transport)


def _check(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 400:
        raise RuntimeError(f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text[:300]}")
    return r


class TrainhubTarget:
    def __init__(self, name: str, base: str, headers: dict[str, str]) -> None:
        self.name, self.base, self.headers = name, base, {**headers, "content-type": "application/json"}

    def create_run(self, client: httpx.Client, label: str) -> str:
        model_id = secrets.token_hex(10)
        _check(client.put(f"{self.base}/api/v1/models/{model_id}", json={"name": label, "project": "bench"}))
        return model_id

    def batch(self, run: str, points: list[tuple[str, int, float]]) -> tuple[str, bytes]:
        epochs: dict[int, dict[str, float]] = {}
        for name, step, value in points:
            epochs.setdefault(step, {})[name] = value
        body = {"epochs": [{"epoch": s, "metrics": m} for s, m in epochs.items()]}
        return f"{self.base}/api/v1/models/{run}/metrics", json.dumps(body).encode()

    def read_full(self, client: httpx.Client, run: str, name: str) -> int:
        r = _check(client.get(f"{self.base}/api/v1/models/{run}/metrics/series", params={"name": name}))
        return len(r.json()["values"])

    def read_downsampled(self, client: httpx.Client, run: str, name: str, max_points: int) -> int:
        r = _check(
            client.get(
                f"{self.base}/api/v1/models/{run}/charts/series",
                params={"name": name, "max_points": max_points},
            )
        )
        return len(r.json()["values"])


class MlflowTarget:
    """MLflow's REST API: ``runs/log-batch`` to write, ``metrics/get-history`` to read."""

    def __init__(self, base: str) -> None:
        self.name, self.base, self.headers = "mlflow", base, {"content-type": "application/json"}
        self._experiment: str | None = None

    def create_run(self, client: httpx.Client, label: str) -> str:
        api = f"{self.base}/api/2.0/mlflow"
        if self._experiment is None:
            r = _check(
                client.post(f"{api}/experiments/create", json={"name": f"bench-{secrets.token_hex(4)}"})
            )
            self._experiment = r.json()["experiment_id"]
        r = _check(
            client.post(
                f"{api}/runs/create",
                json={
                    "experiment_id": self._experiment,
                    "run_name": label,
                    "start_time": int(time.time() * 1000),
                },
            )
        )
        return str(r.json()["run"]["info"]["run_id"])

    def batch(self, run: str, points: list[tuple[str, int, float]]) -> tuple[str, bytes]:
        ts = int(time.time() * 1000)
        metrics = [{"key": n, "value": v, "timestamp": ts, "step": s} for n, s, v in points]
        return f"{self.base}/api/2.0/mlflow/runs/log-batch", json.dumps(
            {"run_id": run, "metrics": metrics}
        ).encode()

    def read_full(self, client: httpx.Client, run: str, name: str) -> int:
        count, token = 0, None
        while True:  # paginated like MlflowClient.get_metric_history
            params = {"run_id": run, "metric_key": name}
            if token:
                params["page_token"] = token
            r = _check(client.get(f"{self.base}/api/2.0/mlflow/metrics/get-history", params=params))
            data = r.json()
            count += len(data.get("metrics", []))
            token = data.get("next_page_token")
            if not token:
                return count

    def read_downsampled(self, client: httpx.Client, run: str, name: str, max_points: int) -> int:
        # What MLflow's UI asks for a chart (sampled server-side, at most 2,500 points per run).
        r = _check(
            client.get(
                f"{self.base}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
                params={"run_ids": run, "metric_key": name, "max_results": min(max_points, 2500)},
            )
        )
        return len(r.json().get("metrics", []))


class FloorTarget:
    """The one-epoch workload's target for :mod:`benchmarks.floor`: trainhub's request body sent
    to a server that does nothing with it (no reads: it stores nothing)."""

    def __init__(self, base: str) -> None:
        self.name, self.base, self.headers = "floor", base, {"content-type": "application/json"}
        self._bodies = TrainhubTarget("floor", base, {})

    def create_run(self, client: httpx.Client, label: str) -> str:
        return secrets.token_hex(10)

    def batch(self, run: str, points: list[tuple[str, int, float]]) -> tuple[str, bytes]:
        return self._bodies.batch(run, points)

    def read_full(self, client: httpx.Client, run: str, name: str) -> int:
        raise NotImplementedError("the floor stores nothing")

    def read_downsampled(self, client: httpx.Client, run: str, name: str, max_points: int) -> int:
        raise NotImplementedError("the floor stores nothing")


def _points(steps: range, names: list[str]) -> list[tuple[str, int, float]]:
    return [(n, s, math.exp(-s / 50_000) + 0.01 * i) for s in steps for i, n in enumerate(names)]


def ingest(target: Target, clients: int, points_per_client: int) -> dict[str, Any]:
    """``clients`` threads, each with its own run and kept-alive connection, each sending
    ``points_per_client`` points in batches of :data:`BATCH_POINTS`; points/s over the wall time."""
    names = [f"ingest/m{i}" for i in range(BATCH_METRICS)]
    steps_per_batch = BATCH_POINTS // BATCH_METRICS
    plans: list[tuple[httpx.Client, list[tuple[str, bytes]]]] = []
    for c in range(clients):
        client = http_client(target.headers)
        run = target.create_run(client, f"ingest-{clients}-{c}")
        bodies = [
            target.batch(run, _points(range(lo, lo + steps_per_batch), names))
            for lo in range(0, points_per_client // BATCH_METRICS, steps_per_batch)
        ]
        plans.append((client, bodies))
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def send(client: httpx.Client, bodies: list[tuple[str, bytes]]) -> None:
        barrier.wait()
        try:
            for url, body in bodies:
                _check(client.post(url, content=body))
        except BaseException as exc:  # reported below, after the other threads end
            errors.append(exc)

    threads = [threading.Thread(target=send, args=plan) for plan in plans]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    for client, _ in plans:
        client.close()
    if errors:
        raise errors[0]
    total = sum(len(b) for _, b in plans) * BATCH_POINTS
    return {
        "clients": clients,
        "points": total,
        "seconds": round(elapsed, 3),
        "points_per_s": round(total / elapsed),
    }


def epoch_latency(target: Target, requests: int) -> dict[str, Any]:
    """Latency of one 15-metric epoch per request over one kept-alive connection.

    The first request is reported apart; p50/p99 are over the later ones, which is where a server
    without TCP_NODELAY would add ~40 ms each (delayed ACK, uvicorn issue #3149).
    """
    with http_client(target.headers, 60) as client:
        run = target.create_run(client, "epochs")
        bodies = [
            target.batch(run, [(n, e, v) for n, v in epoch_metrics(e).items()]) for e in range(requests)
        ]
        times = []
        for url, body in bodies:
            t0 = time.perf_counter_ns()
            _check(client.post(url, content=body))
            times.append(time.perf_counter_ns() - t0)
    later = sorted(t / 1e6 for t in times[1:])
    p50 = statistics.median(later)
    return {
        "requests": requests,
        "metrics_per_epoch": len(METRICS),
        "first_ms": round(times[0] / 1e6, 3),
        "p50_ms": round(p50, 3),
        "p99_ms": round(later[min(len(later) - 1, int(len(later) * 0.99))], 3),
        "max_ms": round(later[-1], 3),
        # Nagle + delayed ACK would put every later request at >= ~40 ms.
        "nagle_stall": p50 >= 35.0,
    }


def epoch_latency_trainhub_client(url: str, key: str, requests: int) -> dict[str, Any]:
    """:func:`epoch_latency` through trainhub's own client transport (as its worker thread sends)."""
    from trainhub.client.transport import Transport

    transport = Transport(url, key)
    model_id = secrets.token_hex(10)
    assert transport.request("PUT", f"/api/v1/models/{model_id}", json={"name": "client-epochs"}).ok
    times = []
    for e in range(requests):
        body = {"epochs": [{"epoch": e, "metrics": epoch_metrics(e)}]}
        t0 = time.perf_counter_ns()
        result = transport.request("POST", f"/api/v1/models/{model_id}/metrics", json=body)
        times.append(time.perf_counter_ns() - t0)
        if not result.ok:
            raise RuntimeError(f"trainhub client: metrics POST failed: {result}")
    transport.close()
    later = sorted(t / 1e6 for t in times[1:])
    return {
        "requests": requests,
        "p50_ms": round(statistics.median(later), 3),
        "p99_ms": round(later[min(len(later) - 1, int(len(later) * 0.99))], 3),
    }


def write_series(target: Target, points: int) -> str:
    """One run with a ``points``-step series of :data:`SERIES_NAME`; returns the run."""
    with http_client(target.headers) as client:
        run = target.create_run(client, "read")
        for lo in range(0, points, BATCH_POINTS):
            url, body = target.batch(run, _points(range(lo, min(points, lo + BATCH_POINTS)), [SERIES_NAME]))
            _check(client.post(url, content=body))
    return run


def read_series(target: Target, run: str, points: int, repeat: int, max_points: int = 1500) -> dict[str, Any]:
    """Median wall time of fetching the whole series, and of a downsampled one, over HTTP."""
    out: dict[str, Any] = {"points": points}
    with http_client(target.headers) as client:
        for kind, fetch in (
            ("full", lambda: target.read_full(client, run, SERIES_NAME)),
            ("downsampled", lambda: target.read_downsampled(client, run, SERIES_NAME, max_points)),
        ):
            times, got = [], 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                got = fetch()
                times.append(time.perf_counter() - t0)
            out[kind] = {
                "p50_ms": round(statistics.median(times) * 1000, 2),
                "min_ms": round(min(times) * 1000, 2),
                "returned": got,
            }
    if out["full"]["returned"] != points:
        raise RuntimeError(f"{target.name}: full read returned {out['full']['returned']} of {points} points")
    return out
