"""Transformers' HubCallback against a real hub: a tiny real ``PreTrainedModel`` (161 parameters)
built from a config (nothing downloaded; HF_HUB_OFFLINE=1), synthetic data, the real ``Trainer`` on
the CPU in this process (the crash case in a child process, since it ends at interpreter exit)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hub_api import FAST, RecordingSession, checkpoints, epochs, model, models_in, request_stop, wait_for

import trainhub
from trainhub.client.run import Run

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from trainhub.integrations import transformers as hub_transformers  # noqa: E402
from trainhub.integrations.transformers import HubCallback, rename_logs  # noqa: E402

pytestmark = pytest.mark.heavy

# The model, data and Trainer of every test; also run by the child process of the crash test.
SETUP = '''
import torch
from transformers import PretrainedConfig, PreTrainedModel, Trainer, TrainerCallback, TrainingArguments


class TinyConfig(PretrainedConfig):
    model_type = "trainhub-tiny"

    def __init__(self, n_in=8, hidden=16, **kwargs):
        super().__init__(**kwargs)
        self.n_in, self.hidden = n_in, hidden


class TinyModel(PreTrainedModel):
    """8 -> 16 -> 1 regression: 161 parameters."""

    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(config.n_in, config.hidden), torch.nn.Tanh(), torch.nn.Linear(config.hidden, 1)
        )
        self.post_init()

    def forward(self, x, labels=None):
        out = self.net(x)
        loss = torch.nn.functional.mse_loss(out, labels) if labels is not None else None
        return {"loss": loss, "logits": out}


class Data(torch.utils.data.Dataset):
    def __init__(self, n=32):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 8, generator=gen)
        self.y = self.x.sum(dim=1, keepdim=True) * 0.1

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": self.y[i]}


def make_trainer(out, callbacks, epochs=3):
    torch.manual_seed(0)
    args = TrainingArguments(
        output_dir=str(out),
        num_train_epochs=epochs,
        per_device_train_batch_size=16,
        per_device_eval_batch_size=32,
        learning_rate=0.05,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="epoch",
        metric_for_best_model="eval_loss",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    return Trainer(
        model=TinyModel(TinyConfig()),
        args=args,
        train_dataset=Data(),
        eval_dataset=Data(),
        callbacks=callbacks,
    )
'''
exec(SETUP)  # defines TinyConfig, TinyModel, Data, make_trainer here too


def test_logs_are_renamed_like_the_trainers_own_loggers() -> None:
    logs = {"loss": 0.5, "grad_norm": 1.0, "learning_rate": 0.1, "epoch": 1.0, "eval_loss": 0.4, "test_f1": 1}
    assert rename_logs({**logs, "train_runtime": 2.0, "note": "x"}) == {
        "train/loss": 0.5,
        "train/grad_norm": 1.0,
        "train/learning_rate": 0.1,
        "eval/loss": 0.4,
        "test/f1": 1.0,
        "train/runtime": 2.0,
    }


def test_three_epochs_reach_the_hub_with_metrics_checkpoints_and_final_model(
    reporting: Any, tmp_path: Path
) -> None:
    callback = HubCallback(project="hf", name="tiny", rate_limits=FAST)
    trainer = make_trainer(tmp_path / "out", [callback])  # type: ignore[name-defined]  # noqa: F821
    trainer.train()
    model_id = callback.model_id
    assert model_id is not None

    got = model(reporting, model_id)
    assert (got["status"], got["name"], got["project"], got["epochs"]) == ("done", "tiny", "hf", 3)
    assert got["config"]["learning_rate"] == 0.05
    assert {"eval/loss", "train/loss", "train/runtime"} <= set(got["final_metrics"])
    rows = epochs(reporting, model_id)
    assert sorted(rows) == [0, 1, 2]
    for metrics in rows.values():
        assert {"train/loss", "train/learning_rate", "eval/loss"} <= set(metrics)
    slots = checkpoints(reporting, model_id)
    assert set(slots) == {"last", "best", "final"}
    assert slots["last"]["epoch"] == 2

    # the final model comes back as a directory save_pretrained wrote, and loads
    final = trainhub.pull(model_id, kind="final", out=tmp_path / "pulled")
    assert final.is_dir() and (final / "config.json").is_file()
    loaded = TinyModel.from_pretrained(final)  # type: ignore[name-defined]  # noqa: F821
    assert sum(p.numel() for p in loaded.parameters()) == 161
    assert not (tmp_path / "out" / ".trainhub-upload").exists()  # delivered: snapshots removed


def test_hook_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The Trainer events the callback acts on, and what it asks of the session, in order."""
    calls: list[str] = []

    class Recording(HubCallback):
        pass

    for hook in ("on_train_begin", "on_log", "on_evaluate", "on_save", "on_epoch_end", "on_train_end"):

        def recorder(self: Any, *args: Any, _hook: str = hook, **kwargs: Any) -> Any:
            calls.append(_hook)
            return getattr(HubCallback, _hook)(self, *args, **kwargs)

        setattr(Recording, hook, recorder)

    monkeypatch.setattr(hub_transformers, "start", lambda **kw: Run(RecordingSession(calls)))
    make_trainer(tmp_path, [Recording()], epochs=2).train()  # type: ignore[name-defined]  # noqa: F821

    def epoch(n: int, best: bool) -> list[str]:
        return [
            "on_epoch_end",
            "on_log",  # the epoch's training loss
            f"session.queue_metrics({n})",
            "session.upload_metrics",
            "on_log",  # the evaluation's metrics, merged into the same epoch
            f"session.queue_metrics({n})",
            "session.upload_metrics",
            "on_evaluate",  # the same metrics again: nothing new to send
            "on_save",
            f"session.upload_model(last, epoch={n}, is_best={best})",
        ]

    assert calls == [
        "on_train_begin",
        *epoch(0, True),
        *epoch(1, True),
        "on_log",  # the end-of-training summary: final metrics
        "on_train_end",
        "session.set_final_metrics",
        "session.upload_model(final, epoch=1, is_best=False)",
        "session.upload_metrics",
        "session.close",
    ]


