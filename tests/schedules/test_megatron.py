"""Tests for bertadam_optax/schedules/megatron.py.

Every schedule is compared with megatron-core's own ``OptimizerParamScheduler``
driven as Megatron-LM's training loop drives it: constructed on an optimizer
(a stand-in holding ``param_groups`` dicts), then ``step(increment)`` after
every update. The value in the param group after ``k`` steps is what update
``k`` applies.
"""

from __future__ import annotations

import doctest

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax.schedules import megatron
from tests.references import require

RTOL = 1e-6


class _StandInOptimizer:
  """What OptimizerParamScheduler reads and writes: ``param_groups``."""

  def __init__(self):
    self.param_groups = [{"wd_mult": 1.0}]


def _reference(
  num_updates,
  *,
  increment=1,
  init_lr=0.0,
  max_lr=1e-3,
  min_lr=1e-5,
  lr_warmup_steps=0,
  lr_decay_steps=100,
  lr_decay_style="linear",
  start_wd=0.0,
  end_wd=0.0,
  wd_incr_steps=100,
  wd_incr_style="constant",
  wsd_decay_steps=None,
  lr_wsd_decay_style=None,
):
  """(lr, wd) in the param group before each of ``num_updates`` updates."""
  module = require("megatron.core.optimizer_param_scheduler")
  optimizer = _StandInOptimizer()
  scheduler = module.OptimizerParamScheduler(
    optimizer,
    init_lr=init_lr,
    max_lr=max_lr,
    min_lr=min_lr,
    lr_warmup_steps=lr_warmup_steps,
    lr_decay_steps=lr_decay_steps,
    lr_decay_style=lr_decay_style,
    start_wd=start_wd,
    end_wd=end_wd,
    wd_incr_steps=wd_incr_steps,
    wd_incr_style=wd_incr_style,
    wsd_decay_steps=wsd_decay_steps,
    lr_wsd_decay_style=lr_wsd_decay_style,
  )
  lrs, wds = [], []
  for _ in range(num_updates):
    group = optimizer.param_groups[0]
    lrs.append(group["lr"])
    wds.append(group["weight_decay"])
    scheduler.step(increment=increment)
  return np.asarray(lrs, np.float64), np.asarray(wds, np.float64)


def _values(schedule, num_updates):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(num_updates)))


def _assert_close(ours, reference):
  assert ours.dtype == np.float32
  # The float64 reference itself rounds at ~1e-16 absolute.
  np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=1e-15)


LR_CASES = [
  {"lr_decay_style": "constant", "lr_warmup_steps": 10},
  {"lr_decay_style": "constant", "lr_warmup_steps": 0},
  {"lr_decay_style": "linear", "lr_warmup_steps": 10},
  {"lr_decay_style": "linear", "lr_warmup_steps": 0, "min_lr": 0.0},
  {"lr_decay_style": "linear", "lr_warmup_steps": 7.3, "init_lr": 2e-4},
  {"lr_decay_style": "cosine", "lr_warmup_steps": 10},
  {"lr_decay_style": "cosine", "lr_warmup_steps": 0, "min_lr": 0.0},
  {
    "lr_decay_style": "cosine",
    "lr_warmup_steps": 0.1 * 97,
    "lr_decay_steps": 97,
    "init_lr": 1e-4,
  },
  {"lr_decay_style": "inverse-square-root", "lr_warmup_steps": 10},
  {"lr_decay_style": "inverse-square-root", "lr_warmup_steps": 0},
  {"lr_decay_style": "inverse-square-root", "lr_warmup_steps": 0.5},
  {
    "lr_decay_style": "inverse-square-root",
    "lr_warmup_steps": 5,
    "min_lr": 4e-4,
  },
  {"lr_decay_style": "linear", "lr_warmup_steps": 1, "lr_decay_steps": 2},
  {
    "lr_decay_style": "linear",
    "max_lr": 1e-4,
    "min_lr": 1e-4,
    "lr_warmup_steps": 3,
  },
]

