"""Reliability of every schedule: bad input refused, no bad value at any step.

Three parts:

* every registry schedule, jitted, gives a finite, non-negative learning rate
  at every step of ``0 .. 10 * t_total`` and next to ``2**31 - 1``;
* a generated matrix of bad values for every argument of every schedule
  factory (from its signature): each must raise a ``ValueError`` that names
  the argument and shows the value;
* ``hypothesis`` properties: at random boundaries (step 0, the warmup edge
  +-1, ``t_total`` +-1, past the end) eager == jit == the installed original
  (pytorch-pretrained-bert 0.6.2, transformers) or, for DeepSpeedExamples'
  bing_bert (not installable), an independent float64 NumPy formula.
"""

from __future__ import annotations

import inspect
import logging
import math
import os

import hypothesis
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import strategies as st

from bertadam_optax.schedules import bing_bert
from bertadam_optax.schedules import deepspeed_runtime
from bertadam_optax.schedules import pretrained_bert
from bertadam_optax.schedules import registry
from bertadam_optax.schedules import transformers as jax_transformers
from tests.references import require

INT32_MAX = 2**31 - 1
LR, T = 1e-3, 200
OPTIONS = dict(
  lr=LR, t_total=T, warmup=0.1, min_lr=1e-5, decay_rate=0.5, decay_steps=40
)

# ----------------------------------------------------------------------------
# Every schedule, every step: finite and non-negative, under jit.
# ----------------------------------------------------------------------------

STEPS = np.concatenate(
  [
    np.arange(0, 10 * T + 1),
    [2**24 - 1, 2**24, 2**24 + 1, 2**30, INT32_MAX - 1, INT32_MAX],
  ]
).astype(np.int32)


@pytest.mark.parametrize("name", tuple(registry.SCHEDULE_REGISTRY))
def test_learning_rate_finite_and_non_negative_everywhere(name):
  schedule = registry.make_schedule(name, **OPTIONS)
  values = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(STEPS)))
  assert values.dtype == np.float32
  bad = ~np.isfinite(values) | (values < 0)
  assert not bad.any(), (name, STEPS[bad][:5], values[bad][:5])


# ----------------------------------------------------------------------------
# Bad values for every argument of every factory.
# ----------------------------------------------------------------------------

_NOT_FINITE = [
  math.nan,
  math.inf,
  -math.inf,
  np.float32(math.nan),
  np.asarray(math.inf),
]
_NOT_NUMBERS = ["1", True, np.bool_(False), [1.0]]
_NEGATIVE = [-1.0, -1e30, np.float32(-1.0), np.asarray(-1.0)]

# For each kind of argument, the values it must refuse.
BAD_VALUES = {
  # >= 0, no upper bound (learning rates, floors, rates, exponents).
  "non_negative": _NEGATIVE + _NOT_FINITE + _NOT_NUMBERS,
  # > 0.
  "positive": _NEGATIVE
  + [0, 0.0, np.float32(0.0)]
  + _NOT_FINITE
  + _NOT_NUMBERS,
  # [0, 1].
  "unit": _NEGATIVE + [1.5, 1e30, np.float32(1.5)] + _NOT_FINITE + _NOT_NUMBERS,
  # [0, 1) or -1 (the originals' "no warmup").
  "fraction": [-0.5, -2.0, 1.0, 1e30, np.float32(-0.5), np.asarray(1.0)]
  + _NOT_FINITE
  + _NOT_NUMBERS,
  # cycles of the restarting cosines: >= 1.
  "cycles": _NEGATIVE + [0, 0.5, np.float32(0.5)] + _NOT_FINITE + _NOT_NUMBERS,
  # Step counts: integers in [0, 2**31 - 1].
  "steps": [-1, 1.5, 2**31, 1e30, np.int64(-1), np.asarray(-1), np.float32(1.5)]
  + _NOT_FINITE
  + _NOT_NUMBERS,
  # Step counts >= 1.
  "steps1": [
    0,
    -1,
    1.5,
    2**31,
    1e30,
    np.int64(0),
    np.asarray(0),
    np.float32(1.5),
  ]
  + _NOT_FINITE
  + _NOT_NUMBERS,
  # pytorch-pretrained-bert's t_total: >= 1 or -1.
  "t_total_or_off": [0, -2, 1.5, 2**31, np.int64(0), np.asarray(-2)]
  + _NOT_FINITE
  + _NOT_NUMBERS,
  # Integers of any sign (stair counts: <= 0 means none).
  "signed_steps": [1.5, 2**31, -(2**31) - 1, np.float32(1.5)]
  + _NOT_FINITE
  + _NOT_NUMBERS,
  "choice": ["nope", 1, None],
  "flag": ["true", 1, None, np.float32(1.0)],
  "mapping": ["x", 1, [1]],
}

