r"""The six BertAdam schedules of DeepSpeed's bing_bert, as pure JAX functions.

Holds the schedule functions, :func:`bert_schedule` (one of them as an Optax
schedule, what ``bertadam(schedule=...)`` applies) and ``ENTRIES``, their rows
of the schedule registry (family ``deepspeed``, bare names).

Reproduces the schedule functions of DeepSpeedExamples
``training/bing_bert/pytorch_pretrained_bert/optimization.py`` (the fork of
pytorch-pretrained-bert that DeepSpeed's BERT pretraining runs with), with the
same names, signatures and defaults:

==========================  ==================================================
name                        multiplier (``x`` = progress in [0, 1])
==========================  ==================================================
``warmup_cosine``           ``x/w`` if ``x < w`` else ``0.5 (1 + cos(pi x))``
``warmup_constant``         ``x/w`` if ``x < w`` else ``1``
``warmup_linear``           ``1`` if ``w == 0``; ``x/w`` if ``x < w``;
                            else ``1 - x``
``warmup_linear_decay_exp`` ``1`` if ``w == 0``; ``x/w`` if ``x < w``; else
                            ``r ** ((s - w T) / d)``
``warmup_exp_decay_exp``    as above, warmup part ``(x/w) ** degree``
``warmup_exp_decay_poly``   ``(x/w) ** warm_degree`` if ``x < w`` else
                            ``(1 - x) ** degree``
==========================  ==================================================

The multiplier functions are the exact formulas, quirks included (the cosine
runs over the whole of ``x``, not from the end of warmup; ``warmup_linear``
with ``warmup=0`` is a constant; past ``x = 1`` the linear and polynomial decays
go negative or rise again). :func:`bert_schedule` turns one of them into an
Optax schedule and is where the safety lives: it holds progress at 1 past
``t_total``.

Every function accepts Python numbers, arrays or tracers, branches with
``jnp.where`` only, and so works under ``jax.jit``, ``jax.vmap`` and
``jax.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _common
from bertadam_optax.schedules import _join
from bertadam_optax.schedules import _table

__all__ = [
  "SCHEDULES",
  "STEP_BASED",
  "X_BASED",
  "bert_schedule",
  "warmup_constant",
  "warmup_cosine",
  "warmup_exp_decay_exp",
  "warmup_exp_decay_poly",
  "warmup_linear",
  "warmup_linear_decay_exp",
]


def _ramp(x, warmup):
  """``x / warmup``, with a denominator that is never 0 in the unused branch.

  ``jnp.where`` evaluates both branches; dividing by a zero warmup there would
  put a NaN into gradients even though the value is never selected.
  """
  if isinstance(warmup, (int, float)):
    # A static warmup stays a weak-typed Python scalar (no float64 constant).
    return x / (max(warmup, _common.FLOAT32_TINY) if warmup != 0 else 1.0)
  return x / jnp.where(
    warmup == 0, 1.0, jnp.maximum(warmup, _common.FLOAT32_TINY)
  )


def _half_cosine(one_minus_x):
  # 0.5 * (1 + cos(pi x)) == sin(pi (1 - x) / 2) ** 2. The right-hand side has
  # no cancellation near x = 1, where the decay ends and float32 matters most.
  return jnp.square(jnp.sin(0.5 * math.pi * one_minus_x))


def _formula(
  name,
  warmup_edge,
  step,
  total,
  warmup,
  *,
  decay_rate=None,
  decay_steps=None,
  degree=2.0,
  warm_degree=1.5,
):
  """The multiplier of schedule ``name`` at ``step`` of ``total``.

  ``warmup_edge = (position, end)`` says where warmup ends, as the caller
  decides it: ``x < warmup`` for the raw functions, an integer threshold for
  :func:`bert_schedule` (see ``_common``). The progress-based schedules pass
  ``step=x, total=1``.
  """
  position, end = warmup_edge

  def warmup_then(ramp, after):
    return _join.warmup_then(position, end, ramp, after)

  x = step / total
  # 1 - x from the counts: exact in float32 near the end of the decay.
  one_minus_x = (total - step) / total
  ramp = _ramp(x, warmup)
  if name == "warmup_cosine":
    return warmup_then(ramp, _half_cosine(one_minus_x))
  if name == "warmup_constant":
    return warmup_then(ramp, jnp.ones_like(x))
  if name == "warmup_exp_decay_poly":
    return warmup_then(ramp**warm_degree, one_minus_x**degree)
  if name == "warmup_linear":
    value = warmup_then(ramp, one_minus_x)
  else:
    if name == "warmup_exp_decay_exp":
      ramp = ramp**degree
    if (
      decay_rate is not None
      and decay_steps is not None
      and _validation.is_number(decay_rate)
      and _validation.is_number(decay_steps)
      and decay_rate > 0
    ):
      # r ** e from a float64 log: powering the float32-rounded rate loses
      # ~e * 6e-8 relative (2e-6 at bing_bert's exponents of ~100s).
      log_rate_per_step = math.log(decay_rate) / decay_steps
      decay = jnp.exp((step - warmup * total) * log_rate_per_step)
    else:
      decay = decay_rate ** ((step - warmup * total) / decay_steps)
    value = warmup_then(ramp, decay)
  # The original's ``warmup == 0``: a constant multiplier of 1.
  return jnp.where(warmup == 0, jnp.ones_like(value), value)


def _x_based(name, x, warmup):
  x = jnp.asarray(x)
  return _formula(name, (x, warmup), x, 1.0, warmup)


def _step_based(name, global_step, total_steps, warmup, **kwargs):
  global_step = jnp.asarray(global_step)
  return _formula(
    name,
    (global_step / total_steps, warmup),
    global_step,
    total_steps,
    warmup,
    **kwargs,
  )


def warmup_cosine(x, warmup=0.002):
  r"""Linear warmup, then a half cosine over the *whole* run.

  .. math::
    f(x) = \begin{cases} x / w & x < w \\
           \tfrac12 (1 + \cos \pi x) & \text{otherwise} \end{cases}

  The cosine is a function of ``x``, not of the progress after warmup, so the
  multiplier drops below 1 right at the end of warmup (a DeepSpeed quirk,
  reproduced).

  In one line: ``lr * (x/w if x < w else 0.5 (1 + cos(pi x)))``.

  Args:
    x: progress ``step / t_total``.
    warmup: warmup fraction of ``t_total``.

  Returns:
    The learning-rate multiplier.

  Examples:
    >>> from bertadam_optax.schedules import warmup_cosine
    >>> # Below 1 right after warmup: 0.5 (1 + cos(0.1 pi)) at x = 0.1.
    >>> [round(float(warmup_cosine(x, warmup=0.1)), 6)
    ...  for x in (0.05, 0.1, 0.5, 1.0)]
    [0.5, 0.975528, 0.5, 0.0]

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``.
  """
  return _x_based("warmup_cosine", x, warmup)


def warmup_constant(x, warmup=0.002):
  r"""Linear warmup, then constant: ``x / w`` if ``x < w`` else ``1``.

  In one line: ``lr * (x/w if x < w else 1)``.

  Examples:
    >>> from bertadam_optax.schedules import warmup_constant
    >>> [round(float(warmup_constant(x, warmup=0.1)), 6)
    ...  for x in (0.05, 0.1, 2.0)]
    [0.5, 1.0, 1.0]

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``.
  """
  return _x_based("warmup_constant", x, warmup)


def warmup_linear(x, warmup=0.002):
  r"""Linear warmup, then ``1 - x``.

  .. math::
    f(x) = \begin{cases} 1 & w = 0 \\ x / w & x < w \\
           1 - x & \text{otherwise} \end{cases}

  ``warmup=0`` means a *constant* multiplier of 1, not a linear decay, and the
  multiplier jumps from ``~1`` to ``1 - w`` at the end of warmup; both are the
  original's behaviour, reproduced. With ``warmup=-1`` (BertAdam's default)
  ``x < -1`` is never true and the multiplier is ``1 - x`` from the start.

  In one line: ``lr * (x/w if x < w else 1 - x); w = 0: lr``.

  Examples:
    >>> from bertadam_optax.schedules import warmup_linear
    >>> # The jump from 0.99 to 0.9 at x = w, and 1 - x < 0 past x = 1.
    >>> [round(float(warmup_linear(x, warmup=0.1)), 6)
    ...  for x in (0.05, 0.099, 0.1, 1.0, 1.5)]
    [0.5, 0.99, 0.9, 0.0, -0.5]
    >>> float(warmup_linear(0.5, warmup=0.0))
    1.0

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``.
  """
  return _x_based("warmup_linear", x, warmup)


def warmup_linear_decay_exp(
  global_step, decay_rate, decay_steps, total_steps, warmup=0.002
):
  r"""Linear warmup, then exponential decay from the end of warmup.

  With ``x = s / T`` and the warmup ending at step ``w T``:

  .. math::
    f(s) = \begin{cases} 1 & w = 0 \\ x / w & x < w \\
           r^{(s - w T) / d} & \text{otherwise} \end{cases}

  In one line:
  ``lr * (x/w if x < w else decay_rate ** ((s - w T) / decay_steps))``.

  Args:
    global_step: step count ``s``.
    decay_rate: ``r``, the factor applied every ``decay_steps``.
    decay_steps: ``d``.
    total_steps: ``T``.
    warmup: warmup fraction ``w`` of ``total_steps``.

  Examples:
    >>> from bertadam_optax.schedules import warmup_linear_decay_exp
    >>> # Halved every 100 steps from the end of warmup (step 100): 0.5 ** 10
    >>> # at step 1100.
    >>> [round(float(warmup_linear_decay_exp(s, 0.5, 100, 1000, warmup=0.1)), 6)
    ...  for s in (50, 100, 200, 300, 1100)]
    [0.5, 1.0, 0.5, 0.25, 0.000977]

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``
    (``--lr_schedule LE``).
  """
  return _step_based(
    "warmup_linear_decay_exp",
    global_step,
    total_steps,
    warmup,
    decay_rate=decay_rate,
    decay_steps=decay_steps,
  )


def warmup_exp_decay_exp(
  global_step, decay_rate, decay_steps, total_steps, warmup=0.002, degree=2.0
):
  r"""Polynomial warmup ``(x / w) ** degree``, then exponential decay.

  .. math::
    f(s) = \begin{cases} 1 & w = 0 \\ (x / w)^{p} & x < w \\
           r^{(s - w T) / d} & \text{otherwise} \end{cases}

  with ``x = s / T`` and ``p = degree``.

  In one line: ``lr * ((x/w)**degree if x < w else
  decay_rate ** ((s - w T) / decay_steps))``.

  Examples:
    >>> from bertadam_optax.schedules import warmup_exp_decay_exp
    >>> # (50 / 100) ** 2 in warmup; 0.5 ** 2 two hundred steps after it.
    >>> [round(float(warmup_exp_decay_exp(s, 0.5, 100, 1000, warmup=0.1)), 6)
    ...  for s in (50, 100, 300)]
    [0.25, 1.0, 0.25]

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``
    (``--lr_schedule EE``).
  """
  return _step_based(
    "warmup_exp_decay_exp",
    global_step,
    total_steps,
    warmup,
    decay_rate=decay_rate,
    decay_steps=decay_steps,
    degree=degree,
  )


def warmup_exp_decay_poly(
  global_step, total_steps, warmup=0.002, warm_degree=1.5, degree=2.0
):
  r"""Polynomial warmup, then polynomial decay to 0 at ``total_steps``.

  .. math::
    f(s) = \begin{cases} (x / w)^{q} & x < w \\
           (1 - x)^{p} & \text{otherwise} \end{cases}

  with ``x = s / T``, ``q = warm_degree`` and ``p = degree``; ``1 - x`` is
  computed as ``(T - s) / T`` so it stays exact near the end in float32.

  In one line: ``lr * ((x/w)**warm_degree if x < w else (1 - x)**degree)``.

  Examples:
    >>> from bertadam_optax.schedules import warmup_exp_decay_poly
    >>> # 0.25 ** 1.5 at step 25; (1 - 0.1) ** 2 at step 100.
    >>> [round(float(warmup_exp_decay_poly(s, 1000, warmup=0.1)), 6)
    ...  for s in (25, 100, 500, 1000)]
    [0.125, 0.81, 0.25, 0.0]

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``
    (``--lr_schedule EP``).
  """
  return _step_based(
    "warmup_exp_decay_poly",
    global_step,
    total_steps,
    warmup,
    warm_degree=warm_degree,
    degree=degree,
  )


def check_warmup(warmup, name="warmup"):
  """Raises unless ``warmup`` is a number in [0, 1) or the original's -1."""
  return _validation.check_number(
    name, warmup, 0.0, 1.0, high_inclusive=False, allowed=(-1,)
  )


