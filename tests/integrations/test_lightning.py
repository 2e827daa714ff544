"""Lightning's HubCallback against a real hub: a tiny real model (161 parameters, synthetic data).

Each test trains on the CPU in this process; the hub is the real server in a subprocess, read back
over its native API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hub_api import FAST, RecordingSession, checkpoints, epochs, model, models_in, request_stop, wait_for

import trainhub
from trainhub.client.run import Run

pl = pytest.importorskip("lightning.pytorch")
torch = pytest.importorskip("torch")

from lightning.pytorch.callbacks import ModelCheckpoint  # noqa: E402

from trainhub.integrations import lightning as hub_lightning  # noqa: E402
from trainhub.integrations.lightning import HubCallback  # noqa: E402

pytestmark = pytest.mark.heavy


class Tiny(pl.LightningModule):  # type: ignore[misc]
    """8 -> 16 -> 1 regression: 161 parameters."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

    def _loss(self, batch: Any) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch: Any, batch_idx: int) -> Any:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loaders(n: int = 32) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=gen)
    y = x.sum(dim=1, keepdim=True) * 0.1
    data = torch.utils.data.TensorDataset(x, y)
    return (
        torch.utils.data.DataLoader(data, batch_size=16),
        torch.utils.data.DataLoader(data, batch_size=32),
    )


def make_trainer(tmp_path: Path, callbacks: list[Any], max_epochs: int = 3) -> Any:
    checkpointing = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="val_loss", save_last=True)
    return pl.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        devices=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[checkpointing, *callbacks],
    )


def fit(trainer: Any, module: Any | None = None, ckpt_path: Any = None) -> Any:
    train, val = loaders()
    module = module or Tiny()
    trainer.fit(module, train, val, ckpt_path=ckpt_path)
    return module


def test_three_epochs_reach_the_hub_with_metrics_checkpoints_and_final_model(
    reporting: Any, tmp_path: Path
) -> None:
    callback = HubCallback(project="lightning", name="tiny", rate_limits=FAST)
    trainer = make_trainer(tmp_path, [callback])
    fit(trainer)
    model_id = callback.model_id
    assert model_id is not None

    got = model(reporting, model_id)
    assert (got["status"], got["name"], got["project"], got["epochs"]) == ("done", "tiny", "lightning", 3)
    assert got["config"] == {"lr": 0.05}
    assert {"train_loss", "val_loss"} <= set(got["final_metrics"])
    rows = epochs(reporting, model_id)
    assert sorted(rows) == [0, 1, 2]
    for metrics in rows.values():
        assert set(metrics) == {"train_loss", "val_loss"}
        assert all(isinstance(v, float) for v in metrics.values())
    slots = checkpoints(reporting, model_id)
    assert set(slots) == {"last", "best", "final"}
    assert slots["last"]["epoch"] == 2
    # the final model is the ModelCheckpoint's best
    best = Path(trainer.checkpoint_callback.best_model_path)
    assert slots["final"]["size"] == best.stat().st_size
    # everything was delivered, so the upload snapshots are gone
    assert not (tmp_path / "ckpt" / ".trainhub-upload").exists()


