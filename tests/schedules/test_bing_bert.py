"""Tests of the six DeepSpeed bing_bert schedules and ``bert_schedule``.

DeepSpeedExamples is not an installable package, so the reference is the
issue's formula evaluated independently here in float64 Python, exactly as
the original evaluates it (Python floats, ``step / t_total``).
"""

from __future__ import annotations

import doctest
import importlib
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax import schedules
from bertadam_optax.schedules import _common
from bertadam_optax.schedules import bing_bert

# --- independent float64 references (the original's formulas) -------------


def ref_warmup_cosine(x, warmup=0.002):
  return x / warmup if x < warmup else 0.5 * (1.0 + math.cos(math.pi * x))


def ref_warmup_constant(x, warmup=0.002):
  return x / warmup if x < warmup else 1.0


def ref_warmup_linear(x, warmup=0.002):
  if warmup == 0.0:
    return 1.0
  return x / warmup if x < warmup else 1.0 - x


def ref_warmup_linear_decay_exp(s, rate, dsteps, total, warmup=0.002):
  x = s / total
  if warmup == 0.0:
    return 1.0
  if x < warmup:
    return x / warmup
  return rate ** ((s - warmup * total) / dsteps)


def ref_warmup_exp_decay_exp(s, rate, dsteps, total, warmup=0.002, degree=2.0):
  x = s / total
  if warmup == 0.0:
    return 1.0
  if x < warmup:
    return (x / warmup) ** degree
  return rate ** ((s - warmup * total) / dsteps)


def ref_warmup_exp_decay_poly(
  s, total, warmup=0.002, warm_degree=1.5, degree=2.0
):
  x = s / total
  if x < warmup:
    return (x / warmup) ** warm_degree
  return (1.0 - x) ** degree


def assert_close(actual, expected, rtol=2e-6, atol=2e-7):
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def boundary_steps(t_total, warmup):
  """Step 0, the warmup edge (floor/ceil, +-1), the end, past the end."""
  edge = warmup * t_total if warmup > 0 else 0
  candidates = {
    0,
    1,
    2,
    t_total // 2,
    t_total - 2,
    t_total - 1,
    t_total,
    t_total + 1,
    int(1.3 * t_total),
  }
  for e in (math.floor(edge), math.ceil(edge)):
    candidates.update({e - 1, e, e + 1})
  return sorted(c for c in candidates if c >= 0)


T_WARMUPS = [
  (1, 0.5),
  (7, 0.3),
  (40, 0.1),
  (100, 0.1),
  (100, 0.0),
  (100, -1),
  (1000, 0.002),
  (1000, 0.999),
  (12345, 0.0123),
  (1_000_000, 0.01),
  (1_000_000, 1e-6),
  (3, 0.9),
]


# --- the multiplier functions: exact formulas ------------------------------


@pytest.mark.parametrize(
  "fn,ref",
  [
    (schedules.warmup_cosine, ref_warmup_cosine),
    (schedules.warmup_constant, ref_warmup_constant),
    (schedules.warmup_linear, ref_warmup_linear),
  ],
)
@pytest.mark.parametrize("warmup", [0.0, -1, 0.002, 0.1, 0.5, 0.99])
def test_x_based_functions_match_formula(fn, ref, warmup):
  # Eager, float32 arguments; includes past the end (x > 1), where the raw
  # functions are the original's formulas, quirks included.
  xs = np.array(
    [
      0.0,
      1e-4,
      warmup / 2 if warmup > 0 else 0.3,
      0.25,
      0.5,
      0.75,
      0.999,
      1.0,
      1.1,
      1.5,
    ],
    np.float32,
  )
  for x in xs:
    assert_close(fn(x, warmup), ref(float(x), warmup))


def test_default_warmup_is_0_002():
  assert_close(schedules.warmup_linear(0.001), 0.5)
  assert_close(schedules.warmup_cosine(0.001), 0.5)
  assert_close(schedules.warmup_constant(0.001), 0.5)


