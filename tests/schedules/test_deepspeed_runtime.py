"""Tests for bertadam_optax/schedules/deepspeed_runtime.py.

Every schedule is compared with the real ``deepspeed.runtime.lr_schedules``
class driven as DeepSpeed's engine drives it: constructed fresh on a torch
optimizer, then ``optimizer.step()`` and ``lr_scheduler.step()`` per step. The
learning rate (and betas) in the param group when ``optimizer.step()`` runs
is what step ``k`` applies.
"""

from __future__ import annotations

import ast
import doctest
import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax.schedules import deepspeed_runtime as dr
from tests.references import require

OPTIMIZER_LR = 0.05
OPTIMIZER_BETAS = (0.85, 0.995)
RTOL = 2e-6


def _engine_loop(type_name, params, num_steps):
  """(lr, beta1, beta2) that each of ``num_steps`` DeepSpeed steps applies."""
  torch = require("torch")
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  weight = torch.nn.Parameter(torch.zeros(2))
  optimizer = torch.optim.Adam([weight], lr=OPTIMIZER_LR, betas=OPTIMIZER_BETAS)
  # As DeepSpeedEngine._scheduler_from_config constructs it.
  scheduler = getattr(lr_schedules, type_name)(optimizer, **params)
  applied = []
  for _ in range(num_steps):
    group = optimizer.param_groups[0]
    applied.append((float(group["lr"]), *map(float, group["betas"])))
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    scheduler.step()
  return np.asarray(applied, np.float64).T


def _values(schedule, num_steps):
  return np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(num_steps)))


def _assert_matches(ours, reference):
  np.testing.assert_allclose(ours, reference, rtol=RTOL, atol=1e-9)


WARMUP_CASES = [
  dict(warmup_num_steps=1),
  dict(warmup_num_steps=2),
  dict(warmup_num_steps=3, warmup_min_lr=0.01),
  dict(warmup_num_steps=10, warmup_min_lr=0.002, warmup_max_lr=0.03),
  dict(warmup_num_steps=7, warmup_min_lr=0.04, warmup_max_lr=0.01),
]


@pytest.mark.parametrize("warmup_type", ["log", "linear"])
@pytest.mark.parametrize("params", WARMUP_CASES)
def test_warmup_lr_matches_deepspeed(params, warmup_type):
  params = dict(params, warmup_type=warmup_type)
  num_steps = max(2, params["warmup_num_steps"]) + 6
  reference = _engine_loop("WarmupLR", params, num_steps)[0]
  ours = dr.warmup_lr(**params, learning_rate=OPTIMIZER_LR)
  _assert_matches(_values(ours, num_steps), reference)


DECAY_CASES = [
  dict(total_num_steps=20, warmup_num_steps=5),
  dict(total_num_steps=12, warmup_num_steps=1, warmup_min_lr=0.001),
  dict(total_num_steps=10, warmup_num_steps=10),
  dict(total_num_steps=11, warmup_num_steps=10, warmup_max_lr=0.02),
  dict(total_num_steps=4, warmup_num_steps=9, warmup_min_lr=0.003),
  dict(total_num_steps=0, warmup_num_steps=3),
]


@pytest.mark.parametrize("warmup_type", ["log", "linear"])
@pytest.mark.parametrize("params", DECAY_CASES)
def test_warmup_decay_lr_matches_deepspeed(params, warmup_type):
  params = dict(params, warmup_type=warmup_type)
  num_steps = max(params["total_num_steps"], params["warmup_num_steps"]) + 6
  reference = _engine_loop("WarmupDecayLR", params, num_steps)[0]
  _assert_matches(_values(dr.warmup_decay_lr(**params), num_steps), reference)


COSINE_CASES = [
  dict(total_num_steps=20, warmup_num_steps=5),
  dict(total_num_steps=15, warmup_num_steps=1, warmup_min_ratio=0.1),
  dict(
    total_num_steps=12,
    warmup_num_steps=4,
    warmup_min_ratio=0.2,
    cos_min_ratio=0.05,
  ),
  dict(total_num_steps=8, warmup_num_steps=8, cos_min_ratio=0.3),
  dict(total_num_steps=9, warmup_num_steps=8),
  dict(total_num_steps=2, warmup_num_steps=1, warmup_min_ratio=0.5),
]


@pytest.mark.parametrize("warmup_type", ["log", "linear"])
@pytest.mark.parametrize("params", COSINE_CASES)
def test_warmup_cosine_lr_matches_deepspeed(params, warmup_type):
  params = dict(params, warmup_type=warmup_type)
  num_steps = max(params["total_num_steps"], params["warmup_num_steps"]) + 6
  reference = _engine_loop("WarmupCosineLR", params, num_steps)[0]
  ours = dr.warmup_cosine_lr(**params, learning_rate=OPTIMIZER_LR)
  _assert_matches(_values(ours, num_steps), reference)


