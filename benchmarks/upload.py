"""Upload of a large checkpoint: trainhub's chunked upload vs a raw HTTP PUT on loopback.

    python -m benchmarks.upload [--size-mib 1024] [--dir /tmp]

Two runs, each with its server and its client in their own processes on 127.0.0.1:

* ``raw``: one ``PUT`` with httpx (the body streamed from the file, 1 MiB at a time) to a minimal
  stdlib server that streams it to a file and fsyncs it: the machine's ceiling.
* ``trainhub``: the real hub (``python -m trainhub serve``) and the client's worker delivering one
  spooled checkpoint: hash the file, create a session, parts of 8-64 MiB, complete (the server checks size
  and sha256, fsyncs, renames into place). The time counts all of it, hashing included.

Memory: each process's peak RSS during the upload minus its RSS just before (Linux: the peak is reset
through ``/proc/<pid>/clear_refs`` and read as ``VmHWM`` from ``/proc/<pid>/status``). Goals (issue
4): growth under 100 MB on each side, trainhub at least half the raw throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

MIB = 1024 * 1024
ADMIN_KEY = "ul_" + "b2" * 20


def _kib(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _reset_peak(pid: int | str) -> int:
    """Reset the peak RSS of ``pid``; its RSS now, KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _kib(pid, "VmRSS")


# -- roles run in their own processes --------------------------------------------------------------


def raw_server(root: str) -> None:
    """Stream each PUT body to a file, fsync, answer 200. Prints its port."""
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_PUT(self) -> None:
            remaining = int(self.headers["content-length"])
            with open(Path(root) / "raw.bin", "wb") as out:
                while remaining > 0:
                    chunk = self.rfile.read(min(MIB, remaining))
                    if not chunk:
                        break
                    out.write(chunk)
                    remaining -= len(chunk)
                out.flush()
                os.fsync(out.fileno())
            self.send_response(200 if remaining == 0 else 400)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


def raw_client(url: str, path: str) -> None:
    import httpx

    size = os.path.getsize(path)

    def body() -> Any:
        with open(path, "rb") as f:
            while chunk := f.read(MIB):
                yield chunk

    with httpx.Client(timeout=120) as client:
        base = _reset_peak("self")
        t0 = time.perf_counter()
        r = client.put(f"{url}/raw.bin", content=body(), headers={"content-length": str(size)})
        seconds = time.perf_counter() - t0
    assert r.status_code == 200, r.status_code
    print(json.dumps({"seconds": seconds, "rss_base_kib": base, "rss_peak_kib": _kib("self", "VmHWM")}))


def trainhub_client(url: str, path: str, model_id: str, spool_dir: str) -> None:
    from trainhub.client.retry import RetryPolicy
    from trainhub.client.spool import Spool
    from trainhub.client.transport import Transport
    from trainhub.client.worker import Worker

    spool = Spool.for_model(spool_dir, model_id)
    worker = Worker(spool, Transport(url, ADMIN_KEY), model_id, policy=RetryPolicy(deadline=60))
    worker.uploads.progress = False
    spool.put("checkpoint", {"path": path, "kind": "last", "epoch": 1})
    base = _reset_peak("self")
    t0 = time.perf_counter()
    ok = worker.drain()
    seconds = time.perf_counter() - t0
    assert ok and worker.counters["sent"] == {"checkpoint": 1}, worker.stats()
    out = {"seconds": seconds, "rss_base_kib": base, "rss_peak_kib": _kib("self", "VmHWM")}
    print(json.dumps(out | worker.uploads.stats()))


# -- the orchestrator ------------------------------------------------------------------------------


def _start(cmd: list[str], env: dict[str, str], ready: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(ready):
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, line.strip()
    raise RuntimeError(f"{cmd} did not start")


def _run_client(args: list[str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def bench_raw(work: Path, file: Path) -> dict[str, Any]:
    root = work / "raw"
    root.mkdir()
    proc, line = _start([sys.executable, __file__, "raw-server", str(root)], dict(os.environ), "")
    try:
        url = f"http://127.0.0.1:{int(line)}"
        base = _reset_peak(proc.pid)
        result = _run_client(["raw-client", url, str(file)])
        result["server_growth_kib"] = _kib(proc.pid, "VmHWM") - base
    finally:
        proc.kill()
        proc.wait()
    (root / "raw.bin").unlink()
    return result


def bench_trainhub(work: Path, file: Path) -> dict[str, Any]:
    import httpx

    data = work / "hub"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRAINHUB_")}
    env.update(TRAINHUB_ADMIN_KEY=ADMIN_KEY, TRAINHUB_LOG_LEVEL="warning", TRAINHUB_EVENTS="0")
    cmd = [sys.executable, "-m", "trainhub", "serve", "--host", "127.0.0.1", "--port", "0"]
    proc, line = _start([*cmd, "--data-dir", str(data)], env, "trainhub listening on ")
    try:
        url = line.split()[-1]
        model_id = os.urandom(10).hex()
        headers = {"authorization": f"Bearer {ADMIN_KEY}"}
        httpx.put(
            f"{url}/api/v1/models/{model_id}", json={"name": "bench"}, headers=headers
        ).raise_for_status()
        base = _reset_peak(proc.pid)
        result = _run_client(["trainhub-client", url, str(file), model_id, str(work / "spool")])
        result["server_growth_kib"] = _kib(proc.pid, "VmHWM") - base
        stored = httpx.get(f"{url}/api/v1/models/{model_id}/checkpoints", headers=headers).json()
        result["sha256"] = stored[0]["sha256"]
    finally:
        proc.terminate()
        proc.wait(30)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="file size (default 1024 = 1 GiB)")
    parser.add_argument("--dir", default=None, help="where to put the file and the servers' data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="trainhub-bench-upload-", dir=args.dir) as tmp:
        work = Path(tmp)
        file = work / "checkpoint.pt"
        with open(file, "wb") as f:
            for _ in range(args.size_mib):
                f.write(os.urandom(MIB))
        size = file.stat().st_size
        sha = _sha256(file)  # also puts the file in the page cache for both runs alike
        raw = bench_raw(work, file)
        hub = bench_trainhub(work, file)
        assert hub["sha256"] == sha, "the stored checkpoint differs from the file"
    rows = [("raw PUT (ceiling)", raw), ("trainhub (chunked)", hub)]
    print(f"upload of {size / MIB:.0f} MiB on 127.0.0.1 ({os.cpu_count()} CPUs)")
    print(f"{'':20} {'MB/s':>8} {'seconds':>8} {'client RSS +MB':>15} {'server RSS +MB':>15}")
    for name, r in rows:
        client_mb = (r["rss_peak_kib"] - r["rss_base_kib"]) / 1024
        print(
            f"{name:20} {size / 1e6 / r['seconds']:8.0f} {r['seconds']:8.2f} {client_mb:15.1f} "
            f"{r['server_growth_kib'] / 1024:15.1f}"
        )
    print(f"trainhub / raw throughput: {raw['seconds'] / hub['seconds']:.2f} (goal >= 0.5)")
    print(f"trainhub bytes sent: {hub['bytes_sent']} in {hub['parts_sent']} parts; sha256 verified")


if __name__ == "__main__":
    role = sys.argv[1] if len(sys.argv) > 1 else ""
    if role == "raw-server":
        raw_server(sys.argv[2])
    elif role == "raw-client":
        raw_client(sys.argv[2], sys.argv[3])
    elif role == "trainhub-client":
        trainhub_client(*sys.argv[2:6])
    else:
        main()