@pytest.mark.parametrize("total,warmup", T_WARMUPS)
@pytest.mark.parametrize("rate,dsteps", [(0.5, 1), (0.99, 100), (0.9, 7.5)])
def test_exp_decay_functions_match_formula(total, warmup, rate, dsteps):
  for s in boundary_steps(total, warmup):
    assert_close(
      schedules.warmup_linear_decay_exp(float(s), rate, dsteps, total, warmup),
      ref_warmup_linear_decay_exp(s, rate, dsteps, total, warmup),
      rtol=1e-5,
    )
    for degree in (0.5, 2.0, 3.7):
      assert_close(
        schedules.warmup_exp_decay_exp(
          float(s), rate, dsteps, total, warmup, degree
        ),
        ref_warmup_exp_decay_exp(s, rate, dsteps, total, warmup, degree),
        rtol=1e-5,
      )


def test_poly_function_matches_formula():
  for total, warmup in T_WARMUPS:
    for s in boundary_steps(total, warmup):
      if s > total:
        continue  # (1 - x) ** 1.5 of a negative number is NaN in both
      for wd, d in ((1.5, 2.0), (0.5, 1.0), (3.0, 0.5), (2.5, 7.25)):
        assert_close(
          schedules.warmup_exp_decay_poly(float(s), total, warmup, wd, d),
          ref_warmup_exp_decay_poly(s, total, warmup, wd, d),
        )


def test_schedules_mapping_has_exactly_the_six_names():
  assert set(schedules.SCHEDULES) == {
    "warmup_cosine",
    "warmup_constant",
    "warmup_linear",
    "warmup_linear_decay_exp",
    "warmup_exp_decay_exp",
    "warmup_exp_decay_poly",
  }
  assert schedules.SCHEDULES["warmup_linear"] is schedules.warmup_linear


def test_warmup_minus_one_never_warms_up():
  # x < -1 is never true: the original's "no warmup".
  for x in (0.0, 0.5):
    assert_close(schedules.warmup_linear(x, -1), 1.0 - x)
    assert_close(schedules.warmup_constant(x, -1), 1.0)


def test_functions_under_jit_vmap_grad():
  xs = jnp.linspace(0.0, 1.0, 11)
  got = jax.jit(jax.vmap(lambda x: schedules.warmup_cosine(x, 0.2)))(xs)
  assert_close(got, [ref_warmup_cosine(float(x), 0.2) for x in xs])
  # Traced warmup, including warmup == 0 (no NaN from the unused branch).
  dx = jax.grad(lambda x: schedules.warmup_linear(x, 0.0))(0.3)
  assert dx == 0.0
  dx = jax.grad(lambda x: schedules.warmup_linear(x, 0.5))(0.25)
  assert_close(dx, 2.0)
  ws = jnp.array([0.0, 0.1, 0.5])
  got = jax.vmap(lambda w: schedules.warmup_linear(0.3, w))(ws)
  assert_close(got, [ref_warmup_linear(0.3, float(w)) for w in ws])


# --- the Optax factory ------------------------------------------------------


def ref_bert_schedule(
  name,
  lr,
  total,
  warmup,
  s,
  *,
  decay_rate=None,
  decay_steps=None,
  degree=None,
  warm_degree=None,
  lr_offset=0.0,
):
  """The original evaluated in float64, with the documented clamp past the end."""
  if name in ("warmup_cosine", "warmup_linear", "warmup_constant"):
    x = min(s, total) / total
    m = {
      "warmup_cosine": ref_warmup_cosine,
      "warmup_linear": ref_warmup_linear,
      "warmup_constant": ref_warmup_constant,
    }[name](x, warmup)
  elif name == "warmup_linear_decay_exp":
    m = ref_warmup_linear_decay_exp(s, decay_rate, decay_steps, total, warmup)
  elif name == "warmup_exp_decay_exp":
    m = ref_warmup_exp_decay_exp(
      s,
      decay_rate,
      decay_steps,
      total,
      warmup,
      2.0 if degree is None else degree,
    )
  else:
    m = ref_warmup_exp_decay_poly(
      min(s, total),
      total,
      warmup,
      1.5 if warm_degree is None else warm_degree,
      2.0 if degree is None else degree,
    )
  return lr * m + lr_offset


