r"""The schedules of the original pytorch-pretrained-bert 0.6.2, in pure JAX.

Holds the six ``get_lr_`` functions, :func:`pretrained_bert_schedule` (one of
them as an Optax schedule, what 0.6.2's ``BertAdam(schedule=...)`` applies)
and ``ENTRIES``, their rows of the schedule registry.

Reproduces the ``_LRSchedule`` classes of ``pytorch_pretrained_bert/
optimization.py`` (version 0.6.2), the lineage that DeepSpeed's bing_bert
forked from before the two diverged. With ``x = step / t_total`` (progress),
``w`` the warmup fraction (``-1`` meaning ``0``), ``c`` the cycles,
``q = (x - w) / (1 - w)`` the progress after warmup and ``{.}`` the
fractional part, the multiplier is ``x / w`` while ``x < w``, then:

======================================  ========================================
name                                    after warmup
======================================  ========================================
``none``                                ``1`` (no warmup either)
``warmup_constant``                     ``1``
``warmup_linear``                       ``max((x - 1) / (w - 1), 0)``
``warmup_cosine`` (c = 0.5)             ``0.5 (1 + cos(2 pi c q))``
``warmup_cosine_with_hard_restarts``    ``0.5 (1 + cos(pi {c q}))``
(c = 1)
``warmup_cosine_with_warmup_restarts``  ``c`` cycles of ``t_total / c`` steps,
(c = 1)                                 each warming up for ``w t_total`` steps
                                        and then a half cosine to 0
======================================  ========================================

The classes are ``ConstantLR``, ``WarmupConstantSchedule``,
``WarmupLinearSchedule``, ``WarmupCosineSchedule``,
``WarmupCosineWithHardRestartsSchedule`` and
``WarmupCosineWithWarmupRestartsSchedule``.

Unlike DeepSpeed's fork, ``warmup_linear`` decays from the end of warmup
(1 at ``x = w``, no jump), the cosine starts after warmup, and there are two
restarting cosines. 0.6.2's ``SCHEDULES`` dict names only the first four (with
``None`` as well as ``"none"`` for the constant); the restarting cosines are
classes only, and are named here after them.

The module functions (``constant``, ``warmup_constant``, ``warmup_linear``,
``warmup_cosine``, ``warmup_cosine_with_hard_restarts``,
``warmup_cosine_with_warmup_restarts``) are the classes' ``get_lr_(progress)``
as functions of ``(progress, warmup[, cycles])``, taking ``warmup`` and
``cycles`` as the class constructors take them. They are not in ``__all__``:
their names collide with DeepSpeed's in :mod:`bertadam_optax.schedules`, so
they are reached as ``bertadam_optax.schedules.pretrained_bert.warmup_linear``.
They compute in the dtype of ``progress``: in float32 a restarting cosine's
phase carries about ``1e-7 * c / (1 - w)`` of rounding, and a restart that
falls exactly on the given progress (other than ``x = 1``) may land on either
side of it, as float64 rounding decides in the original.

:func:`pretrained_bert_schedule` is ``learning_rate * get_lr(step)``, the Optax
schedule a ``BertAdam(schedule=name)`` applies at every step, past ``t_total``
included. It computes from the integer count with every branch decided at
construction, and matches the float64 original to float32 precision at every
step, restarts included (for the range, see its docstring).
"""

from __future__ import annotations

import math
import types
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _common
from bertadam_optax.schedules import _join
from bertadam_optax.schedules import _table

__all__ = [
  "PRETRAINED_BERT_SCHEDULES",
  "pretrained_bert_schedule",
]


def _effective_warmup(warmup):
  # The constructors turn the "no warmup" value -1 into 0.
  return jnp.maximum(warmup, 0.0)


def _ramp(progress, warmup):
  """``progress / warmup``, never dividing by 0 in an unselected branch.

  ``jnp.where`` evaluates both branches; a zero warmup there would put a NaN
  into gradients although the value is never selected.
  """
  return progress / jnp.where(
    warmup == 0, 1.0, jnp.maximum(warmup, _common.FLOAT32_TINY)
  )


