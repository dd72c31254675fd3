"""The container files run a worker on tasks that exist: compose.yaml and the Dockerfile."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from pgworker.tasks import load_registry

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", ["compose.yaml", "Dockerfile"])
def test_the_container_worker_app_is_an_example_registry(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = (ROOT / name).read_text()
    apps = set(re.findall(r"--app\W+([\w.:]+)", text))
    assert apps, f"{name} runs no `pgworker work --app`"
    # The image puts examples/ on PYTHONPATH (Dockerfile ENV), so the app is a module there.
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    for app in apps:
        module = app.split(":")[0]
        assert (ROOT / "examples" / f"{module.replace('.', '/')}.py").is_file(), app
        assert len(load_registry(app)) > 0
        sys.modules.pop(module, None)
