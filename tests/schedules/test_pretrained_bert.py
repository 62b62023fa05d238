"""Tests for :mod:`bertadam_optax.schedules.pretrained_bert`.

Every value is compared with pytorch-pretrained-bert 0.6.2 itself: the
``_LRSchedule`` classes' float64 ``get_lr(step)`` (times the learning rate) for
:func:`pretrained_bert_schedule`, their ``get_lr_(progress)`` for the module
functions.
"""

from __future__ import annotations

import doctest
import importlib
import logging
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax.schedules import pretrained_bert
from bertadam_optax.schedules.pretrained_bert import PRETRAINED_BERT_SCHEDULES
from bertadam_optax.schedules.pretrained_bert import pretrained_bert_schedule
from tests.references import require

RTOL = 2e-6
ATOL = 2e-7

HARD = "warmup_cosine_with_hard_restarts"
WARM = "warmup_cosine_with_warmup_restarts"
COSINES = ("warmup_cosine", HARD, WARM)
NAMES = tuple(PRETRAINED_BERT_SCHEDULES)

# The restarting cosines are not in 0.6.2's SCHEDULES dict, only classes.
RESTART_CLASSES = {
  HARD: "WarmupCosineWithHardRestartsSchedule",
  WARM: "WarmupCosineWithWarmupRestartsSchedule",
}

CYCLES = {
  "warmup_cosine": (None, 2.0, 3.7),
  HARD: (None, 2, 3.7),
  WARM: (None, 2, 3.7),
}


@pytest.fixture(scope="module")
def optimization():
  require("torch")
  module = require("pytorch_pretrained_bert").optimization
  # 0.6.2 logs a warning when built with t_total < 0; get_lr is called with
  # nowarn=True below, which silences the one past t_total.
  logger = logging.getLogger(module.__name__)
  level = logger.level
  logger.setLevel(logging.ERROR)
  yield module
  logger.setLevel(level)


def _reference(optimization, name, t_total, warmup, cycles=None):
  if name in RESTART_CLASSES:
    cls = getattr(optimization, RESTART_CLASSES[name])
  else:
    cls = optimization.SCHEDULES[name]
  kwargs = {} if cycles is None else {"cycles": cycles}
  return cls(warmup=warmup, t_total=t_total, **kwargs)


def _expected(reference, steps):
  return np.array([reference.get_lr(int(s), nowarn=True) for s in steps])


def _valid(name, warmup, cycles):
  # The original asserts warmup * cycles < 1 for the warmup restarts.
  return name != WARM or warmup * (1.0 if cycles is None else cycles) < 1.0


def _configs(totals, warmups):
  params = []
  for name in NAMES:
    for cycles in CYCLES.get(name, (None,)):
      for warmup in warmups:
        if not _valid(name, warmup, cycles):
          continue
        for t_total in totals:
          params.append(
            pytest.param(
              name,
              t_total,
              warmup,
              cycles,
              id=f"{name}-T{t_total}-w{warmup}-c{cycles}",
            )
          )
  return params


# Schedules are evaluated (outside jit) on this many counts, padded, so that
# the kernels compiled for one case serve the next.
PADDED = 512


def _values(schedule, steps):
  steps = np.asarray(steps)
  padded = np.zeros(PADDED, np.int32)
  padded[: len(steps)] = steps
  return np.asarray(schedule(jnp.asarray(padded)))[: len(steps)]


@pytest.mark.parametrize(
  "name,t_total,warmup,cycles",
  _configs((1, 7, 10, 250), (0, -1, 0.002, 0.2, 0.9)),
)
def test_every_step_matches_reference(
  optimization, name, t_total, warmup, cycles
):
  reference = _reference(optimization, name, t_total, warmup, cycles)
  schedule = pretrained_bert_schedule(name, 1.0, t_total, warmup, cycles=cycles)
  # Up to twice t_total: warmup, decay, restarts and what follows the end.
  steps = np.arange(0, 2 * t_total + 2)
  np.testing.assert_allclose(
    _values(schedule, steps), _expected(reference, steps), rtol=RTOL, atol=ATOL
  )


