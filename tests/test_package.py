"""The package's public surface: flat API, no extra imported by the core."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import bertadam_optax
from bertadam_optax import schedules

EXTRAS = (
  "torch",
  "flax",
  "orbax",
  "transformers",
  "deepspeed",
  "matplotlib",
  "tqdm",
)


def test_all_names_resolve():
  for module in (bertadam_optax, schedules, bertadam_optax.interop):
    for name in module.__all__:
      assert hasattr(module, name), (module.__name__, name)


def test_import_pulls_in_no_extra():
  code = (
    "import sys, bertadam_optax, bertadam_optax.schedules, "
    "bertadam_optax.interop, bertadam_optax.checkpoint; "
    f"print([m for m in {EXTRAS!r} if m in sys.modules])"
  )
  out = subprocess.run(
    [sys.executable, "-c", code], capture_output=True, text=True, check=True
  ).stdout
  assert out.strip() == "[]", out


def test_py_typed_is_shipped():
  root = pathlib.Path(bertadam_optax.__file__).parent
  assert (root / "py.typed").exists()