# Each argument's kind, by name (the same name means the same thing in every
# family). A new argument without a kind fails test_every_argument_has_a_kind.
KINDS = {
  "learning_rate": "non_negative",
  "lr": "non_negative",
  "peak_lr": "non_negative",
  "min_lr": "non_negative",
  "lr_end": "non_negative",
  "power": "non_negative",
  "decay_rate": "non_negative",
  "degree": "non_negative",
  "warm_degree": "non_negative",
  "lr_offset": "non_negative",
  "warmup_min_lr": "non_negative",
  "warmup_max_lr": "non_negative",
  "warmup_min_ratio": "non_negative",
  "cos_min_ratio": "non_negative",
  "cycle_min_lr": "non_negative",
  "cycle_max_lr": "non_negative",
  "decay_lr_rate": "non_negative",
  "decay_mom_rate": "non_negative",
  "lr_range_test_min_lr": "non_negative",
  "lr_range_test_step_rate": "non_negative",
  "num_cycles": "positive",
  "timescale": "positive",
  "min_lr_rate": "unit",
  "warmup_lr_rate": "unit",
  "min_lr_ratio": "unit",
  "cycle_min_mom": "unit",
  "cycle_max_mom": "unit",
  "warmup": "fraction",
  "cycles": "cycles",
  "num_warmup_steps": "steps",
  "warmup_steps": "steps",
  "num_decay_steps": "steps",
  "num_stable_steps": "steps",
  "decay_steps": "steps",
  "total_num_steps": "steps",
  "cycle_second_step_size": "steps",
  "decay_step_size": "steps",
  "t_total": "steps1",
  "num_training_steps": "steps1",
  "total_steps": "steps1",
  "warmup_num_steps": "steps1",
  "cycle_first_step_size": "steps1",
  "lr_range_test_step_size": "steps1",
  "cycle_first_stair_count": "signed_steps",
  "cycle_second_stair_count": "signed_steps",
  "name": "choice",
  "type": "choice",
  "warmup_type": "choice",
  "decay_type": "choice",
  "lr_range_test_staircase": "flag",
  "params": "mapping",
}