def _boundary_steps(reference, name, t_total):
  """Steps around every place where the schedule changes regime."""
  w = reference.warmup  # as the class stores it: -1 -> 0, scaled by cycles
  marks = [0.0, w * t_total, t_total, 1.3 * t_total]
  if name in (HARD, "warmup_cosine"):
    period = t_total * (1.0 - w) / reference.cycles
    marks += [
      w * t_total + k * period
      for k in range(1, math.ceil(1.3 * t_total / period) + 1)
    ]
  elif name == WARM:
    period = t_total / reference.cycles
    for k in range(math.ceil(1.3 * t_total / period) + 1):
      marks += [k * period, (k + w) * period]
  steps = set()
  for mark in marks:
    for step in (
      math.floor(mark) - 1,
      math.floor(mark),
      math.ceil(mark),
      math.ceil(mark) + 1,
    ):
      if 0 <= step <= math.ceil(1.3 * t_total):
        steps.add(step)
  return sorted(steps)


@pytest.mark.parametrize(
  "name,t_total,warmup,cycles",
  _configs((999_983, 1_000_000), (0, -1, 1e-7, 0.002, 0.3)),
)
def test_boundary_steps_of_large_totals(
  optimization, name, t_total, warmup, cycles
):
  reference = _reference(optimization, name, t_total, warmup, cycles)
  schedule = pretrained_bert_schedule(name, 1.0, t_total, warmup, cycles=cycles)
  steps = _boundary_steps(reference, name, t_total)
  steps += list(np.random.default_rng(t_total).integers(0, 1.3 * t_total, 50))
  np.testing.assert_allclose(
    _values(schedule, steps), _expected(reference, steps), rtol=RTOL, atol=ATOL
  )


@pytest.mark.parametrize("name", COSINES)
def test_cosines_far_past_the_end(optimization, name):
  # The original keeps cycling (or rising) past t_total; so does this.
  reference = _reference(optimization, name, 100, 0.13, 1.0)
  schedule = pretrained_bert_schedule(name, 1.0, 100, 0.13, cycles=1.0)
  steps = np.arange(4_900, 5_100)
  np.testing.assert_allclose(
    _values(schedule, steps), _expected(reference, steps), rtol=RTOL, atol=ATOL
  )


def test_restart_step_that_float64_keeps_in_the_old_cycle(optimization):
  # Step 6 of 10 with warmup 0.2 and 2 cycles is a restart in exact
  # arithmetic, but the original's float64 puts it at cycles * q =
  # 0.9999999999999999: the multiplier is ~0 there and restarts one step
  # later. float32 arithmetic would round it the other way.
  reference = _reference(optimization, HARD, 10, 0.2, 2)
  schedule = pretrained_bert_schedule(HARD, 1.0, 10, 0.2, cycles=2)
  expected = _expected(reference, [5, 6, 7])
  assert expected[1] < 1e-12
  np.testing.assert_allclose(
    _values(schedule, [5, 6, 7]), expected, rtol=RTOL, atol=ATOL
  )


@pytest.mark.parametrize("name", (HARD, WARM))
def test_whole_cycles_restart_at_t_total(optimization, name):
  # With whole cycles the last restart lands on t_total: the hard restarts
  # jump back to 1 there, the warmup restarts start again from 0.
  reference = _reference(optimization, name, 1000, 0.1, 3)
  schedule = pretrained_bert_schedule(name, 1.0, 1000, 0.1, cycles=3)
  expected = _expected(reference, [999, 1000, 1001])
  assert expected[1] == (1.0 if name == HARD else 0.0)
  np.testing.assert_allclose(
    _values(schedule, [999, 1000, 1001]), expected, rtol=RTOL, atol=ATOL
  )


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("warmup", (0.1, -1))
def test_t_total_minus_one_is_a_constant_learning_rate(
  optimization, name, warmup
):
  reference = _reference(optimization, name, -1, warmup)
  schedule = pretrained_bert_schedule(name, 3e-5, -1, warmup)
  steps = [0, 1, 5, 1000, 10**6]
  np.testing.assert_allclose(
    _values(schedule, steps), 3e-5 * _expected(reference, steps), rtol=RTOL
  )


def test_none_name_is_the_constant_schedule(optimization):
  reference = optimization.SCHEDULES[None](warmup=0.1, t_total=100)
  schedule = pretrained_bert_schedule(None, 2e-5, 100, 0.1)
  steps = [0, 5, 100, 130]
  np.testing.assert_allclose(
    _values(schedule, steps), 2e-5 * _expected(reference, steps), rtol=RTOL
  )