def test_hook_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The Lightning hooks the callback sees, and what it asks of the session, in order."""
    calls: list[str] = []

    class Recording(HubCallback):
        pass

    for hook in (
        "on_train_start",
        "on_train_epoch_start",
        "on_train_batch_end",
        "on_save_checkpoint",
        "on_train_epoch_end",
        "on_train_end",
        "on_fit_end",
        "on_exception",
        "state_dict",
        "load_state_dict",
    ):

        def recorder(self: Any, *args: Any, _hook: str = hook, **kwargs: Any) -> Any:
            calls.append(_hook)
            return getattr(HubCallback, _hook)(self, *args, **kwargs)

        setattr(Recording, hook, recorder)

    monkeypatch.setattr(hub_lightning, "start", lambda **kw: Run(RecordingSession(calls)))
    fit(make_trainer(tmp_path, [Recording()], max_epochs=2))
    # Lightning saves at the end of the epoch, after this callback's on_train_epoch_end (checkpoint
    # callbacks run last): the saved file is uploaded at the next hook, once it is on disk.
    saves = ["state_dict", "on_save_checkpoint", "state_dict", "on_save_checkpoint"]  # best-k, last.ckpt
    batches = ["on_train_batch_end", "on_train_batch_end"]
    expected = [
        "on_train_start",
        "on_train_epoch_start",
        *batches,
        "on_train_epoch_end",
        "session.queue_metrics(0)",
        "session.upload_metrics",
        *saves,
        "on_train_epoch_start",
        "session.upload_model(last, epoch=0, is_best=True)",
        *batches,
        "on_train_epoch_end",
        "session.queue_metrics(1)",
        "session.upload_metrics",
        *saves,
        "on_train_end",
        "session.upload_model(last, epoch=1, is_best=True)",
        "on_fit_end",
        "session.set_final_metrics",
        "session.upload_model(final, epoch=1, is_best=False)",
        "session.upload_metrics",
        "session.close",
    ]
    assert calls == expected


def test_a_run_stopped_after_epoch_1_resumes_the_same_hub_model(reporting: Any, tmp_path: Path) -> None:
    class Crash(pl.Callback):  # type: ignore[misc]
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.current_epoch == 2:
                raise RuntimeError("the machine went away")

    first = HubCallback(project="resume", name="tiny", rate_limits=FAST)
    with pytest.raises(RuntimeError, match="went away"):
        fit(make_trainer(tmp_path / "a", [first, Crash()]))
    model_id = first.model_id
    assert model_id is not None
    assert model(reporting, model_id)["status"] == "failed"
    assert sorted(epochs(reporting, model_id)) == [0, 1]
    assert checkpoints(reporting, model_id)["last"]["epoch"] == 1

    # Another machine: the last checkpoint comes from the hub; the callback knows nothing.
    ckpt = trainhub.pull(model_id, kind="last", out=tmp_path / "pulled")
    second = HubCallback(project="resume", rate_limits=FAST)
    trainer = make_trainer(tmp_path / "b", [second])
    fit(trainer, ckpt_path=ckpt)

    assert second.model_id == model_id
    assert trainer.current_epoch == 3
    got = model(reporting, model_id)
    assert got["status"] == "done"
    assert sorted(epochs(reporting, model_id)) == [0, 1, 2]
    assert {"last", "final"} <= set(checkpoints(reporting, model_id))
    assert [m["id"] for m in models_in(reporting, "resume")] == [model_id]


def test_a_stop_requested_in_the_hub_ends_training_early(reporting: Any, tmp_path: Path) -> None:
    callback = HubCallback(project="stop", rate_limits=FAST)

    class StopAfterFirstEpoch(pl.Callback):  # type: ignore[misc]
        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if trainer.current_epoch == 0:
                assert callback.model_id is not None and callback.run is not None
                request_stop(reporting, callback.model_id)
                run = callback.run
                # reaches the client with a heartbeat (every 0.2 s here)
                assert wait_for(lambda: run.stop_requested), run.session.stats

    trainer = make_trainer(tmp_path, [callback, StopAfterFirstEpoch()], max_epochs=50)
    fit(trainer)
    assert trainer.current_epoch <= 2  # stopped after the first batch of epoch 1
    assert callback.model_id is not None
    got = model(reporting, callback.model_id)
    assert got["status"] == "done" and got["stop_requested"] is True
    assert "final" in checkpoints(reporting, callback.model_id)


def test_an_exception_marks_the_model_failed(reporting: Any, tmp_path: Path) -> None:
    class Boom(Tiny):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if self.current_epoch == 1:
                raise ValueError("nan everywhere")
            return super().training_step(batch, batch_idx)

    callback = HubCallback(project="boom", rate_limits=FAST)
    with pytest.raises(ValueError, match="nan everywhere"):
        fit(make_trainer(tmp_path, [callback]), Boom())
    assert callback.model_id is not None
    assert model(reporting, callback.model_id)["status"] == "failed"
    assert sorted(epochs(reporting, callback.model_id)) == [0]
