"""Tests for bertadam_optax/schedules/jax_transformers.py.

The transformers schedules are compared with transformers 5.x itself: a
``torch.optim.SGD`` with ``lr=learning_rate`` gets its scheduler from
``transformers.get_scheduler``. For small totals the real ``LambdaLR`` is
stepped (``optimizer.step(); scheduler.step()``) and ``get_last_lr()`` read
after ``s`` steps; for large totals, where stepping a million times is too
slow, the value at step ``s`` is ``base_lr * lr_lambdas[0](s)``, which is what
``LambdaLR.get_lr`` computes. :func:`linear_warmup_cosine_decay` has no
third-party original and is compared with a float64 NumPy formula below.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import math
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax.schedules import transformers as jax_transformers
from tests.references import require

LR = 1e-3
# The float32 tolerance: 1e-5 relative or 1e-7 x the learning rate.
RTOL = 1e-5
ATOL = 1e-7


def _close(actual, expected, lr=LR, err_msg=""):
  np.testing.assert_allclose(
    np.asarray(actual, np.float64),
    expected,
    rtol=RTOL,
    atol=ATOL * lr,
    err_msg=err_msg,
  )


def _scheduler(name, lr, warmup, total, kwargs):
  torch = require("torch")
  transformers = require("transformers")
  param = torch.nn.Parameter(torch.zeros(()))
  optimizer = torch.optim.SGD([param], lr=lr)
  scheduler = transformers.get_scheduler(
    name,
    optimizer,
    num_warmup_steps=warmup,
    num_training_steps=total,
    scheduler_specific_kwargs=dict(kwargs),
  )
  return optimizer, scheduler


def _stepped_lrs(name, lr, warmup, total, kwargs, num_steps):
  """The real LambdaLR's learning rate after 0, 1, ... num_steps-1 steps."""
  optimizer, scheduler = _scheduler(name, lr, warmup, total, kwargs)
  lrs = []
  for _ in range(num_steps):
    lrs.append(scheduler.get_last_lr()[0])
    optimizer.step()
    scheduler.step()
  return np.asarray(lrs, np.float64)


def _lambda_lrs(name, lr, warmup, total, kwargs, steps):
  """``base_lr * lr_lambda(s)``: LambdaLR's value at step ``s``, unstepped."""
  _, scheduler = _scheduler(name, lr, warmup, total, kwargs)
  lr_lambda, base_lr = scheduler.lr_lambdas[0], scheduler.base_lrs[0]
  return np.asarray([base_lr * lr_lambda(int(s)) for s in steps], np.float64)


def _ours(name, lr, warmup, total, kwargs):
  return jax_transformers.get_schedule(name, lr, warmup, total, **kwargs)