def test_names_are_the_originals(optimization):
  original = {k for k in optimization.SCHEDULES if isinstance(k, str)}
  assert set(PRETRAINED_BERT_SCHEDULES) == original | set(RESTART_CLASSES)
  for cls_name in RESTART_CLASSES.values():
    assert hasattr(optimization, cls_name)


def test_public_names():
  assert sorted(pretrained_bert.__all__) == [
    "PRETRAINED_BERT_SCHEDULES",
    "pretrained_bert_schedule",
  ]
  with pytest.raises(TypeError):
    PRETRAINED_BERT_SCHEDULES["mine"] = pretrained_bert.constant


def _progress(dtype):
  grid = np.linspace(0.0, 1.3, 391)
  marks = [0.002, 0.1, 0.2, 0.3, 0.5, 0.55, 0.9, 1.0]
  return np.concatenate([grid, marks]).astype(dtype)


def _function_configs(warmups, cycles_by_name):
  params = []
  for name in NAMES:
    for cycles in cycles_by_name.get(name, (None,)):
      for warmup in warmups:
        if _valid(name, warmup, cycles):
          params.append(
            pytest.param(name, warmup, cycles, id=f"{name}-w{warmup}-c{cycles}")
          )
  return params


def _float64_tie(reference, name, progress):
  """Whether ``progress`` is a restart of a restarting cosine before x = 1.

  There the original's float64 rounding, not arithmetic, decides between the
  end of one cycle (~0) and the start of the next (1); XLA computes divisions
  differently (by reciprocal), so the functions make their own choice. At
  ``x = 1`` they make the original's (see the test below).
  """
  if progress == 1.0:
    return False
  w = reference.warmup
  if name == HARD and progress >= w:
    y = reference.cycles * ((progress - w) / (1 - w))
  elif name == WARM and w == 0:
    y = progress * reference.cycles
  else:
    return False
  return y > 0.5 and abs(y - round(y)) < 1e-9


@pytest.mark.parametrize(
  "name,warmup,cycles", _function_configs((0, -1, 0.002, 0.2, 0.9), CYCLES)
)
def test_functions_match_get_lr_in_float64(optimization, name, warmup, cycles):
  reference = _reference(optimization, name, 100, warmup, cycles)
  kwargs = {} if cycles is None else {"cycles": cycles}
  progress = _progress(np.float64)
  with jax.enable_x64(True):
    got = np.asarray(
      PRETRAINED_BERT_SCHEDULES[name](progress, warmup, **kwargs)
    )
  assert got.dtype == np.float64
  expected = np.array([reference.get_lr_(float(p)) for p in progress])
  compared = [not _float64_tie(reference, name, p) for p in progress]
  np.testing.assert_allclose(
    got[compared], expected[compared], rtol=1e-12, atol=1e-13
  )


@pytest.mark.parametrize("name", (HARD, WARM))
@pytest.mark.parametrize("warmup", (0.0, 0.1))
@pytest.mark.parametrize("cycles", (1, 3))
def test_functions_restart_at_progress_one(optimization, name, warmup, cycles):
  reference = _reference(optimization, name, 100, warmup, cycles)
  f = PRETRAINED_BERT_SCHEDULES[name]
  assert f(np.float32(1.0), warmup, cycles) == reference.get_lr_(1.0)


@pytest.mark.parametrize(
  "name,warmup,cycles",
  _function_configs((0, -1, 0.002, 0.1, 0.3), dict.fromkeys(COSINES, (None,))),
)
def test_functions_in_float32(optimization, name, warmup, cycles):
  reference = _reference(optimization, name, 100, warmup, cycles)
  progress = _progress(np.float32)
  got = PRETRAINED_BERT_SCHEDULES[name](jnp.asarray(progress), warmup)
  assert got.dtype == jnp.float32
  expected = np.array([reference.get_lr_(float(p)) for p in progress])
  np.testing.assert_allclose(np.asarray(got), expected, rtol=RTOL, atol=ATOL)


def test_functions_take_warmup_as_the_classes_do():
  # warmup_cosine_with_warmup_restarts scales warmup by cycles: with warmup
  # 0.1 and 2 cycles each cycle warms up over 0.2 of its length.
  f = pretrained_bert.warmup_cosine_with_warmup_restarts
  np.testing.assert_allclose(f(0.55, 0.1, 2.0), 0.5, rtol=RTOL)
  np.testing.assert_allclose(
    pretrained_bert.warmup_linear(0.5, -1),
    pretrained_bert.warmup_linear(0.5, 0.0),
  )