def constant(progress, warmup=0.002):
  r"""A multiplier of 1 (``ConstantLR``, the ``"none"`` schedule).

  In one line: ``lr``.

  Args:
    progress: ``step / t_total``.
    warmup: accepted, as ``ConstantLR`` accepts it, and ignored.

  Returns:
    Ones shaped like ``progress``.

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``: ``ConstantLR``.
  """
  del warmup
  x = jnp.asarray(progress)
  return jnp.ones_like(x, dtype=jnp.promote_types(x.dtype, jnp.float32))


def warmup_constant(progress, warmup=0.002):
  r"""Linear warmup, then constant.

  .. math::
    f(x) = \begin{cases} x / w & x < w \\ 1 & \text{otherwise} \end{cases}

  In one line: ``lr * (x/w if x < w else 1)``.

  Args:
    progress: ``x = step / t_total``.
    warmup: ``w``, the warmup fraction in [0, 1), or -1 for none.

  Returns:
    The learning-rate multiplier.

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``:
    ``WarmupConstantSchedule``.
  """
  x = jnp.asarray(progress)
  w = _effective_warmup(warmup)
  return _join.warmup_then(x, w, _ramp(x, w), jnp.ones_like(x))


def warmup_linear(progress, warmup=0.002):
  r"""Linear warmup, then a linear decay from 1 at ``x = w`` to 0 at ``x = 1``.

  .. math::
    f(x) = \begin{cases} x / w & x < w \\
           \max\left(\frac{x - 1}{w - 1}, 0\right) & \text{otherwise}
           \end{cases}

  Continuous at the end of warmup and held at 0 past ``x = 1``.

  In one line: ``lr * (x/w if x < w else max((x - 1) / (w - 1), 0))``.

  Args:
    progress: ``x = step / t_total``.
    warmup: ``w``, the warmup fraction in [0, 1), or -1 for none.

  Returns:
    The learning-rate multiplier.

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``:
    ``WarmupLinearSchedule``.
  """
  x = jnp.asarray(progress)
  w = _effective_warmup(warmup)
  return _join.warmup_then(
    x, w, _ramp(x, w), jnp.maximum((x - 1.0) / (w - 1.0), 0.0)
  )


def _cycles_after_warmup(x, w, cycles):
  r"""``c (x - w) / (1 - w)``, written as ``c - c (1 - x) / (1 - w)``.

  XLA turns a division by a broadcast scalar into a multiplication by its
  reciprocal, so ``(x - w) / (1 - w)`` can miss 1 by an ulp at ``x = 1``,
  which with a whole ``c`` turns the restart the original makes there into
  the end of a cycle. ``1 - x`` is exactly 0 at ``x = 1``.
  """
  # Past warmup the value is >= 0; float32 rounding of ``(1 - x) / (1 - w)``
  # (a multiplication by a reciprocal under jit) can make it -1e-7 at
  # ``x = w``, which the fractional part of the hard restarts would wrap to ~1.
  return jnp.maximum(cycles - cycles * ((1.0 - x) / (1.0 - w)), 0.0)


def warmup_cosine(progress, warmup=0.002, cycles=0.5):
  r"""Linear warmup, then a cosine over the rest of the run.

  .. math::
    f(x) = \begin{cases} x / w & x < w \\
           \tfrac12 \left(1 + \cos(2 \pi c\, q)\right) & \text{otherwise}
           \end{cases}
    \qquad q = \frac{x - w}{1 - w}

  With the default ``c = 0.5`` it decays from 1 at the end of warmup to 0 at
  ``x = 1``, and rises again past it.

  In one line: ``lr * (x/w if x < w else 0.5 (1 + cos(2 pi c q))), q = (x -
  w)/(1 - w), c = 0.5``.

  Args:
    progress: ``x = step / t_total``.
    warmup: ``w``, the warmup fraction in [0, 1), or -1 for none.
    cycles: ``c``, the number of cosine periods over the post-warmup part.

  Returns:
    The learning-rate multiplier.

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``:
    ``WarmupCosineSchedule``.
  """
  x = jnp.asarray(progress)
  w = _effective_warmup(warmup)
  # 0.5 (1 + cos 2a) == cos(a) ** 2, without the cancellation near 0.
  wave = jnp.square(jnp.cos(math.pi * _cycles_after_warmup(x, w, cycles)))
  return _join.warmup_then(x, w, _ramp(x, w), wave)


