"""Access to the reference implementations the tests compare against.

Locally a missing reference package skips the tests that need it; under
``CI=true`` it is an error, so CI can never go green by skipping the
comparisons that give the tests their meaning.
"""

from __future__ import annotations

import importlib
import os
import types

import pytest


def in_ci() -> bool:
  return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require(module: str) -> types.ModuleType:
  """Imports ``module``; skips locally if missing, fails under CI=true."""
  if in_ci():
    return importlib.import_module(module)
  return pytest.importorskip(module)