# (label, factory, valid keyword arguments). Every argument of the factory is
# tried bad in turn, the others kept valid.
FACTORIES = [
  (
    "bert_schedule",
    bing_bert.bert_schedule,
    dict(
      name="warmup_exp_decay_exp",
      learning_rate=LR,
      t_total=T,
      warmup=0.1,
      decay_rate=0.5,
      decay_steps=10,
      degree=2.0,
    ),
  ),
  (
    "bert_schedule[poly]",
    bing_bert.bert_schedule,
    dict(
      name="warmup_exp_decay_poly",
      learning_rate=LR,
      t_total=T,
      warmup=0.1,
      warm_degree=1.5,
    ),
  ),
  (
    "pretrained_bert_schedule",
    pretrained_bert.pretrained_bert_schedule,
    dict(
      name="warmup_cosine_with_hard_restarts",
      learning_rate=LR,
      t_total=T,
      warmup=0.1,
      cycles=2.0,
    ),
  ),
  (
    "get_schedule",
    jax_transformers.get_schedule,
    dict(
      name="linear", learning_rate=LR, num_warmup_steps=10, num_training_steps=T
    ),
  ),
  (
    "constant_schedule",
    jax_transformers.constant_schedule,
    dict(learning_rate=LR),
  ),
  (
    "constant_schedule_with_warmup",
    jax_transformers.constant_schedule_with_warmup,
    dict(learning_rate=LR, num_warmup_steps=10),
  ),
  (
    "linear_schedule_with_warmup",
    jax_transformers.linear_schedule_with_warmup,
    dict(learning_rate=LR, num_warmup_steps=10, num_training_steps=T),
  ),
  (
    "cosine_schedule_with_warmup",
    jax_transformers.cosine_schedule_with_warmup,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_training_steps=T,
      num_cycles=0.5,
    ),
  ),
  (
    "cosine_with_hard_restarts_schedule_with_warmup",
    jax_transformers.cosine_with_hard_restarts_schedule_with_warmup,
    dict(
      learning_rate=LR, num_warmup_steps=10, num_training_steps=T, num_cycles=2
    ),
  ),
  (
    "cosine_with_min_lr_schedule_with_warmup",
    jax_transformers.cosine_with_min_lr_schedule_with_warmup,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_training_steps=T,
      num_cycles=0.5,
      min_lr=1e-5,
    ),
  ),
  (
    "cosine_with_min_lr_schedule_with_warmup[rate]",
    jax_transformers.cosine_with_min_lr_schedule_with_warmup,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_training_steps=T,
      min_lr_rate=0.1,
    ),
  ),
  (
    "cosine_with_min_lr_schedule_with_warmup_lr_rate",
    jax_transformers.cosine_with_min_lr_schedule_with_warmup_lr_rate,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_training_steps=T,
      min_lr_rate=0.1,
      warmup_lr_rate=0.1,
    ),
  ),
  (
    "polynomial_decay_schedule_with_warmup",
    jax_transformers.polynomial_decay_schedule_with_warmup,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_training_steps=T,
      lr_end=1e-7,
      power=2.0,
    ),
  ),
  (
    "inverse_sqrt_schedule",
    jax_transformers.inverse_sqrt_schedule,
    dict(learning_rate=LR, num_warmup_steps=10, timescale=10.0),
  ),
  (
    "wsd_schedule",
    jax_transformers.wsd_schedule,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_decay_steps=20,
      num_training_steps=T,
      warmup_type="linear",
      decay_type="cosine",
      min_lr_ratio=0.1,
      num_cycles=0.5,
    ),
  ),
  (
    "wsd_schedule[stable]",
    jax_transformers.wsd_schedule,
    dict(
      learning_rate=LR,
      num_warmup_steps=10,
      num_decay_steps=20,
      num_stable_steps=170,
    ),
  ),
  (
    "linear_warmup_cosine_decay",
    jax_transformers.linear_warmup_cosine_decay,
    dict(peak_lr=LR, warmup_steps=10, total_steps=T, min_lr=1e-5),
  ),
  (
    "warmup_lr",
    deepspeed_runtime.warmup_lr,
    dict(
      warmup_min_lr=0.0,
      warmup_max_lr=LR,
      warmup_num_steps=10,
      warmup_type="linear",
    ),
  ),
  (
    "warmup_lr[learning_rate]",
    deepspeed_runtime.warmup_lr,
    dict(warmup_num_steps=10, learning_rate=LR),
  ),
  (
    "warmup_decay_lr",
    deepspeed_runtime.warmup_decay_lr,
    dict(
      total_num_steps=T,
      warmup_min_lr=0.0,
      warmup_max_lr=LR,
      warmup_num_steps=10,
      warmup_type="log",
    ),
  ),
  (
    "warmup_cosine_lr",
    deepspeed_runtime.warmup_cosine_lr,
    dict(
      total_num_steps=T,
      warmup_min_ratio=0.0,
      warmup_num_steps=10,
      cos_min_ratio=1e-4,
      warmup_type="log",
      learning_rate=LR,
    ),
  ),
  (
    "one_cycle",
    deepspeed_runtime.one_cycle,
    dict(
      cycle_min_lr=1e-5,
      cycle_max_lr=LR,
      decay_lr_rate=0.1,
      cycle_first_step_size=10,
      cycle_second_step_size=20,
      cycle_first_stair_count=2,
      cycle_second_stair_count=2,
      decay_step_size=5,
    ),
  ),
  (
    "one_cycle_momentum",
    deepspeed_runtime.one_cycle_momentum,
    dict(
      cycle_min_mom=0.8,
      cycle_max_mom=0.9,
      decay_mom_rate=0.1,
      cycle_first_step_size=10,
      cycle_second_step_size=20,
      cycle_first_stair_count=2,
      cycle_second_stair_count=2,
      decay_step_size=5,
    ),
  ),
  (
    "lr_range_test",
    deepspeed_runtime.lr_range_test,
    dict(
      lr_range_test_min_lr=LR,
      lr_range_test_step_size=10,
      lr_range_test_step_rate=1.0,
      lr_range_test_staircase=True,
    ),
  ),
  (
    "deepspeed_schedule",
    deepspeed_runtime.deepspeed_schedule,
    dict(type="WarmupDecayLR", params={"total_num_steps": T}, learning_rate=LR),
  ),
  (
    "make_schedule",
    registry.make_schedule,
    dict(name="transformers.cosine_with_min_lr", **OPTIONS),
  ),
  (
    "make_schedule[steps]",
    registry.make_schedule,
    dict(
      name="warmup_linear_decay_exp",
      lr=LR,
      t_total=T,
      warmup_steps=10,
      decay_rate=0.5,
      decay_steps=40,
    ),
  ),
]