def bert_schedule(
  name: str,
  learning_rate: float,
  t_total: int,
  warmup: float = 0.002,
  *,
  decay_rate: float | None = None,
  decay_steps: float | None = None,
  degree: float | None = None,
  warm_degree: float | None = None,
  lr_offset: float = 0.0,
) -> optax.Schedule:
  r"""One of the six DeepSpeed BertAdam schedules as an Optax schedule.

  .. math::
    \eta(k) = \eta_0 \, f(\cdot) + \eta_{\text{offset}}

  where ``f`` is :data:`SCHEDULES` ``[name]`` evaluated at
  ``x = min(k / t_total, 1)`` for the three progress-based schedules, and at
  the step ``k`` with ``total_steps = t_total`` for the three step-based ones.

  Within ``0 <= k <= t_total`` this equals the original. Past ``t_total``,
  ``warmup_cosine``, ``warmup_linear`` and ``warmup_exp_decay_poly`` hold
  progress at 1, so the learning rate never goes negative (the original's
  ``1 - x`` does) and never rises again (the original's cosine and
  ``(1 - x) ** 2`` do). This is a deliberate deviation; the exponential decays
  and ``warmup_constant`` continue exactly as the original.

  Args:
    name: one of :data:`SCHEDULES`.
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    t_total: total number of steps (> 0).
    warmup: warmup fraction in [0, 1), or -1 for none.
    decay_rate: required by the two ``*_decay_exp`` schedules (> 0).
    decay_steps: required by the two ``*_decay_exp`` schedules (> 0).
    degree: warmup exponent of ``warmup_exp_decay_exp`` (default 2.0) or
      decay exponent of ``warmup_exp_decay_poly`` (default 2.0).
    warm_degree: warmup exponent of ``warmup_exp_decay_poly`` (default 1.5).
    lr_offset: added to the scheduled value, as DeepSpeed's bing_bert training
      script does with ``--lr_offset``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.


  Examples:
    >>> from bertadam_optax.schedules import bert_schedule
    >>> schedule = bert_schedule("warmup_linear", 1e-3, t_total=1000,
    ...                          warmup=0.1)
    >>> [round(float(schedule(s)), 7) for s in (0, 50, 99, 100, 1000, 2000)]
    [0.0, 0.0005, 0.00099, 0.0009, 0.0, 0.0]

  References:
    DeepSpeedExamples, ``bing_bert/pytorch_pretrained_bert/optimization.py``
    and ``bing_bert/deepspeed_train.py`` (``lr_offset``).
  """
  _validation.check_choice("name", name, SCHEDULES)
  learning_rate = _number("learning_rate", learning_rate)
  t_total = _validation.check_int("t_total", t_total, 1)
  warmup = _common.static_float(check_warmup(warmup))
  if name in ("warmup_linear_decay_exp", "warmup_exp_decay_exp"):
    for arg, value in (
      ("decay_rate", decay_rate),
      ("decay_steps", decay_steps),
    ):
      if value is None:
        raise ValueError(f"{arg}=None: schedule {name!r} requires {arg} > 0.")
    decay_rate = _number("decay_rate", decay_rate, low_inclusive=False)
    decay_steps = _number("decay_steps", decay_steps, low_inclusive=False)
  elif decay_rate is not None or decay_steps is not None:
    raise ValueError(
      f"decay_rate={decay_rate!r}, decay_steps={decay_steps!r}: only the "
      "'*_decay_exp' schedules take them; expected None for "
      f"schedule {name!r}."
    )
  if degree is not None and name not in (
    "warmup_exp_decay_exp",
    "warmup_exp_decay_poly",
  ):
    raise ValueError(
      f"degree={degree!r}: schedule {name!r} takes no degree; expected None."
    )
  if warm_degree is not None and name != "warmup_exp_decay_poly":
    raise ValueError(
      f"warm_degree={warm_degree!r}: schedule {name!r} takes no "
      "warm_degree; expected None."
    )
  # A negative exponent turns the warmup's 0 into an infinity.
  power = 2.0 if degree is None else _number("degree", degree)
  warm_power = (
    1.5 if warm_degree is None else _number("warm_degree", warm_degree)
  )
  lr_offset = _number("lr_offset", lr_offset)
  total = float(t_total)

  # Warmup membership as an integer step, decided here in float64 exactly as
  # the original's ``step / t_total < warmup`` (see ``_common``).
  warmup_end = float(_common.first_step_at_or_above(warmup, total))

  def multiplier(count):
    # float32 keeps the schedule out of float64 even with jax_enable_x64.
    step = jnp.asarray(count, jnp.float32)
    edge = (step, warmup_end)
    if name in X_BASED or name == "warmup_exp_decay_poly":
      # Progress held at 1 past the end: see the docstring.
      step = jnp.minimum(step, total)
    return _formula(
      name,
      edge,
      step,
      total,
      warmup,
      decay_rate=decay_rate,
      decay_steps=decay_steps,
      degree=power,
      warm_degree=warm_power,
    )

  def schedule(count):
    return learning_rate * multiplier(count) + lr_offset

  return schedule


