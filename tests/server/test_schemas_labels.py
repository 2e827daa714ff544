"""Metric names: any printable text ("metrics/mAP50(B)"), never a control character."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from trainhub.server.schemas import MetricsBatchIn


def batch(name: str) -> str:
    """A one-epoch body whose metric name is ``name`` (JSON escapes included as written)."""
    return '{"epochs": [{"epoch": 1, "metrics": {"' + name + '": 0.5}}]}'


@pytest.mark.parametrize("name", ["metrics/mAP50-95(B)", "val/box_loss", "épreuve ✓", "a b"])
def test_printable_names_are_kept(name: str) -> None:
    assert list(MetricsBatchIn.model_validate_json(batch(name)).epochs[0].metrics) == [name]


@pytest.mark.parametrize(
    "name", ["\\u0000x", "a\\u0001", "tab\\there", "new\\nline", "del\\u007f", "\\u001f"]
)
def test_control_characters_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="must not contain control characters"):
        MetricsBatchIn.model_validate_json(batch(name))