# How an argument is named in the message where it is not its own name.
LABELS = {
  ("make_schedule", "name"): "schedule",
  ("make_schedule[steps]", "name"): "schedule",
  ("deepspeed_schedule", "type"): "scheduler type",
  ("deepspeed_schedule", "params"): "WarmupDecayLR params",
}

# Arguments whose kind differs from the name's usual one.
KIND_OVERRIDES = {
  ("pretrained_bert_schedule", "t_total"): "t_total_or_off",
  # WarmupDecayLR/WarmupCosineLR decay over total_num_steps >= 0 steps.
  ("cosine_schedule_with_warmup", "num_cycles"): "positive",
  # bing_bert's decay period is a positive number, not a step count.
  ("bert_schedule", "decay_steps"): "positive",
  # With num_stable_steps given, num_training_steps only cross-checks it.
  ("wsd_schedule[stable]", "num_training_steps"): "steps",
}

# Arguments where None means something (not given, the default).
NONE_MEANS_DEFAULT = {
  ("pretrained_bert_schedule", "name"),  # None is "none", as in BertAdam
  ("deepspeed_schedule", "params"),  # no params: DeepSpeed's defaults
}


def _tried_arguments(label, factory, base):
  """The arguments tried bad: those of the signature set in ``base``, and the
  ones the factory reads with a default (except ``**kwargs``)."""
  params = inspect.signature(factory).parameters
  for arg, param in params.items():
    if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
      continue
    if arg not in base and param.default is param.empty:
      continue
    yield arg, param


def _cases():
  cases = []
  for label, factory, base in FACTORIES:
    for arg, param in _tried_arguments(label, factory, base):
      kind = KIND_OVERRIDES.get((label, arg), KINDS.get(arg))
      if kind is None:
        cases.append(
          pytest.param(
            label, factory, base, arg, None, id=f"{label}-{arg}-UNCLASSIFIED"
          )
        )
        continue
      values = list(BAD_VALUES[kind])
      # None is a value only where the argument has no default, or a default
      # other than None (a None default means "not given").
      if (param.default is param.empty or param.default is not None) and (
        None not in values
      ):
        values.append(None)
      if (label, arg) in NONE_MEANS_DEFAULT:
        values = [v for v in values if v is not None]
      if arg in ("warmup_steps",) and label.startswith("make_schedule"):
        values = [v for v in values if v is not None]
      for i, value in enumerate(values):
        cases.append(
          pytest.param(
            label,
            factory,
            base,
            arg,
            value,
            id=f"{label}-{arg}-{i}-{value!r}"[:90],
          )
        )
  return cases