def test_warmup_cosine_lr_total_below_warmup_is_refused():
  # DeepSpeed only logs a warning and never reaches its cosine.
  with pytest.raises(
    ValueError, match=r"total_num_steps=3 .*warmup_num_steps=6"
  ):
    dr.warmup_cosine_lr(3, warmup_num_steps=6, learning_rate=OPTIMIZER_LR)


ONE_CYCLE_CASES = [
  dict(cycle_first_step_size=4),
  dict(cycle_first_step_size=4, cycle_second_step_size=2),
  dict(cycle_first_step_size=3, cycle_second_step_size=0),
  dict(cycle_first_step_size=1, cycle_second_step_size=1),
  dict(cycle_first_step_size=6, cycle_first_stair_count=3),
  dict(
    cycle_first_step_size=7,
    cycle_second_step_size=5,
    cycle_first_stair_count=3,
    cycle_second_stair_count=2,
  ),
  dict(
    cycle_first_step_size=5,
    cycle_second_step_size=4,
    cycle_first_stair_count=4,
    cycle_second_stair_count=0,
  ),
  dict(cycle_first_step_size=5, cycle_first_stair_count=-1),
  dict(
    cycle_first_step_size=4,
    decay_step_size=2,
    decay_lr_rate=0.5,
    decay_mom_rate=0.01,
  ),
  dict(
    cycle_first_step_size=3,
    cycle_second_step_size=5,
    decay_step_size=3,
    decay_lr_rate=0.0,
    decay_mom_rate=0.02,
  ),
  dict(
    cycle_first_step_size=4,
    decay_step_size=0,
    decay_lr_rate=0.5,
    decay_mom_rate=0.1,
  ),
  dict(
    cycle_first_step_size=2,
    cycle_second_step_size=6,
    decay_step_size=1,
    decay_lr_rate=2.0,
    cycle_min_mom=0.5,
    cycle_max_mom=0.95,
  ),
  # Long enough for float32 stair positions to be an ulp off whole numbers.
  dict(
    cycle_first_step_size=1000,
    cycle_second_step_size=1500,
    cycle_first_stair_count=7,
    cycle_second_stair_count=9,
    decay_step_size=10,
    decay_lr_rate=0.01,
  ),
]

_MOMENTUM_KEYS = ("cycle_min_mom", "cycle_max_mom", "decay_mom_rate")


@pytest.mark.parametrize("params", ONE_CYCLE_CASES)
def test_one_cycle_matches_deepspeed(params):
  params = dict(params, cycle_min_lr=0.002, cycle_max_lr=0.04)
  second = params.get("cycle_second_step_size")
  cycle = params["cycle_first_step_size"] + (
    params["cycle_first_step_size"] if second is None else second
  )
  num_steps = cycle + 8
  lr, beta1, beta2 = _engine_loop("OneCycle", params, num_steps)
  lr_params = {k: v for k, v in params.items() if k not in _MOMENTUM_KEYS}
  mom_params = {
    k: v
    for k, v in params.items()
    if k not in ("cycle_min_lr", "cycle_max_lr", "decay_lr_rate")
  }
  _assert_matches(_values(dr.one_cycle(**lr_params), num_steps), lr)
  _assert_matches(
    _values(dr.one_cycle_momentum(**mom_params), num_steps), beta1
  )
  # DeepSpeed overwrites beta2 (0.995 in the optimizer) on every step.
  np.testing.assert_array_equal(beta2, dr.ONE_CYCLE_BETA2)


@pytest.mark.parametrize("staircase", [False, True])
@pytest.mark.parametrize(
  "size,rate", [(1, 1.0), (3, 0.5), (4, 2.0), (5, 0.0), (300, 0.7)]
)
def test_lr_range_test_matches_deepspeed(size, rate, staircase):
  params = dict(
    lr_range_test_min_lr=0.003,
    lr_range_test_step_size=size,
    lr_range_test_step_rate=rate,
    lr_range_test_staircase=staircase,
  )
  num_steps = 4 * size + 3
  reference = _engine_loop("LRRangeTest", params, num_steps)[0]
  _assert_matches(_values(dr.lr_range_test(**params), num_steps), reference)


