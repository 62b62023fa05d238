"""Lint, format and types: ``ruff check``, ``ruff format --check``, pyright.

Each runs as a subprocess with the configuration in ``pyproject.toml``
(``[tool.ruff]``, ``[tool.pyright]``), exactly as ``.pre-commit-config.yaml``
and CONTRIBUTING.md run them, so a clean local run means a clean CI run. The
tools come with the ``test`` extra; under ``CI=true`` a missing one fails.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

from tests.references import require

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run(command):
  return subprocess.run(
    command, cwd=ROOT, capture_output=True, text=True, timeout=600
  )


def ruff():
  require("ruff")
  # The ruff package installs its binary next to this interpreter.
  found = shutil.which("ruff", path=str(pathlib.Path(sys.executable).parent))
  return [found] if found else [sys.executable, "-m", "ruff"]


def test_ruff_check():
  result = run(
    [*ruff(), "check", "--no-cache", "--output-format", "concise", "."]
  )
  assert result.returncode == 0, result.stdout[-8000:] + result.stderr


def test_ruff_format():
  result = run([*ruff(), "format", "--check", "--no-cache", "."])
  assert result.returncode == 0, (
    "run `ruff format .`:\n" + result.stdout[-8000:] + result.stderr
  )


def test_pyright():
  require("pyright")
  # --pythonpath: resolve the imports (jax, optax, the extras) against this
  # interpreter's packages, whatever virtual environment it lives in.
  result = run(
    [sys.executable, "-m", "pyright", "--pythonpath", sys.executable]
  )
  assert result.returncode == 0, result.stdout[-8000:] + result.stderr


def test_the_configuration_is_the_house_style():
  tomllib = require("tomllib" if sys.version_info >= (3, 11) else "tomli")
  config = tomllib.loads((ROOT / "pyproject.toml").read_text())
  ruff_config = config["tool"]["ruff"]
  assert ruff_config["indent-width"] == 2
  assert ruff_config["line-length"] == 80
  assert config["tool"]["pyright"]["include"] == ["bertadam_optax"]
  hooks = (ROOT / ".pre-commit-config.yaml").read_text()
  for hook in ("id: ruff-check", "id: ruff-format", "id: pyright"):
    assert hook in hooks, hook