BAD_CASES = _cases()


def test_every_argument_has_a_kind():
  unclassified = [
    c.id
    for c in BAD_CASES
    if c.values[4] is None and c.id.endswith("UNCLASSIFIED")
  ]
  assert not unclassified


def _shown(value, message):
  """Whether the message shows ``value``: its repr, or (for a step count
  read as an integer) the number it was read as."""
  number = (
    value.item() if isinstance(value, (np.ndarray, np.generic)) else (value)
  )
  shown = {repr(value), repr(number)}
  if isinstance(number, float) and number.is_integer():
    shown.add(repr(int(number)))
  return any(s in message for s in shown)


@pytest.mark.parametrize(
  "label,factory,base,arg,value",
  [c for c in BAD_CASES if not c.id.endswith("UNCLASSIFIED")],
)
def test_bad_value_is_refused_naming_argument_and_value(
  label, factory, base, arg, value
):
  kwargs = dict(base, **{arg: value})
  if label.startswith("make_schedule") and arg == "warmup":
    kwargs.pop("warmup_steps", None)
  with pytest.raises(ValueError) as e:
    factory(**kwargs)
  message = str(e.value)
  name = LABELS.get((label, arg), arg)
  assert f"{name}=" in message or f"[{name!r}]" in message, message
  assert _shown(value, message), message


# ----------------------------------------------------------------------------
# hypothesis: eager == jit == the original at random boundaries.
# ----------------------------------------------------------------------------

# BERTADAM_HYPOTHESIS_EXAMPLES raises the count for a longer search.
SETTINGS = hypothesis.settings(
  max_examples=int(os.environ.get("BERTADAM_HYPOTHESIS_EXAMPLES", "40")),
  deadline=None,
  suppress_health_check=list(hypothesis.HealthCheck),
)


def _eager_and_jit(schedule, steps):
  steps = jnp.asarray(np.asarray(steps, np.int32))
  eager = np.asarray(schedule(steps), np.float64)
  jitted = np.asarray(jax.jit(schedule)(steps), np.float64)
  return eager, jitted


def _boundary_steps(total, warmup_end, extra):
  steps = {0, 1, total - 1, total, total + 1, 2 * total, extra}
  steps |= {warmup_end - 1, warmup_end, warmup_end + 1}
  return sorted(s for s in steps if 0 <= s <= INT32_MAX)


@pytest.fixture(scope="module")
def optimization():
  require("torch")
  module = require("pytorch_pretrained_bert").optimization
  logging.getLogger(module.__name__).setLevel(logging.ERROR)
  return module


_PB_CLASSES = {
  "warmup_constant": "WarmupConstantSchedule",
  "warmup_linear": "WarmupLinearSchedule",
  "warmup_cosine": "WarmupCosineSchedule",
  "warmup_cosine_with_hard_restarts": "WarmupCosineWithHardRestartsSchedule",
  "warmup_cosine_with_warmup_restarts": "WarmupCosineWithWarmupRestartsSchedule",
}


@SETTINGS
@hypothesis.given(
  name=st.sampled_from(sorted(_PB_CLASSES)),
  total=st.integers(1, 100_000),
  warmup=st.one_of(
    st.just(-1.0), st.just(0.0), st.floats(0.0, 0.9, exclude_max=True)
  ),
  cycles=st.sampled_from([1.0, 2.0, 3.0]),
  extra=st.integers(0, 2**24),
)
def test_pretrained_bert_eager_jit_original(
  optimization, name, total, warmup, cycles, extra
):
  kwargs = {"cycles": cycles} if "restarts" in name else {}
  hypothesis.assume(
    name != "warmup_cosine_with_warmup_restarts" or max(warmup, 0) * cycles < 1
  )
  reference = getattr(optimization, _PB_CLASSES[name])(
    warmup=warmup, t_total=total, **kwargs
  )
  schedule = pretrained_bert.pretrained_bert_schedule(
    name, 1.0, total, warmup, **kwargs
  )
  end = math.ceil(max(warmup, 0) * total)
  steps = _boundary_steps(total, end, min(extra, 4 * total))
  eager, jitted = _eager_and_jit(schedule, steps)
  expected = np.asarray([reference.get_lr(s, nowarn=True) for s in steps])
  np.testing.assert_allclose(eager, expected, atol=3e-6, rtol=0)
  np.testing.assert_allclose(jitted, expected, atol=3e-6, rtol=0)