FACTORY_CASES = [
  ("warmup_cosine", {}),
  ("warmup_constant", {}),
  ("warmup_linear", {}),
  ("warmup_linear_decay_exp", {"decay_rate": 0.99, "decay_steps": 10}),
  ("warmup_linear_decay_exp", {"decay_rate": 0.5, "decay_steps": 1}),
  ("warmup_exp_decay_exp", {"decay_rate": 0.99, "decay_steps": 10}),
  (
    "warmup_exp_decay_exp",
    {"decay_rate": 0.9, "decay_steps": 1, "degree": 0.5},
  ),
  ("warmup_exp_decay_poly", {}),
  ("warmup_exp_decay_poly", {"warm_degree": 3.0, "degree": 0.5}),
  ("warmup_exp_decay_poly", {"warm_degree": 0.25, "degree": 7.5}),
]


@pytest.mark.parametrize("name,kwargs", FACTORY_CASES)
@pytest.mark.parametrize("total,warmup", T_WARMUPS)
def test_bert_schedule_matches_original_at_boundaries(
  name, kwargs, total, warmup
):
  lr = 3e-4
  fn = jax.jit(bing_bert.bert_schedule(name, lr, total, warmup, **kwargs))
  steps = boundary_steps(total, warmup)
  if total <= 100:
    steps = sorted(set(steps) | set(range(int(1.3 * total) + 2)))
  got = np.asarray(jax.vmap(fn)(jnp.asarray(steps, jnp.int32)))
  want = [
    ref_bert_schedule(name, lr, total, warmup, s, **kwargs) for s in steps
  ]
  rtol = 1e-5 if "decay_exp" in name else 2e-6
  np.testing.assert_allclose(got, want, rtol=rtol, atol=2e-7 * lr)


@pytest.mark.parametrize(
  "name", ["warmup_cosine", "warmup_linear", "warmup_exp_decay_poly"]
)
def test_bert_schedule_holds_past_t_total(name):
  fn = bing_bert.bert_schedule(name, 1.0, 100, 0.1)
  values = np.asarray(jax.vmap(fn)(jnp.arange(100, 400)))
  assert np.all(values == 0.0)  # never negative, never rising again


def test_bert_schedule_warmup_boundary_is_exact_under_jit():
  # 10 / 100 == 0.1 in float64, so step 10 is past warmup; XLA's reciprocal
  # multiply would make it 0.0999999 < 0.1 without the integer boundary.
  fn = jax.jit(bing_bert.bert_schedule("warmup_cosine", 1.0, 100, 0.1))
  assert_close(fn(10), 0.5 * (1 + math.cos(math.pi * 0.1)))
  assert_close(fn(9), 0.9)


@pytest.mark.parametrize("total,warmup", T_WARMUPS + [(3, 1 / 3), (10, 0.3)])
def test_first_step_at_or_above_is_the_float64_decision(total, warmup):
  k = _common.first_step_at_or_above(warmup, total)
  for s in range(max(0, k - 3), k + 3):
    assert (s < k) == (s / total < warmup)


def test_bert_schedule_lr_offset():
  fn = bing_bert.bert_schedule("warmup_constant", 1e-3, 10, 0.5, lr_offset=1e-4)
  assert_close(fn(0), 1e-4)
  assert_close(fn(9), 1.1e-3)


