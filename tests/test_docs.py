"""The docs match the code: every setting, every CLI command and the public API are pinned."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import trainhub
from trainhub.cli import build_parser
from trainhub.client.settings import ClientSettings
from trainhub.server.settings import ServerSettings

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_every_client_setting_is_documented_with_its_variable() -> None:
    text = (DOCS / "settings.md").read_text()
    for field in dataclasses.fields(ClientSettings):
        row = f"| `TRAINHUB_{field.name.upper()}` | `{field.name}` |"
        assert row in text, f"docs/settings.md lacks the client setting {field.name}"


def test_every_server_setting_is_documented_with_its_variable() -> None:
    text = (DOCS / "settings.md").read_text()
    for name in ServerSettings.model_fields:
        row = f"| `TRAINHUB_{name.upper()}` | `{name}` |"
        assert row in text, f"docs/settings.md lacks the server setting {name}"


def test_every_cli_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        nested = [a for a in command._actions if a.dest.endswith("_command")]
        if nested:
            for action in nested[0].choices:  # type: ignore[union-attr]
                assert f"`trainhub {name} {action}" in text, f"docs/cli.md lacks `trainhub {name} {action}`"
        else:
            assert f"`trainhub {name}" in text, f"docs/cli.md lacks `trainhub {name}`"


def test_public_api_is_sorted_and_pinned() -> None:
    assert trainhub.__all__ == sorted(trainhub.__all__)
    assert set(trainhub.__all__) >= {"HubSession", "NullSession", "start_session", "__version__"}
    for name in trainhub.__all__:
        assert hasattr(trainhub, name)


def test_readme_starts_with_the_two_commands() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert "trainhub serve" in blocks[0]
    assert blocks[1].strip() == "bash scripts/test.sh"
    assert "bash scripts/test.sh" in (DOCS.parent / ".ci" / "run").read_text()