def _number(name: str, value, low: float = 0.0, **kwargs):
  """A number ``>= low`` (finite), as a weakly typed float; tracers pass."""
  return _common.static_float(
    _validation.check_number(name, value, low, **kwargs)
  )


_EXP = ("warmup_linear_decay_exp", "warmup_exp_decay_exp")


def _build(source: str):
  """``bert_schedule(source, ...)`` from the registry's uniform options."""

  def build(opts: _table.Options, extra: dict[str, Any]) -> optax.Schedule:
    if source in _EXP:
      extra = {
        "decay_rate": opts.decay_rate,
        "decay_steps": opts.decay_steps,
        **extra,
      }
    return bert_schedule(
      source,
      opts.lr,
      _table.total_steps(source, opts),
      **_table.fraction_or_default(opts),
      **extra,
    )

  return build


# The functions' keywords that are uniform options of the registry; ``x`` and
# ``global_step`` are the step, ``total_steps`` is ``t_total``.
_KEYWORDS = {
  "warmup": "warmup",
  "total_steps": "t_total",
  "decay_rate": "decay_rate",
  "decay_steps": "decay_steps",
}

ENTRIES: tuple[_table.ScheduleInfo, ...] = tuple(
  _table.entry(
    "deepspeed",
    function.__name__,
    function,
    _build(function.__name__),
    keywords=_KEYWORDS,
    always=("lr", "t_total"),
  )
  for function in (
    warmup_cosine,
    warmup_constant,
    warmup_linear,
    warmup_linear_decay_exp,
    warmup_exp_decay_exp,
    warmup_exp_decay_poly,
  )
)
"""This module's rows of the schedule registry (bare names, family
``deepspeed``), in the order of :data:`SCHEDULES`."""

SCHEDULES: Mapping[str, Callable] = {e.source: e.factory for e in ENTRIES}
"""The six schedule names of DeepSpeed's bing_bert, mapped to their
functions."""

X_BASED = ("warmup_cosine", "warmup_constant", "warmup_linear")
"""Schedules that are functions of the progress ``x = step / t_total``."""

STEP_BASED = (
  "warmup_linear_decay_exp",
  "warmup_exp_decay_exp",
  "warmup_exp_decay_poly",
)
"""Schedules that are functions of the step count and ``total_steps``."""