def warmup_cosine_with_hard_restarts(progress, warmup=0.002, cycles=1.0):
  r"""Linear warmup, then ``c`` half cosines from 1 to 0, each restarting at 1.

  .. math::
    f(x) = \begin{cases} x / w & x < w \\
           \tfrac12 \left(1 + \cos(\pi \{c\, q\})\right) & \text{otherwise}
           \end{cases}
    \qquad q = \frac{x - w}{1 - w}

  where ``{.}`` is the fractional part. With a whole ``c`` the last restart
  falls on ``x = 1``, so the multiplier is 1 there, and the cycles go on past
  it.

  In one line: ``lr * (x/w if x < w else 0.5 (1 + cos(pi frac(c q)))), c =
  1``.

  Args:
    progress: ``x = step / t_total``.
    warmup: ``w``, the warmup fraction in [0, 1), or -1 for none.
    cycles: ``c >= 1``, the number of half cosines.

  Returns:
    The learning-rate multiplier.

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``:
    ``WarmupCosineWithHardRestartsSchedule``.
  """
  x = jnp.asarray(progress)
  if _exact_path(x, warmup, cycles):
    # The original's float64 ``x < w`` and ``c (x - w) / (1 - w) % 1`` from
    # float32 pairs, so the cycle of a progress is decided as it decides it.
    w = max(float(warmup), 0.0)
    w_hi, w_lo = _pair(w)
    d, d_tail = _two_sum(x, -w_hi)
    in_warmup = d + (d_tail - w_lo) < 0
    # As c - c (1 - x) / (1 - w): exactly c at x = 1, where it restarts.
    m, m_tail = _two_sum(jnp.ones_like(x), -x)
    k_hi, k_lo = _pair(cycles / (1.0 - w))
    r, r_tail = _two_product(m, k_hi)
    r_tail = r_tail + (m * k_lo + m_tail * k_hi)
    c_hi, c_lo = _pair(cycles)
    p, p_tail = _two_sum(c_hi, -r)
    p_tail = p_tail + (c_lo - r_tail)
    # Past warmup the phase is >= 0; rounding must not wrap it to ~1. A phase
    # within the pairs' error (~1e-14) below a whole number is that number:
    # a float32 progress is never that close unless exactly on a restart,
    # which the original's float64 rounding makes a restart.
    p, p_tail = _normalize(p, p_tail)
    below = (jnp.ceil(p) - p) - p_tail
    phase = jnp.where(
      (p + p_tail < 0) | (below < 1e-11 * jnp.maximum(p, 1.0)),
      jnp.zeros_like(p),
      _fraction(p, p_tail),
    )
    ramp = x / (max(w, _common.FLOAT32_TINY) if w > 0 else 1.0)
  else:
    w = _effective_warmup(warmup)
    phase = jnp.mod(_cycles_after_warmup(x, w, cycles), 1.0)
    in_warmup, ramp = x < w, _ramp(x, w)
  return jnp.where(in_warmup, ramp, jnp.square(jnp.cos(0.5 * math.pi * phase)))


def warmup_cosine_with_warmup_restarts(progress, warmup=0.002, cycles=1.0):
  r"""``c`` equal cycles, each a linear warmup then a half cosine to 0.

  .. math::
    f(x) = \begin{cases} u / w' & u < w' \\
           \tfrac12 \left(1 + \cos\left(\pi \frac{u - w'}{1 - w'}\right)\right)
           & \text{otherwise} \end{cases}
    \qquad u = \{c\, x\}, \quad w' = c \max(w, 0)

  ``warmup`` is a fraction of the whole run, as the class takes it: each cycle
  warms up for ``w' = warmup * cycles`` of its own length, i.e. for
  ``warmup * t_total`` steps. With a whole ``c`` the last cycle ends at
  ``x = 1``, where the multiplier restarts from 0, and the cycles go on past
  it.

  In one line: ``lr * c cycles, each a warmup over w then a half cosine to
  0, c = 1``.

  Args:
    progress: ``x = step / t_total``.
    warmup: ``w``, the warmup fraction of the whole run in [0, 1), or -1 for
      none; ``w * c < 1``.
    cycles: ``c >= 1``, the number of cycles.

  Returns:
    The learning-rate multiplier.

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``:
    ``WarmupCosineWithWarmupRestartsSchedule``.
  """
  x = jnp.asarray(progress)
  if _exact_path(x, warmup, cycles):
    # The original's float64 ``x c % 1`` and ``u < w'``, from float32 pairs.
    w = max(float(warmup), 0.0) * cycles
    c_hi, c_lo = _pair(cycles)
    p, p_tail = _normalize(*_two_product(x, c_hi))
    p, p_tail = _normalize(p, p_tail + x * c_lo)
    u = _fraction(p, p_tail)
    whole = p - jnp.floor(p)
    w_hi, w_lo = _pair(w)
    d, d_tail = _two_sum(whole, -w_hi)
    # A whole p with a negative tail ends the previous cycle.
    d = jnp.where((whole == 0) & (p_tail < 0), d + 1.0, d)
    past = d + (d_tail + p_tail - w_lo)
    in_warmup = past < 0
    ramp = u / (max(w, _common.FLOAT32_TINY) if w > 0 else 1.0)
  else:
    w = _effective_warmup(warmup) * cycles
    u = jnp.mod(x * cycles, 1.0)
    past = u - w
    in_warmup, ramp = u < w, _ramp(u, w)
  wave = jnp.square(jnp.cos(0.5 * math.pi * (past / (1.0 - w))))
  return jnp.where(in_warmup, ramp, wave)