WSD_CASES = [
  {
    "lr_decay_style": "WSD",
    "lr_warmup_steps": 10,
    "wsd_decay_steps": 30,
    "lr_wsd_decay_style": style,
    "min_lr": min_lr,
  }
  for style in megatron.WSD_DECAY_STYLES
  for min_lr in (0.0, 1e-5)
] + [
  {
    "lr_decay_style": "WSD",
    "lr_warmup_steps": 0,
    "wsd_decay_steps": 100,
    "lr_wsd_decay_style": "minus_sqrt",
  },
  {
    "lr_decay_style": "WSD",
    "lr_warmup_steps": 2.5,
    "wsd_decay_steps": 0,
    "lr_wsd_decay_style": "cosine",
  },
  {
    "lr_decay_style": "WSD",
    "lr_warmup_steps": 20,
    "wsd_decay_steps": 95,
    "lr_wsd_decay_style": "exponential",
    "init_lr": 1e-4,
  },
]


def _lr_kwargs(case):
  keys = (
    "max_lr",
    "min_lr",
    "lr_warmup_steps",
    "lr_decay_steps",
    "lr_decay_style",
    "init_lr",
    "wsd_decay_steps",
    "lr_wsd_decay_style",
  )
  full = {"max_lr": 1e-3, "min_lr": 1e-5, "lr_decay_steps": 100, "init_lr": 0.0}
  full.update(case)
  return {k: full[k] for k in keys if k in full}


