"""The heartbeat thread: ``POST /api/v1/models/{id}/heartbeat`` every interval while the run is alive.

Body (:class:`~trainhub.protocol.HeartbeatIn`): ``{"agent": "python-<version>-<platform>",
"agent_id": <the id the hub returned last, or None>, "interval": <seconds until the next beat>}``;
never a host name. The hub shows the model as ``stalled`` after two missed intervals and ``crashed``
after its crash timeout, so the interval travels with every beat. The reply's ``stop_requested`` is
kept in :attr:`Heartbeat.stop_requested` for the training loop to poll.

The thread waits on an Event, so :meth:`Heartbeat.stop` takes effect at once rather than after the
next sleep. Failures are logged at debug level and the next beat is simply tried on time; a
rejected API key (401/403) stops the heartbeats.
"""

from __future__ import annotations

import logging
import sys
import threading

from trainhub.client.errors import AuthError
from trainhub.client.transport import Transport
from trainhub.protocol import HeartbeatIn, model_path

__all__ = ["Heartbeat", "agent_string"]

log = logging.getLogger("trainhub")


def agent_string() -> str:
    """``python-<version>-<platform>``, e.g. ``python-3.11.7-linux``."""
    import platform

    return f"python-{platform.python_version()}-{sys.platform}"


class Heartbeat:
    """Sends heartbeats for one model on a daemon thread.

    Args:
        transport: one-attempt HTTP sender.
        model_id: the model.
        interval: seconds between beats.
        ready: the first beat waits for this Event (the worker sets it once the model exists on the hub).
    """

    def __init__(
        self, transport: Transport, model_id: str, interval: float, *, ready: threading.Event | None = None
    ) -> None:
        self.transport = transport
        self.model_id = model_id
        self.interval = interval
        self.ready = ready
        self.agent_id: str | None = None
        self.stop_requested = False
        self.beats = 0  # successful beats, for stats and tests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether the thread is alive and not asked to stop."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) the thread."""
        if self.running:
            return
        self._stop = threading.Event()  # a fresh Event: an old thread still exiting keeps its own
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="trainhub-heartbeat", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        """Stop beating now; optionally join up to ``timeout`` seconds (a beat in flight is abandoned)."""
        self._stop.set()
        thread = self._thread
        if timeout > 0 and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def beat(self) -> bool:
        """Send one heartbeat now; whether the hub accepted it."""
        body: HeartbeatIn = {"agent": agent_string(), "agent_id": self.agent_id, "interval": self.interval}
        result = self.transport.request("POST", f"{model_path(self.model_id)}/heartbeat", json=body)
        if not result.ok:
            exc = result.exception()
            log.debug("trainhub: heartbeat failed: %s", exc)
            if isinstance(exc, AuthError):
                self._stop.set()
            return False
        if isinstance(result.body, dict):
            agent_id = result.body.get("agent_id")
            self.agent_id = str(agent_id) if agent_id is not None else self.agent_id
            self.stop_requested = bool(result.body.get("stop_requested", False)) or self.stop_requested
        self.beats += 1
        return True

    def _run(self, stop: threading.Event) -> None:
        if self.ready is not None:
            while not self.ready.wait(0.2):
                if stop.is_set():
                    return
        while not stop.is_set():
            try:
                self.beat()
            except Exception:  # never let a bug end the thread silently... or the run
                log.debug("trainhub: heartbeat error", exc_info=True)
            if stop.wait(self.interval):
                return