def _exact_path(x, warmup, cycles) -> bool:
  """Whether the restarting cosines take the float32-pair path.

  It needs the hyperparameters as numbers (they are split into float32
  pairs) and a float32 progress; a float64 progress computes as the original
  does already.
  """
  return (
    x.dtype == jnp.float32
    and _validation.is_number(warmup)
    and _validation.is_number(cycles)
  )


def _pair(value: float) -> tuple[jnp.ndarray, jnp.ndarray]:
  """A float64 constant as float32 ``hi + lo`` (about 48 bits)."""
  hi = np.float32(value)
  return jnp.float32(hi), jnp.float32(value - float(hi))


def _barrier(value):
  return jax.lax.optimization_barrier(value)


def _two_sum(a, b):
  """``a + b`` as ``(s, e)`` with ``s + e == a + b`` exactly (Knuth)."""
  # The barrier keeps XLA from folding ``(c + b) - c`` into ``b`` when an
  # operand is a constant, which would zero the error term.
  s = _barrier(a + b)
  v = s - a
  return s, (a - (s - v)) + (b - v)


def _split(a):
  """``a`` as ``hi + lo`` with 12 significant bits each (Dekker)."""
  t = _barrier(a * jnp.float32(4097.0))
  hi = t - (t - a)
  return hi, a - hi


def _two_product(a, b):
  """``a * b`` as ``(p, e)`` with ``p + e == a * b`` exactly (Dekker)."""
  p = a * b
  a_hi, a_lo = _split(a)
  b_hi, b_lo = _split(b)
  return p, ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo


def _normalize(p, tail):
  """``(p, tail)`` with ``p`` the float32 rounding of ``p + tail``."""
  s = _barrier(p + tail)
  return s, tail - (s - p)


def _fraction(p, tail):
  """The fractional part of ``p + tail``, rounded once; a whole ``p`` with a
  negative tail is just below it.
  """
  p, tail = _normalize(p, tail)
  f = p - jnp.floor(p)
  f = jnp.where((f == 0) & (tail < 0), jnp.ones_like(f), f)
  return f + tail


def _build(source: str):
  """``pretrained_bert_schedule(source, ...)`` from the uniform options."""

  def build(opts: _table.Options, extra: dict[str, Any]) -> optax.Schedule:
    if source == "none":
      # The constant ignores t_total and warmup, as ConstantLR does.
      return pretrained_bert_schedule(source, opts.lr, -1, **extra)
    return pretrained_bert_schedule(
      source, opts.lr, opts.t_total, **_table.fraction_or_default(opts), **extra
    )

  return build


ENTRIES: tuple[_table.ScheduleInfo, ...] = (
  _table.entry(
    "pretrained_bert", "none", constant, _build("none"), keywords={}
  ),
) + tuple(
  _table.entry(
    "pretrained_bert",
    function.__name__,
    function,
    _build(function.__name__),
    keywords={"warmup": "warmup"},
    always=("lr", "t_total"),
  )
  for function in (
    warmup_cosine,
    warmup_constant,
    warmup_linear,
    warmup_cosine_with_hard_restarts,
    warmup_cosine_with_warmup_restarts,
  )
)
"""This module's rows of the schedule registry (``pretrained_bert.<name>``)."""