# Config sections as a ds_config.json gives them, defaults included.
CONFIG_SECTIONS = [
  ("WarmupLR", {}),
  ("WarmupLR", {"warmup_max_lr": 0.01, "warmup_num_steps": 30}),
  ("WarmupDecayLR", {"total_num_steps": 1010}),
  (
    "WarmupDecayLR",
    {
      "total_num_steps": 40,
      "warmup_min_lr": 0.0,
      "warmup_max_lr": 3e-4,
      "warmup_num_steps": 12,
      "warmup_type": "linear",
      "last_batch_iteration": -1,
    },
  ),
  ("WarmupCosineLR", {"total_num_steps": 1020}),
  (
    "WarmupCosineLR",
    {
      "total_num_steps": 30,
      "warmup_num_steps": 6,
      "warmup_min_ratio": 0.1,
      "cos_min_ratio": 0.01,
    },
  ),
  ("OneCycle", {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3}),
  (
    "OneCycle",
    {
      "cycle_min_lr": 1e-4,
      "cycle_max_lr": 1e-3,
      "cycle_first_step_size": 10,
      "cycle_first_stair_count": 5,
      "decay_step_size": 4,
      "decay_lr_rate": 0.1,
      "cycle_momentum": False,
    },
  ),
  ("LRRangeTest", {}),
  (
    "LRRangeTest",
    {
      "lr_range_test_min_lr": 1e-5,
      "lr_range_test_step_size": 7,
      "lr_range_test_step_rate": 5.0,
      "lr_range_test_staircase": True,
    },
  ),
]


@pytest.mark.parametrize("type_name,params", CONFIG_SECTIONS)
def test_dispatcher_matches_deepspeed_engine(type_name, params):
  num_steps = 4010 if type_name in ("OneCycle", "LRRangeTest") else 1030
  if params:
    num_steps = 60
  reference = _engine_loop(type_name, params, num_steps)[0]
  ours = dr.deepspeed_schedule(type_name, params, learning_rate=OPTIMIZER_LR)
  _assert_matches(_values(ours, num_steps), reference)


def test_scheduler_names_are_deepspeeds():
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  assert set(dr.DEEPSPEED_SCHEDULERS) == set(lr_schedules.VALID_LR_SCHEDULES)


@pytest.mark.parametrize(
  "params,match",
  [
    ({"warmup_num_steps": 0}, "warmup_num_steps=0"),
    ({"warmup_num_steps": 2.5}, "warmup_num_steps=2.5"),
    ({"warmup_min_lr": -1e-3}, "warmup_min_lr=-0.001"),
  ],
)
def test_warmup_lr_rejects_what_deepspeed_rejects_or_misreads(params, match):
  with pytest.raises(ValueError, match=match):
    dr.warmup_lr(**params, learning_rate=0.1)


