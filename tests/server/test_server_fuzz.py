"""Property-based fuzzing of every operation in the server's OpenAPI schema (schemathesis).

Each operation gets a bounded number of generated requests (``TRAINHUB_FUZZ_EXAMPLES``, default
15) sent with the admin key to a real server; the checks: no 5xx, and every response whose status
the schema documents matches the documented schema. Needs the ``fuzz`` extra (part of ``dev``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import response_schema_conformance
from server_helpers import API, client, new_model

if TYPE_CHECKING:
    from conftest import HubServer

EXAMPLES = int(os.environ.get("TRAINHUB_FUZZ_EXAMPLES", "15"))
# Revoking keys could lock the fuzzer out of the rest of the run; their routes are covered by
# tests/server/test_server_auth.py, and reads of /keys stay fuzzed.
_SKIP = ("DELETE", "/api/v1/keys/{key_id}")


@schemathesis.serializer("application/zip")
def _zip_bytes(_ctx: Any, value: Any) -> dict[str, Any]:
    return {"data": value if isinstance(value, bytes) else str(value).encode()}


@pytest.fixture(scope="module")
def fuzz_target(hub_server_module: HubServer) -> Any:
    return schemathesis.openapi.from_url(f"{hub_server_module.url}/openapi.json")


@pytest.fixture(scope="module")
def fuzz_server(hub_server_module: HubServer) -> HubServer:
    return hub_server_module


@pytest.fixture(scope="module")
def existing(hub_server_module: HubServer) -> dict[str, str]:
    """Ids of a real model and dataset, so generated requests also reach past the 404s."""
    with client(hub_server_module) as c:
        model = new_model(c, name="fuzzed", epochs=3)["id"]
        c.post(f"{API}/models/{model}/metrics", json={"epochs": [{"epoch": 0, "metrics": {"loss": 1.0}}]})
        dataset = c.post(f"{API}/datasets", json={"name": "fuzzed"}).json()["id"]
    return {"model_id": model, "dataset_id": dataset}


schema = schemathesis.pytest.from_fixture("fuzz_target")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_operation_answers_5xx_or_breaks_its_schema(
    case: Any, fuzz_server: HubServer, existing: dict[str, str]
) -> None:
    if (case.method.upper(), case.path) == _SKIP:
        return
    checks = [schemathesis.checks.not_a_server_error, response_schema_conformance]
    case.call_and_validate(base_url=fuzz_server.url, headers=fuzz_server.headers(), checks=checks, timeout=30)
    params = case.path_parameters or {}
    if any(name in params for name in existing):
        # The same generated request again, on a model/dataset that exists.
        params.update({k: v for k, v in existing.items() if k in params})
        case.call_and_validate(
            base_url=fuzz_server.url, headers=fuzz_server.headers(), checks=checks, timeout=30
        )
