"""A minimal streaming HTTP server, the ceiling of an upload on this machine.

    python -m benchmarks.rawput PORT DIR

``PUT /<name>`` streams the body (Content-Length) to ``DIR/<name>`` in 1 MiB chunks, fsyncs it and
answers 200; ``GET /health`` answers 200. Stdlib only, one thread per connection, 127.0.0.1 only.
"""

from __future__ import annotations

import http.server
import os
import sys
from pathlib import Path

CHUNK = 1 << 20


def main() -> None:
    port, root = int(sys.argv[1]), Path(sys.argv[2])

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            self._reply(200 if self.path == "/health" else 404)

        def do_PUT(self) -> None:
            remaining = int(self.headers.get("content-length") or 0)
            with (root / Path(self.path).name).open("wb") as out:
                while remaining > 0:
                    chunk = self.rfile.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    out.write(chunk)
                    remaining -= len(chunk)
                out.flush()
                os.fsync(out.fileno())  # as durable as a stored checkpoint
            self._reply(200 if remaining == 0 else 400)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
