"""README's code runs as written, and README stays a landing page.

Every ```python block runs in its own interpreter, with 8 simulated CPU
devices, from a scratch directory so nothing is written into the checkout.
The set-up commands are the ones CI runs; README is at most 200 lines and
every file it links to exists.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# A block preceded by `<!-- not executed: why -->` (PyTorch code shown for
# comparison) is skipped; every other Python block must run as written.
BLOCKS = [
  code
  for marker, code in re.findall(
    r"(<!-- not executed:[^>]*-->\n)?```python\n(.*?)```",
    README,
    flags=re.DOTALL,
  )
  if not marker
]


def test_readme_has_python_blocks():
  assert len(BLOCKS) >= 1


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()
  env["PYTHONPATH"] = str(ROOT)
  result = subprocess.run(
    [sys.executable, "-c", BLOCKS[index]],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, (
    f"README block {index} failed:\n{BLOCKS[index]}\n--- stderr ---\n"
    f"{result.stderr[-4000:]}"
  )


def test_ci_runs_the_readme_test_command():
  marker = README.index("<!-- test-command -->")
  block = re.search(
    r"```(?:bash|sh)?\n(.*?)```", README[marker:], flags=re.DOTALL
  )
  command = block.group(1).strip()
  assert "pip install torch==2.13.0" in command
  assert "pytest" in command
  assert "<!-- test-command -->" in (ROOT / ".ci" / "run").read_text()


def test_readme_is_a_landing_page():
  assert len(README.splitlines()) <= 200
  assert "bertadam-optax demo" in README
  for target in re.findall(r"\]\(([^)#]+)\)", README):
    if "://" not in target:
      assert (ROOT / target).exists(), f"README links to missing {target}"
