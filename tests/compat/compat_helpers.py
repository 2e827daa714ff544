"""Helpers of the compatibility tests: native API calls, dataset zips, child runs of real clients."""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integrations"))

from yolo_env import child_env, make_dataset

if TYPE_CHECKING:
    from conftest import HubServer

API = "/api/v1"
#: Where scripts/test.sh installs the HUB-era client (ultralytics 8.4.114 + hub-sdk 0.0.25).
UL114 = Path(os.environ.get("TRAINHUB_UL114", Path(sys.prefix) / "ul114"))
#: Train args of a tiny CPU run that downloads nothing (and no `project`: see the reference).
TINY = {"imgsz": 64, "batch": 4, "workers": 0, "device": "cpu", "amp": False, "plots": False, "seed": 0}


def api(hub: HubServer) -> httpx.Client:
    """A native-API client with the admin key."""
    return httpx.Client(base_url=hub.url + API, headers=hub.headers(), timeout=30.0, trust_env=False)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def dataset_zip(tmp: Path) -> Path:
    """A HUB-style dataset zip with a unique name: one top-level folder, one data.yaml, no ``path:``."""
    stem = f"thds{secrets.token_hex(4)}"
    root = tmp / "dsbuild" / stem
    make_dataset(root)
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: red\n  1: blue\n")
    out = tmp / f"{stem}.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, f"{stem}/{path.relative_to(root)}")
    return out


def new_model(hub: HubServer, *, name: str, config: dict[str, Any], epochs: int | None = None) -> str:
    """A model created through the native API (client-made id); returns its id."""
    model_id = secrets.token_hex(10)
    with api(hub) as c:
        r = c.put(
            f"/models/{model_id}",
            json={"name": name, "project": "compat", "config": config, "epochs": epochs},
        )
        assert r.status_code == 201, r.text
    return model_id


def hub_env(tmp: Path, hub: HubServer, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Child environment for the HUB-era client (PYTHONPATH=ul114) pointed at ``hub``."""
    env = child_env(tmp, {"ULTRALYTICS_HUB_API": hub.url, "ULTRALYTICS_HUB_WEB": hub.url, **(extra or {})})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(UL114), env.get("PYTHONPATH", "")) if p)
    return env


def platform_env(tmp: Path, hub: HubServer) -> dict[str, str]:
    """Child environment for the newest client (Platform protocol) pointed at ``hub``."""
    assert hub.api_key is not None
    return child_env(tmp, {"ULTRALYTICS_PLATFORM_URL": hub.url, "ULTRALYTICS_API_KEY": hub.api_key})