@pytest.mark.parametrize(
  "type_name,params,match",
  [
    ("WarmupLr", {}, r"scheduler type='WarmupLr'.*Did you mean 'WarmupLR'"),
    ("CosineAnnealingLR", {}, "expected one of 'WarmupLR'"),
    ("WarmupDecayLR", {"warmup_num_steps": 5}, r"requires 'total_num_steps'"),
    (
      "WarmupDecayLR",
      {"total_num_steps": 10, "warmup_max_rl": 1e-3},
      "Did you mean 'warmup_max_lr'",
    ),
    (
      "WarmupCosineLR",
      {"total_num_steps": 10, "warmup_max_lr": 1e-3},
      "warmup_max_lr",
    ),
    ("OneCycle", {"cycle_max_lr": 1e-3}, r"requires 'cycle_min_lr'"),
    (
      "OneCycle",
      {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_max_mom": 1.5},
      "cycle_max_mom=1.5",
    ),
    (
      "OneCycle",
      {"cycle_min_lr": 1e-4, "cycle_max_lr": -1e-3},
      "cycle_max_lr=-0.001",
    ),
    (
      "OneCycle",
      {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_first_step_size": 0},
      "cycle_first_step_size=0",
    ),
    (
      "OneCycle",
      {"cycle_min_lr": [1e-4, 1e-5], "cycle_max_lr": 1e-3},
      r"cycle_min_lr=\[0.0001, 1e-05\] is a list",
    ),
    (
      "OneCycle",
      {
        "cycle_min_lr": 1e-4,
        "cycle_max_lr": 1e-3,
        "cycle_first_step_size": 100000,
        "cycle_first_stair_count": 20000,
      },
      "cycle_first_stair_count=20000",
    ),
    ("WarmupLR", {"warmup_type": "cosine"}, r"warmup_type='cosine'"),
    ("WarmupLR", {"last_batch_iteration": 10}, "last_batch_iteration"),
    (
      "LRRangeTest",
      {"lr_range_test_step_size": 0},
      "lr_range_test_step_size=0",
    ),
    (
      "LRRangeTest",
      {"lr_range_test_staircase": "yes"},
      "lr_range_test_staircase='yes'",
    ),
  ],
)
def test_dispatcher_rejects_bad_sections(type_name, params, match):
  with pytest.raises(ValueError, match=match):
    dr.deepspeed_schedule(type_name, params, learning_rate=0.1)


def test_learning_rate_required_where_deepspeed_reads_the_optimizer():
  with pytest.raises(ValueError, match="WarmupCosineLR"):
    dr.deepspeed_schedule("WarmupCosineLR", {"total_num_steps": 10})
  with pytest.raises(ValueError, match="warmup_max_lr"):
    dr.deepspeed_schedule("WarmupLR", {})


@pytest.mark.parametrize(
  "type_name,params",
  [
    ("WarmupLR", {"warmup_num_steps": 0}),
    ("WarmupCosineLR", {"total_num_steps": 10, "warmup_num_steps": -3}),
    (
      "OneCycle",
      {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3, "cycle_first_step_size": 0},
    ),
    (
      "OneCycle",
      {
        "cycle_min_lr": 1e-4,
        "cycle_max_lr": 1e-3,
        "cycle_second_step_size": -1,
      },
    ),
    ("LRRangeTest", {"lr_range_test_step_size": 0}),
  ],
)
def test_rejected_where_deepspeed_raises_too(type_name, params):
  torch = require("torch")
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
  with pytest.raises(ValueError):
    getattr(lr_schedules, type_name)(optimizer, **params)
  with pytest.raises(ValueError):
    dr.deepspeed_schedule(type_name, params, learning_rate=0.1)


SCHEDULES = {
  "warmup_lr": lambda lr: dr.warmup_lr(warmup_num_steps=5, learning_rate=lr),
  "warmup_decay_lr": lambda lr: dr.warmup_decay_lr(
    12, warmup_max_lr=lr, warmup_num_steps=5, warmup_type="linear"
  ),
  "warmup_cosine_lr": lambda lr: dr.warmup_cosine_lr(
    12, warmup_num_steps=5, learning_rate=lr
  ),
  "one_cycle": lambda lr: dr.one_cycle(
    0.0, lr, cycle_first_step_size=6, cycle_first_stair_count=2
  ),
  "lr_range_test": lambda lr: dr.lr_range_test(
    lr, 3, lr_range_test_staircase=True
  ),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_jit_without_retracing_as_the_count_changes(name):
  schedule = SCHEDULES[name](0.1)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def at(count):
    return schedule(count)

  for count in range(20):
    assert float(at(jnp.asarray(count))) == pytest.approx(
      float(schedule(count)), rel=1e-6
    )


@pytest.mark.parametrize("name", SCHEDULES)
def test_vmap_over_learning_rates_and_grad(name):
  lrs = jnp.asarray([0.01, 0.1, 0.5])
  count = 7
  batched = jax.vmap(lambda lr: SCHEDULES[name](lr)(count))(lrs)
  unit = float(SCHEDULES[name](1.0)(count))
  # Every schedule here is linear in the learning rate it is given.
  np.testing.assert_allclose(batched, np.asarray(lrs) * unit, rtol=1e-6)
  grad = jax.grad(lambda lr: SCHEDULES[name](lr)(count))(0.1)
  assert float(grad) == pytest.approx(unit, rel=1e-6)
  assert unit > 0


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("name", SCHEDULES)
def test_float32_with_and_without_x64(name, x64):
  with jax.enable_x64(x64):
    schedule = SCHEDULES[name](0.1)
    value = jax.jit(schedule)(jnp.asarray(9))
    jaxpr = jax.make_jaxpr(schedule)(jnp.asarray(9))
  assert value.dtype == jnp.float32
  assert "f64" not in str(jaxpr)


def test_one_cycle_momentum_is_float32_under_x64():
  with jax.enable_x64(True):
    schedule = dr.one_cycle_momentum(
      cycle_first_step_size=3, decay_step_size=2, decay_mom_rate=0.1
    )
    jaxpr = jax.make_jaxpr(schedule)(jnp.asarray(9))
    values = jax.vmap(schedule)(jnp.arange(10))
  assert values.dtype == jnp.float32
  assert "f64" not in str(jaxpr)


def test_readme_snippet(capsys):
  import optax

  from bertadam_optax.schedules import deepspeed_schedule

  section = {
    "type": "WarmupDecayLR",
    "params": {
      "total_num_steps": 1000,
      "warmup_max_lr": 3e-4,
      "warmup_num_steps": 100,
      "warmup_type": "linear",
    },
  }
  schedule = deepspeed_schedule(section["type"], section["params"])
  optimizer = optax.adamw(learning_rate=schedule, weight_decay=0.01)
  print([float(schedule(k)) for k in (0, 1, 2, 101, 1001)])

  assert isinstance(optimizer, optax.GradientTransformation)
  printed = np.asarray(ast.literal_eval(capsys.readouterr().out))
  reference = _engine_loop(section["type"], section["params"], 1002)[0]
  _assert_matches(printed, reference[[0, 1, 2, 101, 1001]])


def test_docstring_examples_run():
  # The Examples: sections are the documentation users copy; they must run.
  module = importlib.import_module("bertadam_optax.schedules.deepspeed_runtime")
  results = doctest.testmod(
    module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  )
  assert results.attempted > 0
  assert results.failed == 0