@SETTINGS
@hypothesis.given(
  name=st.sampled_from(
    [
      "linear",
      "cosine",
      "cosine_with_restarts",
      "polynomial",
      "constant_with_warmup",
      "inverse_sqrt",
    ]
  ),
  total=st.integers(1, 50_000),
  warmup_fraction=st.floats(0.0, 1.0),
  extra=st.integers(0, 200_000),
)
def test_transformers_eager_jit_original(name, total, warmup_fraction, extra):
  torch = require("torch")
  transformers = require("transformers")
  warmup = int(warmup_fraction * total)
  if name == "polynomial":
    warmup = min(warmup, total - 1)
  hypothesis.assume(warmup >= 0)
  optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(()))], lr=LR)
  scheduler = transformers.get_scheduler(
    name, optimizer, num_warmup_steps=warmup, num_training_steps=total
  )
  lr_lambda = scheduler.lr_lambdas[0]
  schedule = jax_transformers.get_schedule(name, LR, warmup, total)
  steps = _boundary_steps(total, warmup, extra)
  eager, jitted = _eager_and_jit(schedule, steps)
  expected = np.asarray([LR * lr_lambda(s) for s in steps])
  np.testing.assert_allclose(eager, expected, atol=3e-6 * LR, rtol=1e-5)
  np.testing.assert_allclose(jitted, expected, atol=3e-6 * LR, rtol=1e-5)


def _bing_bert_float64(name, steps, total, warmup, degree=2.0, warm_degree=1.5):
  """DeepSpeedExamples' bing_bert formulas in float64, progress held at 1
  past t_total as bert_schedule documents."""
  out = []
  for s in steps:
    x = min(s / total, 1.0) if name != "warmup_constant" else s / total
    in_warmup = s / total < warmup
    if name == "warmup_cosine":
      v = x / warmup if in_warmup else 0.5 * (1 + math.cos(math.pi * x))
    elif name == "warmup_constant":
      v = x / warmup if in_warmup else 1.0
    elif name == "warmup_linear":
      v = 1.0 if warmup == 0 else (x / warmup if in_warmup else 1.0 - x)
    else:
      v = (x / warmup) ** warm_degree if in_warmup else (1.0 - x) ** degree
    out.append(v)
  return np.asarray(out)


@SETTINGS
@hypothesis.given(
  name=st.sampled_from(
    [
      "warmup_cosine",
      "warmup_constant",
      "warmup_linear",
      "warmup_exp_decay_poly",
    ]
  ),
  total=st.integers(1, 100_000),
  warmup=st.one_of(st.just(0.0), st.floats(0.0, 0.9, exclude_max=True)),
  extra=st.integers(0, 2**24),
)
def test_bing_bert_eager_jit_float64_formula(name, total, warmup, extra):
  hypothesis.assume(name == "warmup_linear" or warmup > 0)
  schedule = bing_bert.bert_schedule(name, 1.0, total, warmup)
  end = math.ceil(warmup * total)
  steps = _boundary_steps(total, end, min(extra, 4 * total))
  eager, jitted = _eager_and_jit(schedule, steps)
  expected = _bing_bert_float64(name, steps, total, warmup)
  np.testing.assert_allclose(eager, expected, atol=3e-6, rtol=0)
  np.testing.assert_allclose(jitted, expected, atol=3e-6, rtol=0)