# One configuration per schedule for the transformation tests.
SHOWCASE = {
  "none": (100, 0.1, None),
  "warmup_constant": (100, 0.1, None),
  "warmup_linear": (100, 0.1, None),
  "warmup_cosine": (100, 0.1, None),
  HARD: (100, 0.1, 2),
  WARM: (100, 0.1, 2),
}
COUNTS = np.array([0, 1, 9, 10, 11, 50, 55, 99, 100, 101, 130])


@pytest.mark.parametrize("name", NAMES)
def test_jit_and_vmap_over_counts(optimization, name):
  t_total, warmup, cycles = SHOWCASE[name]
  reference = _reference(optimization, name, t_total, warmup, cycles)
  schedule = pretrained_bert_schedule(
    name, 5e-5, t_total, warmup, cycles=cycles
  )
  expected = 5e-5 * _expected(reference, COUNTS)
  counts = jnp.asarray(COUNTS, jnp.int32)
  batched = jax.jit(jax.vmap(schedule))(counts)
  one_by_one = np.array([jax.jit(schedule)(c) for c in counts])
  np.testing.assert_allclose(
    np.asarray(batched), expected, rtol=RTOL, atol=5e-5 * ATOL
  )
  np.testing.assert_allclose(one_by_one, expected, rtol=RTOL, atol=5e-5 * ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_learning_rates(optimization, name):
  t_total, warmup, cycles = SHOWCASE[name]
  reference = _reference(optimization, name, t_total, warmup, cycles)
  learning_rates = jnp.asarray([0.0, 1e-5, 3e-4, 1.0])

  def at(learning_rate, count):
    return pretrained_bert_schedule(
      name, learning_rate, t_total, warmup, cycles=cycles
    )(count)

  batched = jax.jit(jax.vmap(at, in_axes=(0, None)))
  for count in (0, 10, 55, 130):
    got = batched(learning_rates, jnp.int32(count))
    expected = np.asarray(learning_rates) * _expected(reference, [count])
    np.testing.assert_allclose(np.asarray(got), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", NAMES)
def test_grad_with_respect_to_learning_rate(optimization, name):
  t_total, warmup, cycles = SHOWCASE[name]
  reference = _reference(optimization, name, t_total, warmup, cycles)

  def at(learning_rate, count):
    return pretrained_bert_schedule(
      name, learning_rate, t_total, warmup, cycles=cycles
    )(count)

  grad = jax.jit(jax.grad(at))
  for count in COUNTS:
    got = grad(jnp.float32(2e-5), jnp.int32(count))
    assert np.isfinite(got)
    np.testing.assert_allclose(
      got, _expected(reference, [count])[0], rtol=RTOL, atol=ATOL
    )


@pytest.mark.parametrize("name", NAMES)
def test_no_retrace_across_counts(optimization, name):
  t_total, warmup, cycles = SHOWCASE[name]
  reference = _reference(optimization, name, t_total, warmup, cycles)
  schedule = pretrained_bert_schedule(name, 1.0, t_total, warmup, cycles=cycles)
  # Trace counts are keyed by function id, which a collected schedule of an
  # earlier case may have left behind.
  chex.clear_trace_counter()
  traced = jax.jit(chex.assert_max_traces(schedule, n=1))
  counts = range(0, 131, 3)
  got = [traced(jnp.asarray(count, jnp.int32)) for count in counts]
  np.testing.assert_allclose(
    np.asarray(got), _expected(reference, counts), rtol=RTOL, atol=ATOL
  )


@pytest.mark.parametrize("x64", (False, True))
@pytest.mark.parametrize("name", NAMES)
def test_float32_with_and_without_x64(name, x64):
  t_total, warmup, cycles = SHOWCASE[name]
  with jax.enable_x64(x64):
    schedule = pretrained_bert_schedule(
      name, np.float64(1e-4), t_total, np.float64(warmup), cycles=cycles
    )
    count = jnp.asarray(42)
    jaxpr = jax.make_jaxpr(schedule)(count)
  assert jaxpr.out_avals[0].dtype == jnp.float32
  assert "f64" not in str(jaxpr)


@pytest.mark.parametrize(
  "kwargs,match,original_rejects",
  [
    (dict(name="warmup_linaer"), "name='warmup_linaer'.*'warmup_linear'", True),
    (dict(name="cosine"), "name='cosine'", True),
    (dict(learning_rate=-1e-4), r"learning_rate=-0\.0001", False),
    (dict(warmup=1.0), r"warmup=1\.0.*\[0\.0, 1\.0\) or -1", True),
    (dict(warmup=1.5), r"warmup=1\.5", True),
    (dict(warmup=-0.5), r"warmup=-0\.5", True),
    (dict(warmup=-2), "warmup=-2", True),
    (dict(t_total=0), "t_total=0.*or -1", False),
    (dict(t_total=-2), "t_total=-2", False),
    (dict(t_total=-0.5), r"t_total=-0\.5", False),
    (
      dict(name="warmup_cosine", cycles=0),
      r"cycles=0 is out of range.*\(0\.0, inf",
      False,
    ),
    (dict(name="warmup_cosine", cycles=-1.0), r"cycles=-1\.0", False),
    (dict(name=HARD, cycles=0.5), r"cycles=0\.5.*\[1\.0, inf", True),
    (dict(name=WARM, cycles=0.9), r"cycles=0\.9", True),
    (dict(name=WARM, warmup=0.5, cycles=2), r"warmup=0\.5, cycles=2", True),
    (dict(name=WARM, warmup=0.3, cycles=3.5), r"warmup \* cycles", True),
    (
      dict(name="warmup_linear", cycles=2.0),
      r"cycles=2\.0.*takes no cycles",
      False,
    ),
    (dict(warmup="0.1"), "warmup='0.1' is a string", False),
    (dict(t_total="1000"), "t_total='1000' is a string", False),
    (dict(t_total=100.5), r"t_total=100\.5 is not an integer", False),
  ],
)
def test_bad_arguments_raise(optimization, kwargs, match, original_rejects):
  args = dict(
    name="warmup_cosine",
    learning_rate=1e-4,
    t_total=100,
    warmup=0.1,
    cycles=None,
  )
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    pretrained_bert_schedule(**args)
  if original_rejects:
    with pytest.raises((ValueError, AssertionError, KeyError, AttributeError)):
      _reference(
        optimization,
        args["name"],
        args["t_total"],
        args["warmup"],
        args["cycles"],
      )


@pytest.mark.parametrize(
  "name,t_total,warmup,cycles",
  [
    ("warmup_linear", 1, 0.0, None),
    ("warmup_linear", 1, 0.999, None),
    ("warmup_constant", 5, -1, None),
    (HARD, 10, 0.1, 1),
    (WARM, 10, 0.49, 2),
    (WARM, 10, -1, 50),
    ("warmup_cosine", 10, 0.1, 1e-3),
  ],
)
def test_edge_arguments_accepted_as_the_original(
  optimization, name, t_total, warmup, cycles
):
  reference = _reference(optimization, name, t_total, warmup, cycles)
  schedule = pretrained_bert_schedule(name, 1.0, t_total, warmup, cycles=cycles)
  steps = np.arange(0, 2 * t_total + 1)
  np.testing.assert_allclose(
    _values(schedule, steps), _expected(reference, steps), rtol=RTOL, atol=ATOL
  )


def test_readme_snippet(optimization):
  # The README example, verbatim.
  import optax

  import bertadam_optax
  from bertadam_optax.schedules import pretrained_bert

  # pytorch-pretrained-bert 0.6.2:
  #   BertAdam(params, lr=5e-5, schedule=WarmupCosineWithHardRestartsSchedule(
  #       warmup=0.1, t_total=1000, cycles=2))
  multiplier = pretrained_bert.pretrained_bert_schedule(
    "warmup_cosine_with_hard_restarts",
    learning_rate=1.0,
    t_total=1000,
    warmup=0.1,
    cycles=2.0,
  )
  optimizer = bertadam_optax.bertadam(5e-5, schedule=multiplier)

  # The learning rate itself, for any Optax optimizer:
  schedule = pretrained_bert.pretrained_bert_schedule(
    "warmup_linear", learning_rate=5e-5, t_total=1000, warmup=0.1
  )
  adamw = optax.adamw(learning_rate=schedule, weight_decay=0.01)
  lr_at_550 = schedule(550)  # 2.5e-05, halfway down the linear decay

  # The multipliers as functions of progress = step / t_total:
  pretrained_bert.warmup_linear(0.55, warmup=0.1)  # 0.5
  # (end of README example)

  reference = _reference(optimization, "warmup_linear", 1000, 0.1)
  np.testing.assert_allclose(lr_at_550, 5e-5 * reference.get_lr(550), rtol=RTOL)
  np.testing.assert_allclose(
    pretrained_bert.warmup_linear(0.55, warmup=0.1),
    reference.get_lr_(0.55),
    rtol=RTOL,
  )
  params = {"w": jnp.ones(3)}
  for opt in (optimizer, adamw):
    updates, _ = opt.update(params, opt.init(params), params)
    np.testing.assert_allclose(updates["w"], 0.0)  # step 0: warmup from 0
  np.testing.assert_allclose(
    multiplier(550),
    _expected(_reference(optimization, HARD, 1000, 0.1, 2.0), [550])[0],
    rtol=RTOL,
    atol=ATOL,
  )


_CLASSES = {
  "warmup_constant": "WarmupConstantSchedule",
  "warmup_linear": "WarmupLinearSchedule",
  "warmup_cosine": "WarmupCosineSchedule",
  HARD: "WarmupCosineWithHardRestartsSchedule",
  WARM: "WarmupCosineWithWarmupRestartsSchedule",
}


def _progress_boundaries(name, warmup, cycles):
  """The float32 progress values where a branch or cycle changes, +-1 ulp."""
  w = max(warmup, 0.0)
  points = [0.0, w, 1.0, 1.001, 1.5, 2.0, 2.8]
  if name == HARD:
    points += [w + k * (1 - w) / cycles for k in range(1, 3 * int(cycles) + 1)]
  if name == WARM:
    points += [(k + w * cycles) / cycles for k in range(3 * int(cycles))]
    points += [k / cycles for k in range(1, 3 * int(cycles))]
  values = set()
  for p in points:
    p32 = np.float32(p)
    values.update(
      [p32, np.nextafter(p32, np.float32(-1)), np.nextafter(p32, np.float32(3))]
    )
  return np.asarray(sorted(v for v in values if v >= 0), np.float32)


_BOUNDARY_CASES = [
  (name, warmup, cycles)
  for name in _CLASSES
  for warmup in (0.1, 0.2, 0.25, 1 / 3, 0.002, 0.0, -1)
  for cycles in ((None, 1.0, 2.0, 3.0) if name in (HARD, WARM) else (None,))
  if name != WARM or max(warmup, 0) * (cycles or 1.0) < 1
]


@pytest.mark.parametrize("name,warmup,cycles", _BOUNDARY_CASES)
def test_progress_functions_match_original_at_boundaries_eager_and_jit(
  optimization, name, warmup, cycles
):
  # The progress functions take a float32 progress; the original computes in
  # float64 from the same value. At x = w, x = 1, just past it and at every
  # restart, eager and jit must both land on the original's side (under jit,
  # (x - w) / (1 - w) once wrapped x = w to a phase of ~1, i.e. 2e-15).
  kwargs = {} if cycles is None else {"cycles": cycles}
  c = cycles or 1.0
  reference = getattr(optimization, _CLASSES[name])(
    warmup=warmup, t_total=100, **kwargs
  )
  function = getattr(pretrained_bert, name)
  xs = _progress_boundaries(name, warmup, c)
  expected = np.asarray([reference.get_lr_(float(x)) for x in xs])
  eager = np.asarray(
    [float(function(jnp.float32(x), warmup, **kwargs)) for x in xs]
  )
  jitted = np.asarray(
    jax.jit(lambda x: function(x, warmup, **kwargs))(jnp.asarray(xs))
  )
  np.testing.assert_allclose(eager, expected, atol=2e-6, rtol=0)
  np.testing.assert_allclose(jitted, expected, atol=2e-6, rtol=0)


def test_docstring_examples_run():
  # The Examples: sections are the documentation users copy; they must run.
  module = importlib.import_module("bertadam_optax.schedules.pretrained_bert")
  results = doctest.testmod(
    module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  )
  assert results.attempted > 0
  assert results.failed == 0