def _eager(schedule, steps, size=64):
  """``schedule`` on ``steps`` padded to a multiple of ``size``: eager ops
  compile once per shape, so a few fixed shapes keep the sweeps fast."""
  steps = np.asarray(steps)
  padded = np.resize(steps, -(-len(steps) // size) * size)
  return np.asarray(schedule(jnp.asarray(padded, jnp.int32)))[: len(steps)]


def _default(name, total):
  """A representative call of ``name``: (num_training_steps, kwargs)."""
  if name in ("cosine_with_min_lr", "cosine_warmup_with_min_lr"):
    return total, {"min_lr_rate": 0.1}
  if name == "warmup_stable_decay":
    return total, {"num_decay_steps": total // 3}
  return total, {}


def _kw(**kwargs):
  return lambda warmup, total: (total, kwargs)


def _wsd(
  warmup_type, decay_type, min_lr_ratio=0.0, num_cycles=0.5, stable=False
):
  def make(warmup, total):
    rest = total - warmup
    kwargs = {
      "warmup_type": warmup_type,
      "decay_type": decay_type,
      "min_lr_ratio": min_lr_ratio,
      "num_cycles": num_cycles,
    }
    if stable:
      # num_stable_steps given and num_training_steps left out.
      kwargs.update(
        num_stable_steps=rest // 3, num_decay_steps=rest - rest // 3
      )
      return None, kwargs
    kwargs["num_decay_steps"] = (rest + 1) // 2
    return total, kwargs

  return make


# (name, kwargs builder, id)
CASES = [
  ("linear", _kw(), "linear"),
  ("cosine", _kw(), "cosine"),
  ("cosine", _kw(num_cycles=0.25), "cosine-quarter"),
  ("cosine", _kw(num_cycles=1.0), "cosine-full"),
  ("cosine", _kw(num_cycles=1.5), "cosine-1.5"),
  ("cosine_with_restarts", _kw(), "restarts"),
  ("cosine_with_restarts", _kw(num_cycles=3), "restarts-3"),
  ("cosine_with_restarts", _kw(num_cycles=2.5), "restarts-2.5"),
  ("cosine_with_restarts", _kw(num_cycles=7), "restarts-7"),
  ("polynomial", _kw(), "polynomial"),
  ("polynomial", _kw(lr_end=1e-5, power=2.0), "polynomial-sq"),
  ("polynomial", _kw(lr_end=0.0, power=0.5), "polynomial-sqrt"),
  ("constant", _kw(), "constant"),
  ("constant_with_warmup", _kw(), "constant_with_warmup"),
  ("inverse_sqrt", _kw(), "inverse_sqrt"),
  ("inverse_sqrt", _kw(timescale=7), "inverse_sqrt-7"),
  ("inverse_sqrt", _kw(timescale=2.5), "inverse_sqrt-2.5"),
  ("cosine_with_min_lr", _kw(min_lr_rate=0.1), "min_lr_rate"),
  ("cosine_with_min_lr", _kw(min_lr=1e-5), "min_lr"),
  ("cosine_with_min_lr", _kw(min_lr_rate=0.0, num_cycles=1.0), "min_lr-full"),
  ("cosine_warmup_with_min_lr", _kw(min_lr_rate=0.1), "warmup_min_lr"),
  (
    "cosine_warmup_with_min_lr",
    _kw(min_lr=1e-5, warmup_lr_rate=0.2),
    "warmup_min_lr-rate",
  ),
  (
    "cosine_warmup_with_min_lr",
    _kw(min_lr_rate=0.05, warmup_lr_rate=0.0, num_cycles=1),
    "warmup_min_lr-zero",
  ),
  ("warmup_stable_decay", _wsd("linear", "cosine"), "wsd"),
  ("warmup_stable_decay", _wsd("cosine", "linear", 0.1), "wsd-cos-lin"),
  ("warmup_stable_decay", _wsd("1-sqrt", "1-sqrt", 0.05), "wsd-sqrt"),
  ("warmup_stable_decay", _wsd("linear", "1-sqrt"), "wsd-lin-sqrt"),
  ("warmup_stable_decay", _wsd("1-sqrt", "cosine", 0.2, 1.0), "wsd-full-cos"),
  (
    "warmup_stable_decay",
    _wsd("cosine", "cosine", 0.1, stable=True),
    "wsd-stable",
  ),
]

SMALL_TOTALS = (1, 2, 7, 20, 49)


def _small_pairs(name):
  """(warmup, total) pairs: warmup 0, 1, small, large, at the end."""
  pairs = []
  for total in SMALL_TOTALS:
    for warmup in sorted({0, 1, 2, total // 3, total - 1, total}):
      if 0 <= warmup <= total and not (
        name == "polynomial" and warmup == total
      ):
        pairs.append((warmup, total))
  return pairs


@pytest.mark.parametrize(
  "name,make", [c[:2] for c in CASES], ids=[c[2] for c in CASES]
)
def test_matches_transformers_at_every_step(name, make):
  # Eager evaluation: one compilation per pair would make the sweep slow;
  # test_jit_matches_transformers covers jit.
  num_steps = math.ceil(1.2 * max(SMALL_TOTALS)) + 2
  steps = np.arange(num_steps)
  for warmup, total in _small_pairs(name):
    total_arg, kwargs = make(warmup, total)
    _close(
      _eager(_ours(name, LR, warmup, total_arg, kwargs), steps),
      _stepped_lrs(name, LR, warmup, total_arg, kwargs, num_steps),
      err_msg=f"warmup={warmup}, total={total}",
    )


BIG_TOTAL = 1_000_000


def _boundaries(*edges):
  return {e + d for e in edges for d in (-2, -1, 0, 1, 2)}


def _long_run_steps(name, warmup, total, kwargs):
  """Step 0, the warmup edge, the middle, the end, past the end, +-2 each,
  and the restarts or the phase edges."""
  steps = _boundaries(0, warmup, total // 2, total, int(1.2 * total))
  span = total - warmup
  if name == "cosine_with_restarts":
    cycles = kwargs.get("num_cycles", 1)
    steps |= _boundaries(
      *(warmup + c * span // cycles for c in range(1, math.ceil(cycles)))
    )
  if name == "warmup_stable_decay":
    decay = kwargs["num_decay_steps"]
    stable = kwargs.get("num_stable_steps", span - decay)
    steps |= _boundaries(warmup + stable, warmup + stable + decay)
  return np.asarray(sorted(s for s in steps if s >= 0))


@pytest.mark.parametrize(
  "name,make", [c[:2] for c in CASES], ids=[c[2] for c in CASES]
)
def test_matches_transformers_at_boundaries_of_long_runs(name, make):
  for warmup in (0, 1, 4_000, BIG_TOTAL - 1):
    total_arg, kwargs = make(warmup, BIG_TOTAL)
    steps = _long_run_steps(name, warmup, BIG_TOTAL, kwargs)
    _close(
      _eager(_ours(name, LR, warmup, total_arg, kwargs), steps),
      _lambda_lrs(name, LR, warmup, total_arg, kwargs, steps),
      err_msg=f"warmup={warmup}",
    )


@pytest.mark.parametrize("name", jax_transformers.TRANSFORMERS_SCHEDULES)
def test_jit_matches_transformers(name):
  # Under jit XLA may turn a division into a multiplication by a reciprocal;
  # the warmup and phase edges must still fall on the same steps.
  runs = []
  for warmup, total in ((1, 7), (16, 49), (4_000, BIG_TOTAL)):
    total_arg, kwargs = _default(name, total)
    if total < 50:
      steps = np.arange(math.ceil(1.2 * total) + 2)
    else:
      steps = _long_run_steps(name, warmup, total, kwargs)
    runs.append(
      (
        _ours(name, LR, warmup, total_arg, kwargs),
        steps,
        _lambda_lrs(name, LR, warmup, total_arg, kwargs, steps),
      )
    )
  values = jax.jit(lambda ss: [run[0](s) for run, s in zip(runs, ss)])(
    [jnp.asarray(run[1], jnp.int32) for run in runs]
  )
  for (_, steps, expected), value in zip(runs, values):
    _close(value, expected, err_msg=f"steps={steps}")


@pytest.mark.parametrize("total", [49, 98, 4900])
def test_restart_steps_follow_transformers_float64_rounding(total):
  # With num_cycles=49 and 49 decay steps every step is a restart, and in
  # float64 49 * (1 / 49) < 1: transformers then ends the first cycle (value
  # ~0) where exact arithmetic would restart it (value 1).
  name, kwargs = "cosine_with_restarts", {"num_cycles": 49}
  steps = list(range(total + 3))
  expected = _lambda_lrs(name, LR, 0, total, kwargs, steps)
  value = jax.jit(_ours(name, LR, 0, total, kwargs))(jnp.asarray(steps))
  _close(value, expected)
  # The quirk is really exercised: some restart steps sit near 0 and some at 1.
  starts = expected[: total : total // 49]
  assert (starts < 0.01 * LR).any() and (starts > 0.99 * LR).any()


def test_names_and_factories_follow_transformers():
  transformers = require("transformers")
  from transformers import optimization  # pylint: disable=import-outside-toplevel

  all_names = {t.value for t in transformers.SchedulerType}
  assert set(jax_transformers.TRANSFORMERS_SCHEDULES) == all_names - {
    "reduce_lr_on_plateau",
    "greedy",
  }
  assert len(set(jax_transformers.TRANSFORMERS_SCHEDULES)) == len(
    jax_transformers.TRANSFORMERS_SCHEDULES
  )
  common = {"learning_rate", "num_warmup_steps", "num_training_steps"}
  for name in jax_transformers.TRANSFORMERS_SCHEDULES:
    theirs = optimization.TYPE_TO_SCHEDULER_FUNCTION[
      transformers.SchedulerType(name)
    ]
    # The factory is named after the transformers function, minus ``get_``.
    ours = getattr(jax_transformers, theirs.__name__.removeprefix("get_"))
    assert ours.__name__ in jax_transformers.__all__
    their_kwargs = set(inspect.signature(theirs).parameters) - {
      "optimizer",
      "num_warmup_steps",
      "num_training_steps",
      "last_epoch",
    }
    our_kwargs = set(inspect.signature(ours).parameters) - common
    assert our_kwargs == their_kwargs, name
    # get_schedule dispatches to that factory.
    total, kwargs = _default(name, 20)
    steps = np.arange(25)
    steps_args = {"num_warmup_steps": 3, "num_training_steps": total}
    direct = ours(
      LR,
      **{
        a: v
        for a, v in steps_args.items()
        if a in inspect.signature(ours).parameters
      },
      **kwargs,
    )
    np.testing.assert_array_equal(
      _eager(
        jax_transformers.get_schedule(name, LR, 3, total, **kwargs), steps
      ),
      _eager(direct, steps),
    )


def test_accepts_scheduler_type_enum():
  transformers = require("transformers")
  steps = np.arange(30)
  np.testing.assert_array_equal(
    _eager(
      jax_transformers.get_schedule(
        transformers.SchedulerType.COSINE, LR, 5, 20
      ),
      steps,
    ),
    _eager(jax_transformers.get_schedule("cosine", LR, 5, 20), steps),
  )


@pytest.mark.parametrize("name", jax_transformers.TRANSFORMERS_SCHEDULES)
def test_vmap_over_learning_rates(name):
  warmup, steps = 3, np.arange(25)
  total, kwargs = _default(name, 20)
  lrs = np.asarray([1e-4, 1e-3, 3e-2], np.float32)
  values = jax.jit(
    jax.vmap(
      lambda lr: jax_transformers.get_schedule(
        name, lr, warmup, total, **kwargs
      )(jnp.asarray(steps))
    )
  )(lrs)
  chex.assert_shape(values, (len(lrs), len(steps)))
  for lr, value in zip(lrs, values):
    _close(
      value,
      _lambda_lrs(name, float(lr), warmup, total, kwargs, steps),
      lr=float(lr),
    )


@pytest.mark.parametrize("name", jax_transformers.TRANSFORMERS_SCHEDULES)
def test_vmap_over_steps_equals_calls_one_at_a_time(name):
  total, kwargs = _default(name, 20)
  schedule = jax_transformers.get_schedule(name, LR, 3, total, **kwargs)
  steps = jnp.arange(25)
  batched = jax.jit(jax.vmap(schedule))(steps)
  jitted = jax.jit(schedule)
  one_by_one = jnp.stack([jitted(s) for s in steps])
  _close(batched, np.asarray(one_by_one, np.float64))


@pytest.mark.parametrize("name", jax_transformers.TRANSFORMERS_SCHEDULES)
def test_grad_wrt_learning_rate(name):
  # Every schedule is affine in the learning rate (``lr_end`` and ``min_lr``
  # are absolute), so transformers' difference quotient is the derivative.
  warmup, steps = 3, np.arange(25)
  total, kwargs = _default(name, 20)
  if name == "cosine_with_min_lr":
    kwargs = {"min_lr": 1e-5}
  lo, hi = 1e-3, 3e-3
  slope = (
    _lambda_lrs(name, hi, warmup, total, kwargs, steps)
    - _lambda_lrs(name, lo, warmup, total, kwargs, steps)
  ) / (hi - lo)

  def value(lr, step):
    return jax_transformers.get_schedule(name, lr, warmup, total, **kwargs)(
      step
    )

  grads = jax.jit(jax.vmap(jax.grad(value), in_axes=(None, 0)))(
    jnp.float32(2e-3), jnp.asarray(steps)
  )
  assert np.isfinite(grads).all()
  _close(grads, slope, lr=1.0)


@pytest.mark.parametrize("name", jax_transformers.TRANSFORMERS_SCHEDULES)
def test_traces_once_over_many_counts(name):
  total, kwargs = _default(name, 20)
  schedule = jax_transformers.get_schedule(name, LR, 3, total, **kwargs)
  # The trace counter is keyed by the code location, shared by every name.
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def evaluate(count):
    return schedule(count)

  for count in range(40):
    evaluate(jnp.asarray(count, jnp.int32))


def test_linear_warmup_cosine_decay_traces_once():
  schedule = jax_transformers.linear_warmup_cosine_decay(1e-3, 5, 20, 1e-4)
  chex.clear_trace_counter()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def evaluate(count):
    return schedule(count)

  for count in range(40):
    evaluate(jnp.asarray(count, jnp.int32))


def _all_schedules():
  for name in jax_transformers.TRANSFORMERS_SCHEDULES:
    total, kwargs = _default(name, 20)
    if name == "cosine_with_min_lr":
      kwargs = {"min_lr": np.float64(1e-5)}
    yield (
      name,
      jax_transformers.get_schedule(name, np.float64(LR), 3, total, **kwargs),
    )
  yield (
    "linear_warmup_cosine_decay",
    jax_transformers.linear_warmup_cosine_decay(
      np.float64(LR), 3, 20, np.float64(1e-5)
    ),
  )


@pytest.mark.parametrize("x64", [False, True])
def test_float32_without_float64_ops(x64):
  with jax.enable_x64(x64):
    for name, schedule in _all_schedules():
      count = jnp.asarray(7, jnp.int64 if x64 else jnp.int32)
      assert jax.eval_shape(schedule, count).dtype == jnp.float32, name
      assert "f64" not in str(jax.make_jaxpr(schedule)(count)), name


def _numpy_warmup_cosine(peak_lr, warmup_steps, total_steps, min_lr, steps):
  """The formula of the issue, in float64, with the floor held past the end."""
  out = []
  for s in steps:
    if s < warmup_steps:
      out.append(peak_lr * s / warmup_steps)
    elif s > total_steps:
      out.append(min_lr)
    else:
      progress = (s - warmup_steps) / max(1, total_steps - warmup_steps)
      cos_part = 0.5 * (1.0 + np.cos(np.pi * progress))
      ratio = min_lr / peak_lr
      out.append(peak_lr * (cos_part * (1.0 - ratio) + ratio))
  return np.asarray(out, np.float64)


@pytest.mark.parametrize(
  "peak_lr,warmup_steps,total_steps,min_lr",
  [
    (1e-3, 0, 1, 0.0),
    (1e-3, 1, 1, 1e-4),
    (1e-3, 0, 10, 0.0),
    (1e-3, 1, 10, 1e-4),
    (6e-4, 3, 10, 6e-5),
    (6e-4, 10, 10, 6e-5),
    (3e-4, 7, 50, 3e-4),
    (2.0, 13, 50, 0.5),
    (1e-3, 2_000, 1_000_000, 1e-4),
  ],
)
def test_linear_warmup_cosine_decay_matches_formula(
  peak_lr, warmup_steps, total_steps, min_lr
):
  if total_steps <= 50:
    steps = np.arange(math.ceil(1.2 * total_steps) + 3)
  else:
    steps = np.asarray(
      sorted(
        s
        for s in _boundaries(
          0, warmup_steps, total_steps // 2, total_steps, int(1.2 * total_steps)
        )
        if s >= 0
      )
    )
  schedule = jax_transformers.linear_warmup_cosine_decay(
    peak_lr, warmup_steps, total_steps, min_lr
  )
  value = jax.jit(schedule)(jnp.asarray(steps, jnp.int32))
  _close(
    value,
    _numpy_warmup_cosine(peak_lr, warmup_steps, total_steps, min_lr, steps),
    lr=peak_lr,
  )


def test_linear_warmup_cosine_decay_holds_min_lr_and_differentiates():
  def value(lr, step):
    return jax_transformers.linear_warmup_cosine_decay(lr, 4, 20, min_lr=1e-4)(
      step
    )

  steps = jnp.arange(30)
  values = jax.jit(jax.vmap(value, in_axes=(None, 0)))(1e-3, steps)
  _close(values[20:], np.full(10, 1e-4))
  grads = jax.jit(jax.vmap(jax.grad(value), in_axes=(None, 0)))(1e-3, steps)
  # d/dpeak: the warmup ramp, then the cosine part, then 0 past the end.
  expected = [
    s / 4
    if s < 4
    else 0.5 * (1 + math.cos(math.pi * (s - 4) / 16))
    if s <= 20
    else 0.0
    for s in range(30)
  ]
  _close(grads, np.asarray(expected), lr=1.0)
  lrs = jnp.asarray([1e-3, 2e-3])
  by_lr = jax.jit(jax.vmap(value, in_axes=(0, None)))(lrs, 10)
  _close(
    by_lr, [_numpy_warmup_cosine(float(lr), 4, 20, 1e-4, [10])[0] for lr in lrs]
  )


def test_wsd_warns_when_total_and_stable_steps_disagree():
  steps = np.arange(40)
  with pytest.warns(UserWarning, match="disagree"):
    both = jax_transformers.get_schedule(
      "warmup_stable_decay", LR, 5, 100, num_decay_steps=10, num_stable_steps=20
    )
  stable_only = jax_transformers.get_schedule(
    "warmup_stable_decay", LR, 5, None, num_decay_steps=10, num_stable_steps=20
  )
  np.testing.assert_array_equal(_eager(both, steps), _eager(stable_only, steps))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    jax_transformers.get_schedule(
      "warmup_stable_decay", LR, 5, 35, num_decay_steps=10, num_stable_steps=20
    )


def _gs(*args, **kwargs):
  return lambda: jax_transformers.get_schedule(*args, **kwargs)


BAD = [
  (_gs("cosin", LR, 10, 100), r"name='cosin'.*Did you mean 'cosine'"),
  (_gs("reduce_lr_on_plateau", LR), r"metric-driven transformation"),
  (_gs("greedy", LR, 10, 100), r"metric-driven transformation"),
  (_gs("linear", -1e-3, 10, 100), r"learning_rate=-0.001 .*\[0, inf\)"),
  (_gs("linear", LR, None, 100), r"num_warmup_steps=None.*>= 0"),
  (_gs("cosine", LR, 10, None), r"num_training_steps=None.*>= 1"),
  (_gs("linear", LR, 10, 0), r"num_training_steps=0 is out of range"),
  (_gs("linear", LR, -1, 100), r"num_warmup_steps=-1 is out of range"),
  (_gs("linear", LR, 2.5, 100), r"num_warmup_steps=2.5 is not an integer"),
  (
    _gs("linear", LR, 101, 100),
    r"num_warmup_steps=101 .*<= num_training_steps=100",
  ),
  (
    _gs("polynomial", LR, 100, 100),
    r"num_warmup_steps=100 .*< num_training_steps=100",
  ),
  (
    _gs("polynomial", LR, 10, 100, lr_end=LR),
    r"lr_end=0.001 is out of range.*\[0.0, 0.001\)",
  ),
  (_gs("polynomial", LR, 10, 100, power=-1.0), r"power=-1.0"),
  (
    _gs("linear", LR, 10, 100, num_cycles=2),
    r"num_cycles=2: schedule 'linear' takes no keyword 'num_cycles'",
  ),
  (_gs("constant", LR, power=2.0), r"power=2.0: schedule 'constant'"),
  (
    _gs("cosine", LR, 10, 100, scheduler_specific_kwargs={"num_cycles": 1}),
    r"takes no keyword 'scheduler_specific_kwargs'.*Pass them as keywords",
  ),
  (_gs("linear", LR, True, 100), r"num_warmup_steps=True is a boolean"),
  (_gs("cosine", LR, 10, 100, num_cycles=0), r"num_cycles=0 is out"),
  (
    _gs("cosine_with_restarts", LR, 10, 100, num_cycles=-1),
    r"num_cycles=-1 is out",
  ),
  (_gs("cosine_with_min_lr", LR, 10, 100), r"exactly one"),
  (
    _gs("cosine_with_min_lr", LR, 10, 100, min_lr=1e-5, min_lr_rate=0.1),
    r"exactly one",
  ),
  (
    _gs("cosine_with_min_lr", LR, 10, 100, min_lr=2e-3),
    r"min_lr=0.002 is out of range.*\[0.0, 0.001\]",
  ),
  (
    _gs("cosine_warmup_with_min_lr", LR, 10, 100, min_lr_rate=1.5),
    r"min_lr_rate=1.5 is out of range.*\[0.0, 1.0\]",
  ),
  (
    _gs(
      "cosine_warmup_with_min_lr",
      LR,
      10,
      100,
      min_lr_rate=0.1,
      warmup_lr_rate=-0.1,
    ),
    r"warmup_lr_rate=-0.1 is out of range",
  ),
  (_gs("inverse_sqrt", LR, 10, timescale=0), r"timescale=0 is out"),
  (_gs("warmup_stable_decay", LR, 10, 100), r"num_decay_steps=None"),
  (
    _gs(
      "warmup_stable_decay", LR, 10, 100, num_decay_steps=10, decay_type="cosin"
    ),
    r"decay_type='cosin'.*Did you mean 'cosine'",
  ),
  (
    _gs(
      "warmup_stable_decay", LR, 10, 100, num_decay_steps=10, warmup_type="exp"
    ),
    r"warmup_type='exp'.*'1-sqrt'",
  ),
  (
    _gs(
      "warmup_stable_decay", LR, 10, 100, num_decay_steps=10, min_lr_ratio=1.5
    ),
    r"min_lr_ratio=1.5 is out of range",
  ),
  (
    _gs("warmup_stable_decay", LR, 10, 15, num_decay_steps=10),
    r"num_training_steps=15 is out of range.*>= .* = 20",
  ),
  (
    _gs("warmup_stable_decay", LR, 10, None, num_decay_steps=10),
    r"num_training_steps=None, num_stable_steps=None",
  ),
  (
    _gs(
      "warmup_stable_decay",
      LR,
      10,
      None,
      num_decay_steps=10,
      num_stable_steps=-5,
    ),
    r"num_stable_steps=-5 is out of range",
  ),
  (
    lambda: jax_transformers.linear_warmup_cosine_decay(-1.0, 0, 10),
    r"peak_lr=-1.0 is out of range",
  ),
  (
    lambda: jax_transformers.linear_warmup_cosine_decay(LR, 11, 10),
    r"warmup_steps=11 .*<= total_steps=10",
  ),
  (
    lambda: jax_transformers.linear_warmup_cosine_decay(LR, 0, 0),
    r"total_steps=0 is out of range",
  ),
  (
    lambda: jax_transformers.linear_warmup_cosine_decay(LR, 0, 10, min_lr=2e-3),
    r"min_lr=0.002 is out of range.*\[0.0, 0.001\]",
  ),
]


@pytest.mark.parametrize(
  "build,match", BAD, ids=[f"bad{i}" for i in range(len(BAD))]
)
def test_bad_arguments_raise_at_construction(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_readme_snippet():
  # The code of the README section, verbatim.
  import jax.numpy as jnp
  import optax

  from bertadam_optax.schedules import get_schedule
  from bertadam_optax.schedules import linear_warmup_cosine_decay

  # transformers.get_scheduler("cosine_with_min_lr", optimizer,
  #     num_warmup_steps=100, num_training_steps=1000,
  #     scheduler_specific_kwargs={"min_lr_rate": 0.1})
  schedule = get_schedule(
    "cosine_with_min_lr",
    3e-4,
    num_warmup_steps=100,
    num_training_steps=1000,
    min_lr_rate=0.1,
  )
  optimizer = optax.adamw(learning_rate=schedule, weight_decay=0.01)

  pretrain = linear_warmup_cosine_decay(
    peak_lr=6e-4, warmup_steps=2_000, total_steps=100_000, min_lr=6e-5
  )
  lr_at_end = pretrain(jnp.asarray(150_000))  # held at min_lr: 6e-5
  # End of the snippet.
  _close(schedule(jnp.asarray(1000)), 3e-5, lr=3e-4)
  _close(schedule(jnp.asarray(50)), 1.5e-4, lr=3e-4)
  _close(lr_at_end, 6e-5, lr=6e-4)
  _close(pretrain(jnp.asarray(2_000)), 6e-4, lr=6e-4)
  assert optimizer.init({"w": jnp.ones(3)})


def test_docstring_examples_run():
  # The Examples: sections are the documentation users copy; they must run.
  module = importlib.import_module("bertadam_optax.schedules.transformers")
  results = doctest.testmod(
    module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  )
  assert results.attempted > 0
  assert results.failed == 0