def test_a_run_stopped_after_epoch_1_resumes_the_same_hub_model(reporting: Any, tmp_path: Path) -> None:
    class Crash(transformers.TrainerCallback):  # type: ignore[misc]
        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.epoch is not None and state.epoch >= 2:
                raise RuntimeError("the machine went away")

    first = HubCallback(project="hf-resume", name="tiny", rate_limits=FAST)
    with pytest.raises(RuntimeError, match="went away"):
        make_trainer(tmp_path / "a", [first, Crash()]).train()  # type: ignore[name-defined]  # noqa: F821
    model_id = first.model_id
    assert model_id is not None
    first._at_exit()  # what interpreter exit does after train() raised (the crash test runs it for real)
    assert model(reporting, model_id)["status"] == "failed"
    assert sorted(epochs(reporting, model_id)) == [0, 1]
    assert checkpoints(reporting, model_id)["last"]["epoch"] == 1

    # Another machine: the checkpoint directory comes from the hub; the callback knows nothing.
    ckpt = trainhub.pull(model_id, kind="last", out=tmp_path / "pulled")
    assert (ckpt / "trainer_state.json").is_file()
    second = HubCallback(project="hf-resume", rate_limits=FAST)
    trainer = make_trainer(tmp_path / "b", [second])  # type: ignore[name-defined]  # noqa: F821
    trainer.train(resume_from_checkpoint=str(ckpt))

    assert second.model_id == model_id
    assert trainer.state.epoch == 3
    assert model(reporting, model_id)["status"] == "done"
    assert sorted(epochs(reporting, model_id)) == [0, 1, 2]
    assert {"last", "final"} <= set(checkpoints(reporting, model_id))
    assert [m["id"] for m in models_in(reporting, "hf-resume")] == [model_id]


def test_a_stop_requested_in_the_hub_ends_training_early(reporting: Any, tmp_path: Path) -> None:
    callback = HubCallback(project="hf-stop", rate_limits=FAST)

    class StopAfterFirstEpoch(transformers.TrainerCallback):  # type: ignore[misc]
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.epoch is not None and state.epoch <= 1:
                assert callback.model_id is not None and callback.run is not None
                request_stop(reporting, callback.model_id)
                run = callback.run
                # reaches the client with a heartbeat (every 0.2 s here)
                assert wait_for(lambda: run.stop_requested), run.session.stats

    trainer = make_trainer(tmp_path, [callback, StopAfterFirstEpoch()], epochs=50)  # type: ignore[name-defined]  # noqa: F821
    trainer.train()
    assert trainer.state.epoch is not None and trainer.state.epoch <= 2
    assert callback.model_id is not None
    got = model(reporting, callback.model_id)
    assert got["status"] == "done" and got["stop_requested"] is True
    assert "final" in checkpoints(reporting, callback.model_id)


CRASH_CHILD = SETUP + textwrap.dedent("""
    import sys
    from trainhub.integrations.transformers import HubCallback


    class Boom(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            if state.epoch and state.epoch >= 1:
                raise ValueError("nan everywhere")


    callback = HubCallback(project="hf-crash", rate_limits={"metrics": 0, "ckpt": 0, "heartbeat": 0.2})
    trainer = make_trainer(sys.argv[1], [callback, Boom()])
    try:
        trainer.train()
    finally:
        print("MODEL_ID", callback.model_id, flush=True)
""")


def test_an_exception_marks_the_model_failed_at_exit(reporting: Any, tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(CRASH_CHILD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode != 0 and "nan everywhere" in run.stderr, run.stderr[-3000:]
    model_id = next(line.split()[1] for line in run.stdout.splitlines() if line.startswith("MODEL_ID "))
    got = model(reporting, model_id)
    assert got["status"] == "failed", (got, run.stderr[-3000:])
    assert sorted(epochs(reporting, model_id)) == [0]
    assert [m["id"] for m in models_in(reporting, "hf-crash")] == [model_id]