def test_bert_schedule_float32_near_end_of_decay():
  # (T - s) / T keeps 1 - x exact where 1 - s/T would lose all digits.
  total = 10_000_000
  fn = jax.jit(bing_bert.bert_schedule("warmup_linear", 1.0, total, 0.01))
  assert_close(fn(total - 1), 1 / total, rtol=2e-6, atol=0)
  fn = jax.jit(bing_bert.bert_schedule("warmup_cosine", 1.0, total, 0.01))
  # Even float64 loses ~0.1% to cancellation in 1 + cos(pi x) here, so the
  # reference is the same value written as sin(pi (1 - x) / 2) ** 2.
  want = math.sin(0.5 * math.pi / total) ** 2
  assert_close(fn(total - 1), want, rtol=1e-4, atol=0)


def test_bert_schedule_no_retrace_and_transforms():
  fn = bing_bert.bert_schedule("warmup_cosine", 1e-3, 1000, 0.1)
  traced = jax.jit(chex.assert_max_traces(fn, n=1))
  for count in range(0, 1200, 37):
    traced(jnp.asarray(count, jnp.int32))
  # vmap over learning rates, grad w.r.t. the learning rate.
  lrs = jnp.array([1e-4, 1e-3, 1e-2])
  by_lr = jax.vmap(
    lambda lr: bing_bert.bert_schedule("warmup_linear", lr, 100, 0.1)(50)
  )(lrs)
  assert_close(by_lr, lrs * 0.5)
  dlr = jax.grad(
    lambda lr: bing_bert.bert_schedule(
      "warmup_exp_decay_exp", lr, 100, 0.1, decay_rate=0.5, decay_steps=10
    )(30)
  )(1e-3)
  assert_close(dlr, 0.5**2)


@pytest.mark.parametrize("x64", [False, True])
def test_bert_schedule_stays_float32(x64):
  prev = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", x64)
  try:
    for name, kwargs in FACTORY_CASES:
      fn = bing_bert.bert_schedule(name, 1e-3, 100, 0.1, **kwargs)
      jaxpr = jax.make_jaxpr(fn)(jnp.asarray(5))
      assert "f64" not in str(jaxpr), (name, str(jaxpr))
      assert fn(5).dtype == jnp.float32
  finally:
    jax.config.update("jax_enable_x64", prev)


@pytest.mark.parametrize(
  "kwargs,match",
  [
    (dict(name="warmup_linaer"), r"name='warmup_linaer'.*'warmup_linear'"),
    (dict(learning_rate=-1.0), r"learning_rate=-1\.0"),
    (dict(t_total=0), r"t_total=0"),
    (dict(t_total=-1), r"t_total=-1"),
    (dict(warmup=1.0), r"warmup=1\.0.*\[0\.0, 1\.0\) or -1"),
    (dict(warmup=-0.5), r"warmup=-0\.5"),
    (dict(name="warmup_exp_decay_exp"), r"decay_rate=None"),
    (
      dict(name="warmup_exp_decay_exp", decay_rate=0.0, decay_steps=1),
      r"decay_rate=0\.0",
    ),
    (
      dict(name="warmup_linear_decay_exp", decay_rate=0.5, decay_steps=0),
      r"decay_steps=0",
    ),
    (
      dict(name="warmup_linear_decay_exp", decay_rate=0.5, decay_steps=-3),
      r"decay_steps=-3",
    ),
    (dict(decay_rate=0.5), r"decay_rate=0\.5"),
    (dict(degree=2.0), r"degree=2\.0"),
    (dict(warm_degree=2.0), r"warm_degree=2\.0"),
  ],
)
def test_bert_schedule_bad_input(kwargs, match):
  args = dict(name="warmup_linear", learning_rate=1e-3, t_total=100, warmup=0.1)
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    bing_bert.bert_schedule(**args)


def test_docstring_examples_run():
  # The Examples: sections are the documentation users copy; they must run.
  module = importlib.import_module("bertadam_optax.schedules.bing_bert")
  results = doctest.testmod(
    module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  )
  assert results.attempted > 0
  assert results.failed == 0
