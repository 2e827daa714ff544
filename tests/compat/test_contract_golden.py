"""Contract tests: golden request/response exchanges of every compat endpoint (tests/compat/golden).

Each golden file is a flow of exchanges run in order against a real server. In requests,
``{name}`` is replaced by a variable (``key``, ``base``, ``bad_key`` and whatever earlier
exchanges captured). In expected JSON replies, values match exactly except these patterns:
``"<any>"``, ``"<str>"``, ``"<int>"``, ``"<sha256>"``, ``"<url>"`` (a URL on this hub), and strings
with ``{name}`` (substituted first). Expected objects list the keys that must be there; extra keys
are allowed. ``capture`` stores a reply value (dotted path) as a variable for later exchanges.
Bodies: ``json`` (sent as given), ``raw_json`` (text, for NaN tokens), ``multipart`` (text fields
plus one file part, ``"checkpoint"`` or ``"dataset"`` content), ``body`` (raw bytes, same kinds).
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

GOLDEN = Path(__file__).with_name("golden")
FILES = sorted(GOLDEN.glob("*.json"))
BAD_KEY = "ul_" + "0" * 40


def _content(kind: str) -> bytes:
    """The same bytes every call: entries carry a fixed time (a zip stores the current time, in
    2-second steps, so content rebuilt to compare with could differ from what was uploaded)."""
    buf = io.BytesIO()

    def add(zf: zipfile.ZipFile, name: str, data: str | bytes) -> None:
        zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data)

    with zipfile.ZipFile(buf, "w") as zf:
        if kind == "dataset":
            add(zf, "gds/data.yaml", "train: images/train\nval: images/val\nnames:\n  0: a\n")
            add(zf, "gds/images/train/a.png", b"png")
        else:
            add(zf, "archive/data.pkl", b"\x80\x02}q\x00.")
    return buf.getvalue()


def _sub(value: Any, env: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: str(env.get(m.group(1), m.group(0))), value)
    if isinstance(value, list):
        return [_sub(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _sub(v, env) for k, v in value.items()}
    return value


def _match(expected: Any, actual: Any, env: dict[str, Any], where: str) -> None:
    if isinstance(expected, str):
        expected = _sub(expected, env)
        checks = {
            "<any>": lambda a: True,
            "<str>": lambda a: isinstance(a, str) and bool(a),
            "<int>": lambda a: isinstance(a, int) and not isinstance(a, bool),
            "<sha256>": lambda a: isinstance(a, str) and re.fullmatch(r"[0-9a-f]{64}", a) is not None,
            "<url>": lambda a: isinstance(a, str) and a.startswith(env["base"] + "/"),
        }
        if expected in checks:
            assert checks[expected](actual), f"{where}: {actual!r} is not {expected}"
            return
        if expected.startswith("<url>"):
            assert isinstance(actual, str) and actual.startswith(env["base"] + "/"), f"{where}: {actual!r}"
            assert actual.endswith(expected[len("<url>") :]), f"{where}: {actual!r} !~ {expected}"
            return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}: missing {key!r} in {actual!r}"
            _match(value, actual[key], env, f"{where}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _match(e, a, env, f"{where}[{i}]")
        return
    assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _send(client: httpx.Client, req: dict[str, Any], env: dict[str, Any]) -> httpx.Response:
    req = _sub(req, env)
    kwargs: dict[str, Any] = {"headers": req.get("headers", {}), "params": req.get("params")}
    if "json" in req:
        kwargs["json"] = req["json"]
    elif "raw_json" in req:
        kwargs["content"] = req["raw_json"].encode()
        kwargs["headers"] = {"content-type": "application/json", **kwargs["headers"]}
    elif "multipart" in req:
        mp = req["multipart"]
        files = (
            {mp["file"]["name"]: (mp["file"]["name"], _content(mp["file"]["content"]))}
            if "file" in mp
            else None
        )
        kwargs["data"], kwargs["files"] = mp.get("fields", {}), files
        if files is None:  # a multipart body with text fields only
            kwargs["files"] = {"_": (None, "")}
    elif "body" in req:
        kwargs["content"] = _content(req["body"])
    url = req["url"] if req["url"].startswith("http") else env["base"] + req["url"]
    return client.request(req["method"], url, **kwargs)


@pytest.mark.parametrize("golden", FILES, ids=[f.stem for f in FILES])
def test_golden_exchanges(golden: Path, hub_server_module: Any) -> None:
    flow = json.loads(golden.read_text())
    env: dict[str, Any] = {
        "base": hub_server_module.url,
        "key": hub_server_module.api_key,
        "bad_key": BAD_KEY,
    }
    with httpx.Client(timeout=30, trust_env=False, follow_redirects=False) as client:
        for i, ex in enumerate(flow["exchanges"]):
            where = f"{golden.stem}[{i}] {ex['request']['method']} {ex['request']['url']}"
            r = _send(client, ex["request"], env)
            assert r.status_code == ex["response"]["status"], f"{where}: {r.status_code} {r.text[:500]}"
            assert r.status_code < 500 and not 300 <= r.status_code < 400, where
            if "json" in ex["response"]:
                assert r.headers["content-type"].startswith("application/json"), where
                _match(ex["response"]["json"], r.json(), env, where)
            if "bytes_of" in ex["response"]:
                assert r.content == _content(ex["response"]["bytes_of"]), where
            for name, path in ex.get("capture", {}).items():
                env[name] = _dig(r.json(), path)
