"""The construction-time checks every factory shares."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax import _validation


def test_check_choice_suggests_the_closest():
  assert _validation.check_choice("name", "cosine", ["cosine", "linear"]) == (
    "cosine"
  )
  with pytest.raises(ValueError, match=r"name='cosin'.*Did you mean 'cosine'"):
    _validation.check_choice("name", "cosin", ["cosine", "linear"])
  with pytest.raises(ValueError, match=r"expected one of 'a', 'b'\.$"):
    _validation.check_choice("name", "zzz", ["a", "b"])


@pytest.mark.parametrize(
  "kwargs,value,match",
  [
    (
      dict(low=0.0, high=1.0, high_inclusive=False),
      1.0,
      r"x=1\.0.*\[0\.0, 1\.0\)",
    ),
    (dict(low=0, low_inclusive=False), 0, r"x=0.*\(0, inf\)"),
    (dict(low=0.0, high=1.0, allowed=(-1,)), -0.5, r"x=-0\.5.* or -1"),
    (dict(low=0.0), float("nan"), r"x=nan"),
  ],
)
def test_check_range_rejects_with_the_interval(kwargs, value, match):
  with pytest.raises(ValueError, match=match):
    _validation.check_range("x", value, **kwargs)


def test_check_range_accepts_and_passes_arrays_through():
  assert _validation.check_range("x", -1, 0.0, 1.0, allowed=(-1,)) == -1
  assert _validation.check_positive("x", 1e-9) == 1e-9
  array = jnp.asarray(5.0)  # a 0-d array is returned as given
  assert _validation.check_non_negative("x", array) is array


@pytest.mark.parametrize(
  "value",
  [
    np.float32(-1e-4),
    np.asarray(-1.0),
    jnp.asarray(-1.0),
    np.int64(-3),
    float("nan"),
    np.float32("nan"),
    float("inf"),
    "1e-4",
    None,
    True,
    np.bool_(False),
    np.ones(2),
  ],
)
def test_check_non_negative_refuses_numpy_and_non_numbers(value):
  with pytest.raises(ValueError, match=r"^x="):
    _validation.check_non_negative("x", value)


def test_tracers_and_schedules_pass_through():
  schedule = lambda count: count
  assert _validation.check_non_negative("x", schedule) is schedule
  jax.jit(lambda v: _validation.check_non_negative("x", v))(-1.0)


@pytest.mark.parametrize(
  "value,expected", [(3, 3), (np.int32(7), 7), (100.0, 100), (np.asarray(5), 5)]
)
def test_check_int_accepts_integral_values(value, expected):
  assert _validation.check_int("n", value) == expected


@pytest.mark.parametrize("value", [100.5, -1, 2**31, True, "10", None])
def test_check_int_refuses(value):
  with pytest.raises(ValueError, match=r"^n="):
    _validation.check_int("n", value)


def test_check_bool_and_dtype():
  assert _validation.check_bool("flag", np.bool_(True)) is True
  for bad in ("false", 0, 1, None):
    with pytest.raises(ValueError, match=r"^flag="):
      _validation.check_bool("flag", bad)
  assert _validation.check_dtype("mu_dtype", "bfloat16") == jnp.bfloat16
  with pytest.raises(ValueError, match=r"^mu_dtype='int32' is not a floating"):
    _validation.check_dtype("mu_dtype", "int32")


def test_check_mask_structure():
  params = {"w": jnp.ones(2), "b": jnp.ones(1)}
  assert _validation.check_mask_structure(
    "weight_decay_mask", {"w": True, "b": False}, params
  ) == {"w": True, "b": False}
  for bad in ("bias", {"w": True}, {"w": 1, "b": 0}):
    with pytest.raises(ValueError, match=r"weight_decay_mask"):
      _validation.check_mask_structure("weight_decay_mask", bad, params)


def test_unknown_keys():
  known = ["gradient_clipping", "optimizer"]
  assert _validation.unknown_keys(
    {"fp16": 1, "optimizer": 2}, known, what="a key"
  ) == ["fp16"]
  with pytest.raises(
    ValueError, match="'gradient_cliping' is not a key.*'gradient_clipping'"
  ):
    _validation.unknown_keys(["gradient_cliping"], known, what="a key")
