"""The construction-time checks every factory shares."""

from __future__ import annotations

import jax.numpy as jnp
import pytest

from bertadam_optax import _validation


def test_check_choice_suggests_the_closest():
  assert _validation.check_choice("name", "cosine", ["cosine", "linear"]) == (
      "cosine")
  with pytest.raises(ValueError, match=r"name='cosin'.*Did you mean 'cosine'"):
    _validation.check_choice("name", "cosin", ["cosine", "linear"])
  with pytest.raises(ValueError, match=r"expected one of 'a', 'b'\.$"):
    _validation.check_choice("name", "zzz", ["a", "b"])


@pytest.mark.parametrize("kwargs,value,match", [
    (dict(low=0.0, high=1.0, high_inclusive=False), 1.0, r"x=1\.0.*\[0\.0, 1\.0\)"),
    (dict(low=0, low_inclusive=False), 0, r"x=0.*\(0, inf\]"),
    (dict(low=0.0, high=1.0, allowed=(-1,)), -0.5, r"x=-0\.5.* or -1"),
    (dict(low=0.0), float("nan"), r"x=nan"),
])
def test_check_range_rejects_with_the_interval(kwargs, value, match):
  with pytest.raises(ValueError, match=match):
    _validation.check_range("x", value, **kwargs)


def test_check_range_accepts_and_passes_arrays_through():
  assert _validation.check_range("x", -1, 0.0, 1.0, allowed=(-1,)) == -1
  assert _validation.check_positive("x", 1e-9) == 1e-9
  array = jnp.asarray(-5.0)  # traced or array values are not validated
  assert _validation.check_non_negative("x", array) is array


def test_unknown_keys():
  known = ["gradient_clipping", "optimizer"]
  assert _validation.unknown_keys({"fp16": 1, "optimizer": 2}, known,
                                  what="a key") == ["fp16"]
  with pytest.raises(ValueError,
                     match="'gradient_cliping' is not a key.*'gradient_clipping'"):
    _validation.unknown_keys(["gradient_cliping"], known, what="a key")
