"""The ``Examples:`` of every transforms module run, as a user would type them."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
  "_adagrad",
  "_adam",
  "_bertadam",
  "_clipping",
  "_lamb",
  "_learning_rate",
  "_masking",
  "_metric",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
  module = importlib.import_module(f"bertadam_optax.transforms.{name}")
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0
  assert result.failed == 0