PRETRAINED_BERT_SCHEDULES: Mapping[str, Callable] = types.MappingProxyType(
  {e.source: e.factory for e in ENTRIES}
)
"""pytorch-pretrained-bert 0.6.2's schedule names, mapped to their functions.

The first four as its ``SCHEDULES`` dict names them; the restarting cosines
after their classes. Read-only.
"""

_DEFAULT_CYCLES = types.MappingProxyType(
  {
    "warmup_cosine": 0.5,
    "warmup_cosine_with_hard_restarts": 1.0,
    "warmup_cosine_with_warmup_restarts": 1.0,
  }
)

# The cosines' phase tables (``_PhaseTable``) cover every count up to
# ``_TABLE_MIN_HORIZON * t_total``, then go on up to ``2**24`` (where float32
# stops counting exactly) unless that takes more than ``_MAX_PHASES`` phases.
_TABLE_MIN_HORIZON = 2.0
_MAX_PHASES = 1024
_EXACT_COUNTS = 2.0**24


class _PhaseTable:
  """Where the phases of a cosine schedule start, fixed at construction.

  ``phase(step)`` is the original's float64 arithmetic reduced to a
  non-decreasing integer (warmup, then one phase per cycle; or, with warmup
  restarts, a warmup phase and a cosine phase per cycle). ``thresholds[j - 1]``
  is the first step in phase ``j``, so the phase of a count is a
  ``searchsorted`` into them: exact wherever float64 rounding puts a restart on
  one side of a step or the other, which float32 arithmetic cannot reproduce.

  The position within a phase is measured from the phase's real start, stored
  as a whole number plus a fraction split in two float32 parts:
  ``((step - whole) - hi) - lo`` keeps the relative precision of float32 even
  when a cycle lasts less than a step, where ``step * c / t_total`` would lose
  ``~1e-7 * c * x`` to rounding.

  The table stops at the first restart past ``2**24``, or past
  ``2 * t_total`` once it holds ``_MAX_PHASES`` phases (cycles a few steps
  long); from there on the phase stays the last one and :meth:`locate`
  reports ``beyond``, for the caller to count whole cycles in float32.
  """

  def __init__(
    self,
    phase: Callable[[int], int],
    start: Callable[[int], float],
    is_restart: Callable[[int], bool],
    t_total: float,
  ):
    thresholds = []
    starts = [start(0)]
    j = 0
    while True:
      j += 1
      first = _common.first_step_where(lambda k, j=j: phase(k) >= j, start(j))
      thresholds.append(first)
      starts.append(start(j))
      if (
        is_restart(j)
        and first > _TABLE_MIN_HORIZON * t_total
        and (first > _EXACT_COUNTS or j >= _MAX_PHASES)
      ):
        break
    self.last_phase = len(thresholds)
    # Padded to a power of two (thresholds with inf, never reached), so that
    # schedules with different hyperparameters share compiled kernels when
    # evaluated outside jit.
    size = 1 << (len(thresholds) - 1).bit_length()
    thresholds += [math.inf] * (size - len(thresholds))
    starts += [starts[-1]] * (size + 1 - len(starts))
    whole = [math.floor(s) for s in starts]
    frac = [s - w for s, w in zip(starts, whole)]
    hi = np.asarray(frac, np.float32)
    lo = np.asarray([f - float(h) for f, h in zip(frac, hi)], np.float32)
    self.thresholds = jnp.asarray(np.asarray(thresholds, np.float32))
    self.whole = jnp.asarray(np.asarray(whole, np.float32))
    self.hi = jnp.asarray(hi)
    self.lo = jnp.asarray(lo)

  def locate(self, step):
    """The phase of ``step``, whether it is past the table, and the steps since
    the phase started.
    """
    phase = jnp.searchsorted(self.thresholds, step, side="right")
    since = ((step - self.whole[phase]) - self.hi[phase]) - self.lo[phase]
    return phase, phase == self.last_phase, since


def _frac(x):
  return x - jnp.floor(x)


def _check_warmup(warmup) -> float:
  return _common.static_number(
    "warmup", warmup, 0.0, 1.0, high_inclusive=False, allowed=(-1,)
  )


