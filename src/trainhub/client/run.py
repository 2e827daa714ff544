"""The plain-loop API: ``trainhub.start(...)`` gives a :class:`Run`, a small layer over the session.

::

    import trainhub

    with trainhub.start(project="shapes", name="exp1", epochs=3) as run:
        for epoch in range(3):
            loss = train_one_epoch()                     # your code
            torch.save(model.state_dict(), "last.pt")    # your code
            run.log(epoch, {"train/loss": loss})
            run.save_checkpoint("last.pt", epoch)        # rate limited, uploaded in the background
            if run.stop_requested:                       # "Stop" pressed in the hub
                break
        run.finish("last.pt", {"val/loss": loss})        # the final model; waits (bounded) for delivery

How a run ends:

* :meth:`Run.finish` reports the final metrics and uploads the final model (the hub marks the model
  ``done``), waits at most ``final_timeout`` seconds for everything to be delivered, then closes.
* Leaving the ``with`` block normally without ``finish()`` marks the model ``done`` too (the loop
  ended without an error), without a final model.
* An exception escaping the ``with`` block marks the model ``failed`` (``cancelled`` for
  ``KeyboardInterrupt``) and propagates unchanged. :meth:`Run.fail` does the same by hand.

Every method runs on the training thread, only writes to the session's spool and never raises (an
internal error is logged once); the only waits are in ``finish`` and ``close`` and they are bounded.

Rate limits (the session's ``rate_limits``): :meth:`Run.log` releases the queued epochs at most every
``rate_limits["metrics"]`` seconds (3 s; the rest goes at the end), :meth:`Run.save_checkpoint` uploads
the first checkpoint and then at most one every ``rate_limits["ckpt"]`` seconds (15 min) unless
``force=True``.

Checkpoints are snapshotted before they are queued, so that the training loop may delete or replace
its file at once: a file is hard-linked (no copy) as ``<dir>/.trainhub-upload/<model_id>-<kind><ext>``
next to it (if the file system cannot link, the file itself is queued). A link does not protect against
a rewrite in place (``torch.save`` to the same path truncates the same file): the uploader then sends
the file as it is when it reads it, and reads it again if it changes during the upload. A directory (the
Transformers trainer's ``checkpoint-N``) is packed into an uncompressed zip there, marked so that
:func:`trainhub.pull` unpacks it again. The snapshots are deleted once the run has delivered
everything; otherwise they stay for the next process (or ``trainhub sync``) to send.

Resuming: ``trainhub.start(model=<id or URL>)`` continues that hub model (new epochs are added to it
and its status goes back to ``training``); :func:`trainhub.pull` downloads its last checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from trainhub.client.guard import guarded
from trainhub.client.nullsession import NullSession
from trainhub.client.ratelimit import RateLimiter
from trainhub.client.session import HubSession, start_session

__all__ = ["DIR_ZIP_COMMENT", "STAGING_DIR", "Run", "start"]

log = logging.getLogger("trainhub")
PREFIX = "trainhub: "

#: Directory, next to a checkpoint, of the snapshots waiting to be uploaded.
STAGING_DIR = ".trainhub-upload"
#: Comment of the zip a checkpoint directory is packed into; :func:`trainhub.pull` unpacks these.
DIR_ZIP_COMMENT = b"trainhub:checkpoint-dir"

Session = HubSession | NullSession


def _announce(url: str | None) -> None:
    if url:  # a NullSession (TRAINHUB_MODE=disabled) has no model page
        message = f"{PREFIX}View model at {url}"
        log.info(message)
        print(message, flush=True)


def _zip_dir(src: Path, dst: Path) -> None:
    # Stored, not deflated: checkpoints hardly compress and this runs on the training thread.
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(src).as_posix())
        zf.comment = DIR_ZIP_COMMENT


class Run:
    """One training run of a plain loop (one hub model). Make it with :func:`start`.

    Args:
        session: the session to report through (:class:`~trainhub.HubSession` or
            :class:`~trainhub.NullSession`).
        resumed: the run continues an existing hub model: its status is set back to ``training``.
    """

    def __init__(self, session: Session, *, resumed: bool = False) -> None:
        self.session = session
        clock = getattr(session, "clock", time.monotonic)
        self._limiter = RateLimiter(dict(session.rate_limits), clock)
        self._last_epoch: int | None = None
        self._status: str | None = None  # how the run ended, once it has
        self._staged: set[Path] = set()
        if resumed:
            session.set_status("training")

    # -- state -------------------------------------------------------------------------------------

    @property
    def model_id(self) -> str | None:
        """The hub model's id (``None`` when reporting is disabled)."""
        return self.session.model_id

    @property
    def model_url(self) -> str | None:
        """The hub model's web page (``None`` when reporting is disabled)."""
        return self.session.model_url

    @property
    def stop_requested(self) -> bool:
        """Whether the hub asked this run to stop (seen by the last heartbeat); check it every epoch."""
        return bool(self.session.stop_requested)

    @property
    def status(self) -> str | None:
        """``None`` while the run is open, then how it ended: ``done``, ``failed`` or ``cancelled``."""
        return self._status

    # -- training-thread API -----------------------------------------------------------------------

    @guarded(None)
    def log(self, epoch: int, metrics: Mapping[str, Any]) -> None:
        """Record one epoch's metrics (numbers; anything else is sent as ``None``).

        Logging the same epoch again replaces its values. The queued epochs are released to the
        uploader at most every ``rate_limits["metrics"]`` seconds; :meth:`finish` sends the rest.
        """
        if self._status is not None:
            log.warning("%slog(%s) after the run ended is ignored", PREFIX, epoch)
            return
        epoch = int(epoch)
        self.session.queue_metrics(epoch, metrics)
        self._last_epoch = epoch if self._last_epoch is None else max(self._last_epoch, epoch)
        if self._limiter.acquire("metrics"):
            self.session.upload_metrics()

    @guarded(False)
    def save_checkpoint(
        self, path: str | os.PathLike[str], epoch: int, *, is_best: bool = False, force: bool = False
    ) -> bool:
        """Queue a checkpoint (a file, or a directory) as the model's ``last`` checkpoint.

        Args:
            path: the checkpoint file or directory; it may be overwritten or deleted right after.
            epoch: the epoch it was saved at.
            is_best: it is also the best so far (the hub points ``best`` at it too).
            force: ignore the checkpoint rate limit.

        Returns:
            Whether it was queued (False: rate limited, missing, or the run has ended).
        """
        if self._status is not None:
            return False
        if force:
            self._limiter.reset("ckpt")
        elif not self._limiter.acquire("ckpt"):
            return False
        staged = self._stage(Path(path), "last")
        if staged is None:
            return False
        self.session.upload_model(int(epoch), staged, is_best=bool(is_best))
        return True

    @guarded(None)
    def finish(
        self,
        best_path: str | os.PathLike[str] | None = None,
        metrics: Mapping[str, Any] | None = None,
        *,
        epoch: int | None = None,
    ) -> None:
        """End the run: final metrics, final model, status ``done``; waits (bounded), then closes.

        Args:
            best_path: the model to keep (file or directory), uploaded as the ``final`` (and ``best``)
                checkpoint. Without it the model is just marked ``done``.
            metrics: the final evaluation's metrics, stored as the model's ``final_metrics``.
            epoch: epoch of the final model (default: the last logged epoch).
        """
        if self._status is not None:
            return
        self._status = "done"
        try:
            if metrics:
                self.session.set_final_metrics(metrics)
            staged = self._stage(Path(best_path), "final") if best_path is not None else None
            if staged is not None:
                final_epoch = epoch if epoch is not None else (self._last_epoch or 0)
                self.session.upload_model(int(final_epoch), staged, final=True)  # waits, bounded
            else:
                self.session.set_status("done")
        finally:
            self._close()

    @guarded(None)
    def fail(self, exc: BaseException | None = None) -> None:
        """End the run as ``failed`` (``cancelled`` for a ``KeyboardInterrupt``) and close it."""
        if self._status is not None:
            return
        self._status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            self.session.set_status(self._status)
        finally:
            self._close()

    @guarded(None)
    def close(self) -> None:
        """End the run as ``done`` if it has not ended yet (no final model), and close the session."""
        if self._status is None:
            self._status = "done"
            try:
                self.session.set_status("done")
            finally:
                self._close()

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            self.fail(exc)
        else:
            self.close()

    def __repr__(self) -> str:
        return f"Run(model_url={self.model_url!r}, status={self._status!r})"

    # -- internals ---------------------------------------------------------------------------------

    def _close(self) -> None:
        self.session.upload_metrics()
        # Whether everything reached the hub (waits at most exit_timeout): only then may the
        # snapshots go; otherwise the spool still points at them for the next process.
        delivered = self.session.flush(self._exit_timeout())
        self.session.alive = False
        self.session.close()
        if delivered:
            self._drop_staged()
        _announce(self.model_url)

    def _exit_timeout(self) -> float:
        settings = getattr(self.session, "settings", None)
        return float(getattr(settings, "exit_timeout", 5.0))

    def _stage(self, src: Path, kind: str) -> Path | None:
        """A snapshot of ``src`` that the training loop cannot change, or ``src`` itself."""
        if not src.exists():
            log.warning("%scheckpoint %s not found, not uploaded", PREFIX, src)
            return None
        if self.model_id is None:  # reporting disabled: nothing will read it
            return src
        src = src.resolve()
        # An integration's own file already in a staging directory is snapshotted beside it.
        staging = src.parent if src.parent.name == STAGING_DIR else src.parent / STAGING_DIR
        if src.is_dir():
            dst = staging / f"{self.model_id}-{kind}.zip"
        else:
            dst = staging / f"{self.model_id}-{kind}{src.suffix}"
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        try:
            staging.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            if src.is_dir():
                _zip_dir(src, tmp)
            else:
                os.link(src, tmp)
            if dst.exists() and os.path.samefile(tmp, dst):
                tmp.unlink()  # rewritten in place since the last snapshot: still the same file
            else:
                # A rename: an upload already reading the previous snapshot keeps its own file.
                os.replace(tmp, dst)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            if src.is_dir():
                log.warning("%scould not pack checkpoint directory %s (%s), not uploaded", PREFIX, src, exc)
                return None
            log.debug("%scould not link %s (%s); uploading the file itself", PREFIX, src, exc)
            return src
        self._staged.add(dst)
        return dst

    def _drop_staged(self) -> None:
        for path in self._staged:
            with contextlib.suppress(OSError):
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only when empty: other runs may share it
        self._staged.clear()


