"""The plain-loop API (``trainhub.start`` -> ``Run``) and ``trainhub.pull``, against the real hub."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

import trainhub
from trainhub.cli import main as cli_main
from trainhub.client.errors import ConfigError, PermanentError, TransientError
from trainhub.client.run import DIR_ZIP_COMMENT, STAGING_DIR
from trainhub.protocol import API_PREFIX

FAST = {"metrics": 0.0, "ckpt": 0.0, "heartbeat": 0.2}
README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def hub(hub_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("TRAINHUB_URL", hub_server.url)
    monkeypatch.setenv("TRAINHUB_API_KEY", hub_server.api_key)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    return hub_server


def get(hub: Any, path: str) -> Any:
    with httpx.Client(base_url=hub.url + API_PREFIX, headers=hub.headers(), trust_env=False) as client:
        return client.get(path).raise_for_status().json()


def epochs(hub: Any, model_id: str) -> dict[int, dict[str, Any]]:
    rows = get(hub, f"/models/{model_id}/metrics")
    rows = rows["epochs"] if isinstance(rows, dict) else rows
    return {row["epoch"]: row["metrics"] for row in rows}


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_plain_loop_reports_epochs_checkpoints_and_the_final_model(hub: Any, tmp_path: Path) -> None:
    with trainhub.start(project="plain", name="loop", epochs=3, rate_limits=FAST) as run:
        for epoch in range(3):
            ckpt = write(tmp_path / "last.pt", f"weights {epoch}".encode())
            run.log(epoch, {"train/loss": 1.0 / (epoch + 1)})
            assert run.save_checkpoint(ckpt, epoch, is_best=epoch == 1)
        run.finish(ckpt, {"val/acc": 0.9})
    assert run.status == "done"
    model = get(hub, f"/models/{run.model_id}")
    assert (model["status"], model["name"], model["project"], model["epochs"]) == ("done", "loop", "plain", 3)
    assert model["final_metrics"] == {"val/acc": 0.9}
    assert epochs(hub, str(run.model_id)) == {
        0: {"train/loss": 1.0},
        1: {"train/loss": 0.5},
        2: {"train/loss": 1 / 3},
    }
    slots = {c["kind"]: c for c in get(hub, f"/models/{run.model_id}/checkpoints")}
    digest = hashlib.sha256(b"weights 2").hexdigest()
    assert (slots["last"]["epoch"], slots["last"]["sha256"], slots["final"]["sha256"]) == (2, digest, digest)
    assert slots["best"]["sha256"] == digest  # final also points best at it
    assert not (tmp_path / STAGING_DIR).exists()  # all delivered: snapshots removed


def test_checkpoints_are_rate_limited_unless_forced(hub: Any, tmp_path: Path) -> None:
    ckpt = write(tmp_path / "last.pt", b"w")
    with trainhub.start(rate_limits={"ckpt": 3600.0}) as run:
        assert run.save_checkpoint(ckpt, 0)  # the first one goes at once
        assert not run.save_checkpoint(ckpt, 1)
        assert run.save_checkpoint(ckpt, 2, force=True)
        assert not run.save_checkpoint(tmp_path / "missing.pt", 3, force=True)


def test_the_snapshot_survives_the_loop_rewriting_its_file(hub: Any, tmp_path: Path) -> None:
    ckpt = write(tmp_path / "last.pt", b"epoch 0")
    run = trainhub.start(rate_limits=FAST, mode="offline")  # nothing leaves: the snapshot must wait
    run.save_checkpoint(ckpt, 0)
    ckpt.unlink()
    write(ckpt, b"epoch 1, written anew")
    staged = tmp_path / STAGING_DIR / f"{run.model_id}-last.pt"
    assert staged.read_bytes() == b"epoch 0"
    run.close()
    assert staged.exists()  # not delivered (offline): kept for `trainhub sync`


def test_leaving_the_block_without_finish_marks_the_model_done(hub: Any) -> None:
    with trainhub.start(rate_limits=FAST) as run:
        run.log(0, {"loss": 1.0})
    assert get(hub, f"/models/{run.model_id}")["status"] == "done"
    assert run.status == "done"


@pytest.mark.parametrize(
    ("exc", "status"), [(RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "cancelled")]
)
def test_an_exception_in_the_block_marks_the_model_and_propagates(
    hub: Any, exc: BaseException, status: str
) -> None:
    with pytest.raises(type(exc)), trainhub.start(rate_limits=FAST) as run:
        run.log(0, {"loss": 1.0})
        raise exc
    assert run.status == status
    assert get(hub, f"/models/{run.model_id}")["status"] == status


def test_a_stop_pressed_in_the_hub_reaches_the_loop(hub: Any) -> None:
    import time

    with trainhub.start(rate_limits=FAST) as run:
        run.log(0, {"loss": 1.0})
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the worker creates the model in the background
            with httpx.Client(headers=hub.headers(), trust_env=False) as client:
                if client.post(f"{hub.url}{API_PREFIX}/models/{run.model_id}/stop").status_code == 200:
                    break
            time.sleep(0.02)
        while not run.stop_requested and time.monotonic() < deadline:
            time.sleep(0.02)  # a heartbeat every 0.2 s carries it
        assert run.stop_requested


def test_resuming_continues_the_same_hub_model(hub: Any, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), trainhub.start(project="resume", rate_limits=FAST) as first:
        first.log(0, {"loss": 1.0})
        first.save_checkpoint(write(tmp_path / "a" / "last.pt", b"epoch 0"), 0)
        raise RuntimeError("preempted")
    model_id = str(first.model_id)
    assert get(hub, f"/models/{model_id}")["status"] == "failed"

    path = trainhub.pull(model_id, out=tmp_path / "b")
    assert path == tmp_path / "b" / f"{model_id}-last.pt" and path.read_bytes() == b"epoch 0"
    with trainhub.start(model=f"{hub.url}/models/{model_id}", rate_limits=FAST) as second:
        second.log(1, {"loss": 0.5})
        second.finish(write(tmp_path / "b" / "best.pt", b"epoch 1"))
    assert second.model_id == model_id
    assert get(hub, f"/models/{model_id}")["status"] == "done"
    assert sorted(epochs(hub, model_id)) == [0, 1]
    assert [m["id"] for m in get(hub, "/models?project=resume")] == [model_id]


def test_pull_round_trips_a_checkpoint_directory(hub: Any, tmp_path: Path) -> None:
    folder = tmp_path / "out" / "checkpoint-8"
    write(folder / "trainer_state.json", b"{}")
    write(folder / "sub" / "model.safetensors", b"\x00" * 1000)
    with trainhub.start(rate_limits=FAST) as run:
        run.save_checkpoint(folder, 0)
    got = trainhub.pull(str(run.model_id), out=tmp_path / "pulled")
    assert got == tmp_path / "pulled" / f"{run.model_id}-last" and got.is_dir()
    assert (got / "trainer_state.json").read_bytes() == b"{}"
    assert (got / "sub" / "model.safetensors").read_bytes() == b"\x00" * 1000
    # a plain zip (a torch .pt file is one too) stays a file
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a", "b")
    assert zipfile.ZipFile(plain).comment != DIR_ZIP_COMMENT


def test_pull_checks_the_download_against_the_hubs_sha256(tmp_path: Path) -> None:
    listing = [{"kind": "last", "sha256": "0" * 64, "size": 5, "download_url": "/x"}]

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/checkpoints"):
            return httpx.Response(200, json=listing)
        return httpx.Response(200, content=b"hello")

    with pytest.raises(TransientError, match="sha256"):
        trainhub.pull(
            "abc", out=tmp_path, url="http://hub.invalid", http_transport=httpx.MockTransport(answer)
        )
    assert list(tmp_path.iterdir()) == []  # no half or wrong file left behind


def test_pull_names_what_is_missing(hub: Any, tmp_path: Path) -> None:
    with trainhub.start(rate_limits=FAST) as run:
        run.log(0, {"loss": 1.0})
    with pytest.raises(PermanentError, match="no 'last' checkpoint") as info:
        trainhub.pull(str(run.model_id), out=tmp_path)
    assert info.value.code == "checkpoint_not_found"
    with pytest.raises(ConfigError):
        trainhub.pull("x", kind="worst")


def test_the_pull_command_prints_the_path(
    hub: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with trainhub.start(rate_limits=FAST) as run:
        run.save_checkpoint(write(tmp_path / "w.pt", b"w"), 0)
    assert cli_main(["pull", str(run.model_id), "--last", "--out", str(tmp_path / "dl")]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{run.model_id}-last.pt")
    assert cli_main(["pull", str(run.model_id), "--final", "--out", str(tmp_path / "dl")]) == 1
    assert "checkpoint_not_found" in capsys.readouterr().err


def test_disabled_mode_gives_a_run_that_does_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRAINHUB_MODE", "disabled")
    with trainhub.start(project="x") as run:
        run.log(0, {"loss": 1.0})
        assert run.save_checkpoint(write(tmp_path / "w.pt", b"w"), 0)
        assert not run.stop_requested
        run.finish(tmp_path / "w.pt")
    assert run.model_id is None and not (tmp_path / STAGING_DIR).exists()


@pytest.mark.heavy
def test_the_readme_plain_loop_example_runs(hub: Any, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    example = next(b for b in blocks if "trainhub.start(project=" in b)
    script = tmp_path / "example.py"
    script.write_text(example + "\nprint('MODEL', run.model_id, run.status)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["TRAINHUB_EVENTS"] = "0"
    out = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    model_id, status = out.stdout.strip().splitlines()[-1].split()[1:]
    assert status == "done"
    assert get(hub, f"/models/{model_id}")["status"] == "done"
    assert sorted(epochs(hub, model_id)) == [0, 1, 2]
    assert {"last", "best", "final"} <= {c["kind"] for c in get(hub, f"/models/{model_id}/checkpoints")}
