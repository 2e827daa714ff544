"""Importing the integrations: the package imports no framework; a missing one names its extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

FRAMEWORKS = ("lightning", "pytorch_lightning", "transformers", "torch", "ultralytics")


def test_importing_the_integrations_package_imports_no_framework() -> None:
    code = (
        "import sys, trainhub, trainhub.integrations\n"
        f"print(','.join(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    ("module", "framework", "extra"),
    [("lightning", "lightning", "lightning"), ("transformers", "transformers", "transformers")],
)
def test_a_missing_framework_says_which_extra_to_install(module: str, framework: str, extra: str) -> None:
    # sys.modules[name] = None makes `import name` fail as if the package were not installed.
    code = (
        f"import sys; sys.modules[{framework!r}] = None\n"
        f"import trainhub.integrations.{module}\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert f"ImportError: trainhub.integrations.{module} needs" in out.stderr
    assert f"pip install 'trainhub[{extra}]'" in out.stderr