def start(
    project: str | None = None,
    name: str | None = None,
    *,
    model: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    config: Mapping[str, Any] | None = None,
    epochs: int | None = None,
    task: str | None = None,
    rate_limits: Mapping[str, float] | None = None,
    **session_kwargs: Any,
) -> Run:
    """Start reporting a training run to the hub; use the result as a context manager.

    Never raises for the hub's sake: with ``TRAINHUB_MODE=disabled`` or invalid settings (logged)
    the run reports nothing but keeps the same API. Prints ``trainhub: View model at <url>``.

    Args:
        project: project of a new model (else ``TRAINHUB_PROJECT``, else the hub's default).
        name: name of a new model (default: its id).
        model: continue this existing hub model (an id or ``<hub>/models/<id>``) instead of making
            a new one, e.g. after resuming from :func:`trainhub.pull`'s checkpoint.
        url: hub root URL (else ``TRAINHUB_URL``, or the root of a ``model`` URL).
        api_key: API key (else ``TRAINHUB_API_KEY``).
        config: training arguments to store with the model (made JSON-able).
        epochs: planned number of epochs.
        task: free-form task name (``classify``, ``detect``...).
        rate_limits: overrides of ``{"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}`` seconds.
        **session_kwargs: more :class:`~trainhub.HubSession` arguments (``spool_dir``, ``mode``...).

    Returns:
        The :class:`Run`.
    """
    model_id: str | None = None
    model_url: str | None = None
    if model is not None:
        if "/" in model:
            model_url = model
        else:
            model_id = model
    session = start_session(
        url=url,
        api_key=api_key,
        project=project,
        name=name,
        model_id=model_id,
        model_url=model_url,
        config=config,
        epochs=epochs,
        task=task,
        rate_limits=rate_limits,
        **session_kwargs,
    )
    run = Run(session, resumed=model is not None)
    _announce(run.model_url)
    return run
