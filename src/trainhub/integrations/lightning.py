"""Report PyTorch Lightning training to a trainhub server with one callback.

::

    import lightning.pytorch as pl
    from trainhub.integrations.lightning import HubCallback

    trainer = pl.Trainer(max_epochs=10, callbacks=[HubCallback(project="demo", name="exp1")])
    trainer.fit(model, datamodule=dm)      # TRAINHUB_URL / TRAINHUB_API_KEY from the environment

What :class:`HubCallback` does (through a :class:`trainhub.Run`, so all of it spools and returns):

* ``on_train_start``: starts the run (a new hub model, or the one named in the checkpoint being
  resumed, see below); the model's ``config`` is the LightningModule's ``hparams``, its planned
  epochs ``max_epochs``. Heartbeats run from here until the end.
* ``on_train_epoch_end``: the epoch's ``trainer.callback_metrics`` (everything logged with
  ``self.log``: epoch aggregates of training steps and the validation that just ran) as epoch
  ``trainer.current_epoch``. Keys logged later in the same epoch (``LightningModule.on_train_epoch_end``)
  are added at the next hook.
* after Lightning saves a checkpoint (``on_save_checkpoint`` marks it; the next hook uploads the
  newest file of the ``ModelCheckpoint`` callbacks, once Lightning has written it): the ``last``
  checkpoint, rate limited (``rate_limits["ckpt"]``, 15 min by default, the first one at once),
  ``is_best`` when the monitored metric equals the ``ModelCheckpoint``'s best score.
* ``on_fit_end``: final metrics (``trainer.callback_metrics``) and the final model: the
  ``ModelCheckpoint``'s best checkpoint, else the newest one, else the module's ``state_dict``;
  the hub marks the model ``done``. This waits (bounded, ``final_timeout``) for the uploads.
* ``on_exception``: marks the model ``failed`` (``cancelled`` for Ctrl-C).
* a stop requested in the hub (seen by a heartbeat) sets ``trainer.should_stop``: after the current
  batch on one device; at the end of the epoch with several processes (rank 0's decision is
  broadcast, like ``EarlyStopping`` does). The run then ends normally, with its final model.
* Only global rank 0 talks to the hub. The hub model id is saved in the callback's ``state_dict``
  (so in every Lightning checkpoint): ``trainer.fit(model, ckpt_path=...)`` continues the same hub
  model, e.g. with the last checkpoint from the hub: ``ckpt_path=trainhub.pull(model_id)``.

No hook lets an exception reach Lightning: each runs inside trainhub's guard (logged once).
Importing this module imports Lightning (``lightning.pytorch``); without it the ImportError says
``pip install 'trainhub[lightning]'``.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

try:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "trainhub.integrations.lightning needs PyTorch Lightning: pip install 'trainhub[lightning]'"
    ) from exc

from trainhub.client.guard import guarded
from trainhub.client.run import STAGING_DIR, Run, start

__all__ = ["HubCallback"]

log = logging.getLogger("trainhub")


def _scalars(metrics: Any) -> dict[str, float]:
    """The scalar entries of ``trainer.callback_metrics`` (tensors, numbers) as floats."""
    out: dict[str, float] = {}
    for key, value in dict(metrics or {}).items():
        numel = getattr(value, "numel", None)
        if callable(numel) and numel() != 1:
            continue
        try:
            out[str(key)] = float(value)
        except (TypeError, ValueError):
            continue
    return out


class HubCallback(pl.Callback):
    """Stream a Lightning ``fit`` to the hub: metrics per epoch, checkpoints, final model, heartbeats.

    Args:
        project: project of a new model (else ``TRAINHUB_PROJECT``, else the hub's default).
        name: name of a new model (default: its id).
        model: continue this hub model (id or URL) instead of making one; default: the model named
            in the checkpoint being resumed, if any.
        url: hub root URL (else ``TRAINHUB_URL``).
        api_key: API key (else ``TRAINHUB_API_KEY``).
        rate_limits: overrides of ``{"metrics": 3.0, "ckpt": 900.0, "heartbeat": 30.0}`` seconds.
        **session_kwargs: more :func:`trainhub.start` / :class:`trainhub.HubSession` arguments.

    Attributes:
        run: the :class:`trainhub.Run` of the current (or last) fit on rank 0, else ``None``.
        model_id: the hub model id of the current (or last, or resumed) fit.
    """

    def __init__(
        self,
        *,
        project: str | None = None,
        name: str | None = None,
        model: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        rate_limits: dict[str, float] | None = None,
        **session_kwargs: Any,
    ) -> None:
        self._start_kwargs: dict[str, Any] = {
            "project": project,
            "name": name,
            "url": url,
            "api_key": api_key,
            "rate_limits": rate_limits,
            **session_kwargs,
        }
        self._model = model
        self.run: Run | None = None
        self.model_id: str | None = None
        self._resumed_id: str | None = None
        self._saved = False  # Lightning saved a checkpoint that is not uploaded yet
        self._epoch_metrics: tuple[int, dict[str, float]] | None = None

    @property
    def state_key(self) -> str:
        """Key of this callback's state in Lightning checkpoints (stable across arguments)."""
        return "trainhub.HubCallback"

    def __getstate__(self) -> dict[str, Any]:
        # Spawn-based strategies pickle the callbacks; a live session (threads, sqlite) must stay home.
        state = self.__dict__.copy()
        state["run"] = None
        return state

    # -- checkpoint state --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """``{"model_id": ...}`` of the running hub model (saved with every Lightning checkpoint)."""
        model_id = self.run.model_id if self.run is not None else None
        return {"model_id": model_id} if model_id else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Remember the hub model of the checkpoint being resumed: ``on_train_start`` continues it."""
        model_id = state_dict.get("model_id")
        self._resumed_id = str(model_id) if model_id else None

    # -- hooks -------------------------------------------------------------------------------------

    @guarded(None)
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the hub run (global rank 0 only)."""
        if not trainer.is_global_zero:
            return
        self._saved = False
        self._epoch_metrics = None
        hparams = dict(getattr(pl_module, "hparams", None) or {})
        self.run = start(
            model=self._model or self._resumed_id,
            config=hparams,
            epochs=trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else None,
            **self._start_kwargs,
        )
        self.model_id = self.run.model_id

    @guarded(None)
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Upload a checkpoint saved at the end of the last epoch; complete that epoch's metrics."""
        if self.run is not None:
            self._complete_epoch(trainer)
            self._upload_saved(trainer, self._last_epoch(trainer))

    @guarded(None)
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Upload a checkpoint saved after the last batch; stop if the hub asked (one process)."""
        if self.run is None:
            return
        if self._saved:
            self._upload_saved(trainer, int(trainer.current_epoch))
        if trainer.world_size == 1 and self.run.stop_requested and not trainer.should_stop:
            log.info("trainhub: stop requested from the hub, ending training after this batch")
            trainer.should_stop = True

    @guarded(None)
    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Log the epoch's metrics, upload a checkpoint saved by the validation; stop if asked (DDP)."""
        if trainer.world_size > 1:
            # Every rank must take the same decision, or the others wait for rank 0 forever.
            asked = self.run is not None and self.run.stop_requested
            if trainer.strategy.broadcast(asked, src=0) and not trainer.should_stop:
                log.info("trainhub: stop requested from the hub, ending training after this epoch")
                trainer.should_stop = True
        if self.run is None:
            return
        epoch = int(trainer.current_epoch)
        metrics = _scalars(trainer.callback_metrics)
        self._epoch_metrics = (epoch, metrics)
        self.run.log(epoch, metrics)
        self._upload_saved(trainer, epoch)

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        """Note that Lightning is saving: the file is written after this hook, uploaded at the next."""
        self._saved = True

    @guarded(None)
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Complete the last epoch's metrics and upload a checkpoint saved at its end."""
        if self.run is not None:
            self._complete_epoch(trainer)
            self._upload_saved(trainer, self._last_epoch(trainer))

    @guarded(None)
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Final metrics and final model; the hub marks the model done. Waits, bounded."""
        run, self.run = self.run, None
        if run is None:
            return
        final = self._best_or_newest(trainer)
        if final is None and run.model_id is not None:
            import torch

            final = Path(trainer.default_root_dir) / STAGING_DIR / f"{run.model_id}-weights.pt"
            final.parent.mkdir(parents=True, exist_ok=True)
            torch.save(pl_module.state_dict(), final)
        run.finish(final, _scalars(trainer.callback_metrics), epoch=self._last_epoch(trainer))
        if final is not None and final.name == f"{run.model_id}-weights.pt":
            final.unlink(missing_ok=True)  # finish() uploaded its own snapshot of it
            with contextlib.suppress(OSError):
                final.parent.rmdir()  # only when empty: a snapshot not delivered yet stays

    @guarded(None)
    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Mark the model failed (``cancelled`` for a KeyboardInterrupt) and close the run."""
        run, self.run = self.run, None
        if run is not None:
            run.fail(exception)

    # -- internals ---------------------------------------------------------------------------------

    def _complete_epoch(self, trainer: pl.Trainer) -> None:
        # Keys logged after our on_train_epoch_end (LightningModule.on_train_epoch_end, monitoring
        # callbacks) are only visible now. Only new keys: the values we sent stay authoritative.
        if self.run is None or self._epoch_metrics is None:
            return
        epoch, sent = self._epoch_metrics
        later = {k: v for k, v in _scalars(trainer.callback_metrics).items() if k not in sent}
        if later:
            merged = {**sent, **later}
            self._epoch_metrics = (epoch, merged)
            self.run.log(epoch, merged)

    @staticmethod
    def _files(trainer: pl.Trainer) -> list[Path]:
        files: list[Path] = []
        for cb in trainer.checkpoint_callbacks:
            if isinstance(cb, ModelCheckpoint):
                names = [cb.last_model_path, cb.best_model_path, *cb.best_k_models]
                files += [Path(n) for n in names if n]
        return [f for f in files if f.is_file()]

    def _newest(self, trainer: pl.Trainer) -> Path | None:
        files = self._files(trainer)
        return max(files, key=lambda f: f.stat().st_mtime_ns) if files else None

    def _best_or_newest(self, trainer: pl.Trainer) -> Path | None:
        cb = trainer.checkpoint_callback
        if isinstance(cb, ModelCheckpoint) and cb.monitor and cb.best_model_path:
            best = Path(cb.best_model_path)
            if best.is_file():
                return best
        return self._newest(trainer)

    @staticmethod
    def _is_best(trainer: pl.Trainer, path: Path) -> bool:
        cb = trainer.checkpoint_callback
        if not isinstance(cb, ModelCheckpoint) or not cb.monitor:
            return False
        if cb.best_model_path and Path(cb.best_model_path) == path:
            return True
        current = trainer.callback_metrics.get(cb.monitor)
        best = cb.best_model_score
        return current is not None and best is not None and float(current) == float(best)

    def _last_epoch(self, trainer: pl.Trainer) -> int:
        # Between epochs ``current_epoch`` already counts the finished one; the last logged is right.
        return self._epoch_metrics[0] if self._epoch_metrics else int(trainer.current_epoch)

    def _upload_saved(self, trainer: pl.Trainer, epoch: int) -> None:
        if not self._saved or self.run is None:
            return
        self._saved = False
        newest = self._newest(trainer)
        if newest is not None:
            self.run.save_checkpoint(newest, epoch, is_best=self._is_best(trainer, newest))