@pytest.mark.parametrize("case", LR_CASES + WSD_CASES, ids=str)
@pytest.mark.parametrize("increment", [1, 4])
def test_lr_matches_megatron_at_every_step(case, increment):
  case = dict(case)
  if increment != 1:
    # Megatron-LM's iteration-based runs: every count times the batch size.
    for key in ("lr_warmup_steps", "lr_decay_steps", "wsd_decay_steps"):
      if case.get(key) is not None:
        case[key] = case[key] * increment
  kwargs = _lr_kwargs(case)
  decay = kwargs.get("lr_decay_steps", 100)
  num_updates = int(decay // increment) + 15  # well past the end of decay
  reference, _ = _reference(num_updates, increment=increment, **kwargs)
  schedule = megatron.megatron_lr_schedule(**kwargs, increment=increment)
  _assert_close(_values(schedule, num_updates), reference)


def test_sample_based_increment_that_does_not_divide_the_thresholds():
  # --train-samples: thresholds in samples, not multiples of the batch size.
  kwargs = {
    "max_lr": 3e-4,
    "min_lr": 3e-5,
    "lr_warmup_steps": 0.01 * 10_007,
    "lr_decay_steps": 10_007,
    "lr_decay_style": "cosine",
    "init_lr": 1e-6,
  }
  reference, _ = _reference(420, increment=32, **kwargs)
  schedule = megatron.megatron_lr_schedule(**kwargs, increment=32)
  _assert_close(_values(schedule, 420), reference)
  wsd = dict(
    kwargs,
    lr_decay_style="WSD",
    wsd_decay_steps=2_003,
    lr_wsd_decay_style="minus_sqrt",
  )
  reference, _ = _reference(420, increment=32, **wsd)
  _assert_close(
    _values(megatron.megatron_lr_schedule(**wsd, increment=32), 420), reference
  )


def test_large_sample_counts_stay_exact():
  # Sample counts past 2**24 are not float32 integers; the counts are.
  kwargs = {
    "max_lr": 6e-5,
    "min_lr": 6e-6,
    "lr_warmup_steps": 0.001 * 430_000 * 1536,
    "lr_decay_steps": 430_000 * 1536,
    "lr_decay_style": "cosine",
  }
  schedule = jax.jit(megatron.megatron_lr_schedule(**kwargs, increment=1536))
  module = require("megatron.core.optimizer_param_scheduler")
  optimizer = _StandInOptimizer()
  scheduler = module.OptimizerParamScheduler(
    optimizer,
    init_lr=0.0,
    start_wd=0.1,
    end_wd=0.1,
    wd_incr_steps=1,
    wd_incr_style="constant",
    **kwargs,
  )
  previous = 0
  for count in (
    0,
    1,
    429,
    430,
    431,
    1000,
    215_000,
    429_999,
    430_000,
    430_001,
    500_000,
  ):
    scheduler.step(increment=(count - previous) * 1536)
    previous = count
    np.testing.assert_allclose(
      float(schedule(count)),
      scheduler.get_lr(optimizer.param_groups[0]),
      rtol=RTOL,
    )


WD_CASES = [
  {
    "start_wd": 0.1,
    "end_wd": 0.1,
    "wd_incr_steps": 50,
    "wd_incr_style": "constant",
  },
  {
    "start_wd": 0.0,
    "end_wd": 0.1,
    "wd_incr_steps": 50,
    "wd_incr_style": "linear",
  },
  {
    "start_wd": 0.01,
    "end_wd": 0.1,
    "wd_incr_steps": 37,
    "wd_incr_style": "cosine",
  },
  {
    "start_wd": 0.02,
    "end_wd": 0.3,
    "wd_incr_steps": 1,
    "wd_incr_style": "linear",
  },
  {
    "start_wd": 0.0,
    "end_wd": 0.0,
    "wd_incr_steps": 0,
    "wd_incr_style": "constant",
  },
]


@pytest.mark.parametrize("case", WD_CASES, ids=str)
@pytest.mark.parametrize("increment", [1, 3])
def test_wd_matches_megatron_at_every_step(case, increment):
  case = dict(case, wd_incr_steps=case["wd_incr_steps"] * increment)
  num_updates = case["wd_incr_steps"] // increment + 10
  _, reference = _reference(num_updates, increment=increment, **case)
  schedule = megatron.megatron_wd_schedule(**case, increment=increment)
  _assert_close(_values(schedule, num_updates), reference)


@pytest.mark.parametrize(
  "schedule",
  [
    megatron.megatron_lr_schedule(1e-3, 1e-5, 10, 100, "cosine"),
    megatron.megatron_lr_schedule(
      1e-3,
      1e-5,
      10,
      100,
      "WSD",
      wsd_decay_steps=20,
      lr_wsd_decay_style="minus_sqrt",
    ),
    megatron.megatron_lr_schedule(1e-3, 1e-5, 10, 100, "inverse-square-root"),
    megatron.megatron_wd_schedule(0.0, 0.1, 100, "cosine"),
  ],
)
@pytest.mark.parametrize("x64", [False, True])
def test_traces_once_float32_and_finite_grad(schedule, x64):
  chex.clear_trace_counter()
  with jax.enable_x64(x64):

    @jax.jit
    @chex.assert_max_traces(n=1)
    def at(count):
      return schedule(count)

    for count in range(0, 130, 7):
      value = at(jnp.asarray(count, jnp.int32))
      assert value.dtype == jnp.float32
    # jnp.where evaluates every branch: none may put a NaN into gradients.
    grads = jax.vmap(jax.grad(lambda c: schedule(c)))(
      jnp.arange(0, 130, dtype=jnp.float32)
    )
    assert np.all(np.isfinite(np.asarray(grads)))


@pytest.mark.parametrize(
  "kwargs, name",
  [
    ({"min_lr": -1.0}, "min_lr"),
    ({"max_lr": 1e-6, "min_lr": 1e-5}, "max_lr"),
    ({"init_lr": 2e-3}, "init_lr"),
    ({"lr_decay_steps": 0}, "lr_decay_steps"),
    ({"lr_warmup_steps": 100}, "lr_warmup_steps"),
    ({"lr_warmup_steps": -1}, "lr_warmup_steps"),
    ({"lr_decay_style": "cosin"}, "lr_decay_style"),
    ({"lr_decay_style": "WSD"}, "wsd_decay_steps"),
    ({"lr_decay_style": "WSD", "wsd_decay_steps": 10}, "lr_wsd_decay_style"),
    (
      {
        "lr_decay_style": "WSD",
        "wsd_decay_steps": 10,
        "lr_wsd_decay_style": "sqrt",
      },
      "lr_wsd_decay_style",
    ),
    ({"increment": 0}, "increment"),
    ({"increment": 2.5}, "increment"),
    ({"max_lr": "1e-3"}, "max_lr"),
    ({"lr_decay_steps": float("inf")}, "lr_decay_steps"),
  ],
)
def test_lr_refuses_what_megatron_asserts(kwargs, name):
  full = {
    "max_lr": 1e-3,
    "min_lr": 1e-5,
    "lr_warmup_steps": 10,
    "lr_decay_steps": 100,
    "lr_decay_style": "linear",
  }
  full.update(kwargs)
  with pytest.raises(ValueError, match=name):
    megatron.megatron_lr_schedule(**full)


@pytest.mark.parametrize(
  "kwargs, name",
  [
    ({"start_wd": -0.1}, "start_wd"),
    ({"end_wd": 0.0, "start_wd": 0.1}, "end_wd"),
    ({"wd_incr_style": "constant"}, "start_wd"),
    ({"wd_incr_steps": 0}, "wd_incr_steps"),
    ({"wd_incr_style": "exp"}, "wd_incr_style"),
    ({"increment": np.float32(0.5)}, "increment"),
  ],
)
def test_wd_refuses_what_megatron_asserts(kwargs, name):
  full = {
    "start_wd": 0.0,
    "end_wd": 0.1,
    "wd_incr_steps": 100,
    "wd_incr_style": "linear",
  }
  full.update(kwargs)
  with pytest.raises(ValueError, match=name):
    megatron.megatron_wd_schedule(**full)


def test_numpy_scalars_are_numbers():
  schedule = megatron.megatron_lr_schedule(
    np.float32(1e-3),
    np.float64(0.0),
    np.int64(10),
    np.array(100),
    "linear",
    increment=np.int32(2),
  )
  np.testing.assert_allclose(float(schedule(5)), 1e-3, rtol=RTOL)


def test_docstring_examples_run():
  result = doctest.testmod(megatron, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("case", LR_CASES + WSD_CASES, ids=str)
def test_no_float64_in_the_graph(case):
  with jax.enable_x64(True):
    schedule = megatron.megatron_lr_schedule(**_lr_kwargs(case), increment=3)
    assert "f64" not in str(jax.make_jaxpr(schedule)(jnp.int32(3)))
    for wd in WD_CASES:
      schedule = megatron.megatron_wd_schedule(**wd, increment=3)
      assert "f64" not in str(jax.make_jaxpr(schedule)(jnp.int32(3)))


@pytest.mark.parametrize("style", megatron.LR_DECAY_STYLES)
def test_registry_entries_match_megatron(style):
  from bertadam_optax.schedules import registry  # pylint: disable=import-outside-toplevel

  schedule = registry.make_schedule(
    f"megatron.{style}", lr=1e-3, t_total=100, warmup=0.1, min_lr=1e-5
  )
  wsd = (
    {"wsd_decay_steps": 10, "lr_wsd_decay_style": "linear"}
    if (style == "WSD")
    else {}
  )
  lrs, _ = _reference(
    130, lr_warmup_steps=10, lr_decay_steps=100, lr_decay_style=style, **wsd
  )
  _assert_close(_values(schedule, 130), lrs)


@pytest.mark.parametrize("style", megatron.WD_INCR_STYLES)
def test_registry_wd_entries_match_megatron(style):
  from bertadam_optax.schedules import registry  # pylint: disable=import-outside-toplevel

  schedule = registry.make_schedule(
    f"megatron.wd_{style}", lr=0.1, t_total=100, min_lr=0.01
  )
  end = 0.01 if style == "constant" else 0.1
  _, wds = _reference(
    130, start_wd=0.01, end_wd=end, wd_incr_steps=100, wd_incr_style=style
  )
  _assert_close(_values(schedule, 130), wds)