def _check_cycles(name: str, cycles):
  if cycles is None:
    return _DEFAULT_CYCLES.get(name)
  if name not in _DEFAULT_CYCLES:
    raise ValueError(
      f"cycles={cycles!r}: schedule {name!r} takes no cycles; expected None."
    )
  if name == "warmup_cosine":
    # WarmupCosineSchedule checks nothing, but cycles <= 0 would make it a
    # constant or a mirrored cosine.
    return _common.static_number(
      "cycles", cycles, 0.0, None, low_inclusive=False
    )
  # The restarting classes assert cycles >= 1.
  return _common.static_number("cycles", cycles, 1.0, None)


def pretrained_bert_schedule(
  name: str | None,
  learning_rate: float,
  t_total: int,
  warmup: float = 0.002,
  *,
  cycles: float | None = None,
) -> optax.Schedule:
  r"""One of pytorch-pretrained-bert 0.6.2's schedules as an Optax schedule.

  .. math::
    \eta(k) = \eta_0 \, f\!\left(\frac{k}{T}\right), \qquad
    \eta(k) = \eta_0 \ \text{ if } T = -1

  where ``f`` is :data:`PRETRAINED_BERT_SCHEDULES` ``[name]``: the value is
  ``learning_rate * schedule.get_lr(k)`` of the 0.6.2 class that ``name``
  selects, constructed with ``warmup``, ``t_total`` (and ``cycles``).

  Past ``t_total`` it does what the original does, which is no clean stop:
  ``warmup_linear`` stays at 0, ``warmup_constant`` at 1, ``warmup_cosine``
  rises again (with the default ``cycles=0.5``, back to 1 at
  ``(2 - w) t_total``), and both restarting cosines keep cycling: with a whole
  number of cycles ``warmup_cosine_with_hard_restarts`` jumps back to 1 at
  step ``t_total`` and ``warmup_cosine_with_warmup_restarts`` starts warming
  up from 0 there. The original logs a warning past ``t_total`` for
  ``warmup_linear`` and the cosines; this schedule is silent.

  Every branch (in warmup or not, which cycle) is decided on the integer count
  against thresholds computed at construction exactly as the original's
  float64 arithmetic decides it, so even a restart that float64 rounding puts
  on one side of a step or the other lands where the original puts it. For
  the cosines the thresholds cover every count up to ``2 * t_total``, and on
  up to ``2**24`` unless that takes over 1000 cycles; past them, whole
  cycles are counted in float32 (a restart falling exactly on a step may move
  by one, and the value drifts by about ``1e-7`` per cycle). Counts are exact
  in float32 below ``2**24``.

  Args:
    name: one of :data:`PRETRAINED_BERT_SCHEDULES`, or ``None`` for
      ``"none"`` (as ``BertAdam(schedule=None)``).
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    t_total: ``T``, the total number of steps (> 0), or -1 for a constant
      learning rate whatever the schedule (the original's "schedule not
      applied").
    warmup: the warmup fraction of ``t_total`` in [0, 1), or -1 for none. For
      ``warmup_cosine_with_warmup_restarts`` a fraction of the whole run, with
      ``warmup * cycles < 1``.
    cycles: only for the cosines; default 0.5 for ``warmup_cosine`` (> 0),
      1.0 for the restarting ones (>= 1).

  Returns:
    A function ``count -> learning rate``, pure and jittable.


  Examples:
    >>> from bertadam_optax.schedules import pretrained_bert_schedule
    >>> schedule = pretrained_bert_schedule("warmup_linear", 1e-3,
    ...                                     t_total=1000, warmup=0.1)
    >>> [round(float(schedule(s)), 7) for s in (0, 50, 100, 550, 1000, 2000)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.py``: ``_LRSchedule.get_lr``
    and its subclasses; ``BertAdam(schedule=...)``.
  """
  name = "none" if name is None else name
  _validation.check_choice("name", name, PRETRAINED_BERT_SCHEDULES)
  learning_rate = _common.static_float(
    _validation.check_number("learning_rate", learning_rate, 0)
  )
  if _validation.is_traced(t_total):
    raise ValueError(
      f"t_total={t_total!r} is traced; expected a concrete "
      "integer (it fixes the schedule's thresholds)."
    )
  t_total = _validation.check_int("t_total", t_total, 1, allowed=(-1,))
  warmup = _check_warmup(warmup)
  cycles = _check_cycles(name, cycles)
  if name == "warmup_cosine_with_warmup_restarts" and warmup * cycles >= 1.0:
    raise ValueError(
      f"warmup={warmup!r}, cycles={cycles!r}: schedule {name!r} warms up "
      f"for warmup * cycles = {warmup * cycles!r} of each cycle; expected "
      "warmup * cycles < 1."
    )

  if t_total == -1 or name == "none":

    def constant_schedule(count):
      return learning_rate * jnp.ones_like(jnp.asarray(count, jnp.float32))

    return constant_schedule

  total = float(t_total)
  w = max(float(warmup), 0.0)
  if name == "warmup_cosine_with_warmup_restarts":
    # The class scales warmup to a fraction of each cycle; its progress within
    # a cycle is ``{x c}``, and the cycles start at multiples of T / c.
    w = w * cycles
    period = total / cycles
    inv_period = cycles / total

    def restart_phase(step: int) -> int:
      z = step / total * cycles
      return 2 * math.floor(z) + (z % 1.0 >= w)

    def restart_start(j: int) -> float:
      return (j // 2 + w * (j % 2)) * period

    table = _PhaseTable(
      restart_phase,
      restart_start,
      is_restart=lambda j: j % 2 == 0,
      t_total=total,
    )
    inv_warm = _common.float32_inverse(w)
    inv_decay = 1.0 / (1.0 - w)
    # Within the table the warmup and the cosine are measured from their own
    # starts, so the cosine's ``u - w`` never cancels.
    inv_warm_steps = min(inv_warm * inv_period, _common.FLOAT32_MAX)
    inv_decay_steps = inv_decay * inv_period

    def multiplier(step):
      phase, beyond, since = table.locate(step)
      u = _frac(since * inv_period)
      in_warmup = jnp.where(beyond, u < w, phase % 2 == 0)
      ramp = jnp.where(beyond, u * inv_warm, since * inv_warm_steps)
      decay = jnp.where(beyond, (u - w) * inv_decay, since * inv_decay_steps)
      wave = jnp.square(jnp.cos((0.5 * math.pi) * decay))
      return jnp.where(in_warmup, ramp, wave)

  else:
    # Warmup membership ``step / T < w`` as an integer step (see _common).
    warmup_end = float(_common.first_step_at_or_above(w, total))
    inv_warm = _common.float32_inverse(w * total)
    ramp_start = w * total
    decay_steps = total * (1.0 - w)

    if name == "warmup_constant":

      def multiplier(step):
        return _join.warmup_then(
          step, warmup_end, step * inv_warm, jnp.ones_like(step)
        )

    elif name == "warmup_linear":
      inv_decay = 1.0 / decay_steps

      def multiplier(step):
        # (x - 1) / (w - 1) == (T - k) / (T (1 - w)), with T - k exact.
        decay = jnp.maximum((total - step) * inv_decay, 0.0)
        return _join.warmup_then(step, warmup_end, step * inv_warm, decay)

    else:
      period = decay_steps / cycles

      def cosine_phase(step: int) -> int:
        x = step / total
        if x < w:
          return 0
        return 1 + math.floor(cycles * ((x - w) / (1 - w)))

      def start(j: int) -> float:
        # Phase 0, the warmup, starts at step 0 (and its ramp is step / (wT)).
        return 0.0 if j == 0 else ramp_start + (j - 1) * period

      table = _PhaseTable(
        cosine_phase, start, is_restart=lambda j: True, t_total=total
      )
      inv_period = 1.0 / period
      # Half a period of cos(pi u) per cycle for warmup_cosine, a quarter of
      # one (1 down to 0) for the hard restarts.
      scale = math.pi if name == "warmup_cosine" else 0.5 * math.pi

      def multiplier(step):
        phase, beyond, since = table.locate(step)
        u = since * inv_period
        u = jnp.where(beyond, _frac(u), u)
        wave = jnp.square(jnp.cos(scale * u))
        return jnp.where(phase == 0, step * inv_warm, wave)

  def schedule(count):
    # float32 keeps the schedule out of float64 even with jax_enable_x64.
    return learning_rate * multiplier(jnp.asarray(count, jnp.float32))

  return schedule
