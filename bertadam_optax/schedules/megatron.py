r"""Megatron-LM's learning-rate and weight-decay schedules, as pure JAX functions.

Reproduces ``OptimizerParamScheduler`` of megatron-core 0.16.1
(``megatron/core/optimizer_param_scheduler.py``): :func:`megatron_lr_schedule`
is its ``get_lr`` and :func:`megatron_wd_schedule` its ``get_wd``, as functions
of the optimizer-update count.

Megatron's scheduler counts in its own unit: ``step(increment)`` advances
``num_steps`` by ``increment`` after every optimizer update, and Megatron-LM's
training loop passes the global batch size, so every step count of the
scheduler (warmup, decay, WSD annealing, weight-decay increment) is in
*samples*, also for iteration-based training (``--train-iters`` multiplies the
iteration counts by the global batch size). Both factories take that
``increment``: the value at ``count`` is the scheduler's after
``num_steps = count * increment``. With ``increment=1`` they are the
scheduler's functions of ``num_steps`` itself.

Every branch of the original (in warmup, past the end of decay, in WSD's
stable phase, past the weight-decay increment) compares integer sample counts
with the thresholds. These decisions are made once, at construction, in exact
Python arithmetic, as the last update count on each side; the traced code
compares the float32 count with those integers, exact for every count below
``2**24`` (XLA:CPU rewrites divisions into multiplications by reciprocals,
which would flip a float comparison at a boundary).
"""

from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _table

__all__ = [
  "ENTRIES",
  "LR_DECAY_STYLES",
  "WD_INCR_STYLES",
  "WSD_DECAY_STYLES",
  "megatron_lr_schedule",
  "megatron_wd_schedule",
]

LR_DECAY_STYLES = ("constant", "linear", "cosine", "inverse-square-root", "WSD")
"""Megatron-LM's ``--lr-decay-style`` choices."""

WSD_DECAY_STYLES = ("exponential", "linear", "cosine", "minus_sqrt")
"""Megatron-LM's ``--lr-wsd-decay-style`` choices (annealing phase of WSD)."""

WD_INCR_STYLES = ("constant", "linear", "cosine")
"""Megatron-LM's ``--weight-decay-incr-style`` choices."""


# float32 constants: a Python float passed to jnp.where or jnp.clip becomes a
# float64 literal under jax_enable_x64.
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)


def _last_count_within(threshold: float, increment: int) -> int:
  """The largest ``k >= -1`` with ``k * increment <= threshold``, exactly.

  ``k * increment`` is a Python integer and the comparison with a float is
  exact, as Megatron's ``num_steps <= threshold`` is.
  """
  if threshold < 0:
    return -1
  k = math.floor(threshold / increment)
  while (k + 1) * increment <= threshold:
    k += 1
  while k >= 0 and k * increment > threshold:
    k -= 1
  return k


def _split(threshold: float, increment: int) -> tuple[int, float]:
  """``threshold / increment`` as an integer part and a fraction in [0, 1).

  ``threshold / increment - k`` is then ``(whole - k) + fraction``: an exact
  integer difference in float32 plus one rounding, with no cancellation of
  large numbers (sample counts exceed float32's integers).
  """
  whole = _last_count_within(threshold, increment)
  return whole, (threshold - whole * increment) / increment


def _counts(count) -> Any:
  # float32 keeps the schedule out of float64 even with jax_enable_x64.
  return jnp.asarray(count).astype(jnp.float32)


def _half_cosine_of_remaining(remaining):
  # 0.5 * (1 + cos(pi r)) == sin(pi (1 - r) / 2) ** 2, with 1 - r from the
  # counts: no cancellation near the end of the decay, where float32 matters.
  return jnp.square(jnp.sin(0.5 * math.pi * jnp.clip(remaining, _ZERO, _ONE)))


def _check_increment(increment):
  return _validation.check_int("increment", increment, 1)


def _static_or_traced(
  name: str, value: Any, low: float | None, high: float | None = None
) -> Any:
  """A checked rate: a Python float when static, the tracer itself if not."""
  _validation.check_number(name, value, low, high)
  return (
    _validation.to_float(name, value) if _validation.is_number(value) else value
  )


def _bound(value: Any) -> float | None:
  """``value`` as a bound of another check, if it is known at construction."""
  return value if isinstance(value, float) else None


def _float32(value: Any) -> Any:
  """A float32 constant (no float64 literal under x64), or a traced value."""
  return (
    np.float32(value)
    if isinstance(value, float)
    else jnp.asarray(value, jnp.float32)
  )


def megatron_lr_schedule(
  max_lr: float,
  min_lr: float,
  lr_warmup_steps: float,
  lr_decay_steps: float,
  lr_decay_style: str,
  *,
  init_lr: float = 0.0,
  wsd_decay_steps: float | None = None,
  lr_wsd_decay_style: str | None = None,
  increment: int = 1,
) -> optax.Schedule:
  r"""Megatron-LM's learning rate: ``OptimizerParamScheduler.get_lr``.

  With ``n = count * increment`` samples seen, ``W = lr_warmup_steps``,
  ``D = lr_decay_steps``, :math:`\eta_{\max}` = ``max_lr``,
  :math:`\eta_{\min}` = ``min_lr`` and :math:`\eta_0` = ``init_lr``:

  .. math::
    \eta(n) = \begin{cases}
      \eta_0 + (\eta_{\max} - \eta_0)\, n / W & W > 0,\ n \le W \\
      \eta_{\max} & \text{constant} \\
      \eta_{\min} & n > D \\
      \max\left(\eta_{\min}, \eta_{\max} \sqrt{\max(W, 1) / \max(n, 1)}\right)
        & \text{inverse-square-root} \\
      \eta_{\min} + c(r)\,(\eta_{\max} - \eta_{\min}),\ r = \frac{n - W}{D - W}
        & \text{otherwise}
    \end{cases}

  with :math:`c(r) = 1 - r` (``linear``) or
  :math:`\tfrac12 (1 + \cos \pi r)` (``cosine``). ``WSD`` (warmup, stable,
  decay) holds :math:`c = 1` until the annealing starts at ``A = D - S``
  (``S = wsd_decay_steps``), then with :math:`s = (n - A) / S`:
  :math:`c = 1 - s` (``linear``), :math:`\tfrac12 (1 + \cos \pi s)`
  (``cosine``), :math:`2 \cdot 0.5^{s} - 1` (``exponential``) or
  :math:`1 - \sqrt{s}` (``minus_sqrt``).

  In one line: ``init + (max - init) n/W if n <= W, else min + c((n - W)/(D - W)) (max - min), min past D``.

  The warmup ends *at* ``W`` inclusive, so ``eta(W) = max_lr``; with ``W = 0``
  the first value is ``max_lr`` (the decay at ``r = 0``). ``W`` may be
  fractional (``--lr-warmup-fraction`` times ``D``). Only the ``W > 0``
  warmup reads ``init_lr``.

  Args:
    max_lr: peak learning rate, ``>= min_lr`` (``--lr``).
    min_lr: floor, ``>= 0`` (``--min-lr``).
    lr_warmup_steps: ``W``, in scheduler steps, ``0 <= W < D``.
    lr_decay_steps: ``D``, in scheduler steps, ``> 0``.
    lr_decay_style: one of :data:`LR_DECAY_STYLES`.
    init_lr: the warmup's starting value, ``0 <= init_lr <= max_lr``
      (``--lr-warmup-init``).
    wsd_decay_steps: ``S``, the annealing length of ``WSD`` (required there),
      ``0 <= S``.
    lr_wsd_decay_style: one of :data:`WSD_DECAY_STYLES`, required by ``WSD``;
      ignored by the other styles, as in Megatron.
    increment: scheduler steps per optimizer update (Megatron-LM passes the
      global batch size), a positive integer.

  Returns:
    A function ``count -> learning rate`` (float32), pure and jittable.

  Raises:
    ValueError: where Megatron's scheduler asserts, naming the argument.

  Examples:
    >>> from bertadam_optax.schedules import megatron_lr_schedule
    >>> lr = megatron_lr_schedule(1e-3, 1e-4, 10, 100, "cosine")
    >>> [round(float(lr(k)), 6) for k in (0, 5, 10, 55, 100, 101)]
    [0.0, 0.0005, 0.001, 0.00055, 0.0001, 0.0001]
    >>> wsd = megatron_lr_schedule(1.0, 0.0, 0, 100, "WSD", wsd_decay_steps=20,
    ...                            lr_wsd_decay_style="linear")
    >>> [round(float(wsd(k)), 6) for k in (0, 80, 90, 100)]
    [1.0, 1.0, 0.5, 0.0]

  References:
    megatron-core 0.16.1, ``megatron/core/optimizer_param_scheduler.py``
    (``OptimizerParamScheduler.get_lr``); Megatron-LM
    ``megatron/training/training.py`` (``get_optimizer_param_scheduler``).
  """
  _validation.check_choice("lr_decay_style", lr_decay_style, LR_DECAY_STYLES)
  # The rates may be traced (vmap or grad over the learning rate): checked and
  # widened to Python floats only when they are static.
  min_lr = _static_or_traced("min_lr", min_lr, 0.0)
  max_lr = _static_or_traced("max_lr", max_lr, _bound(min_lr))
  init_lr = _static_or_traced("init_lr", init_lr, 0.0, _bound(max_lr))
  decay = _validation.to_float(
    "lr_decay_steps", lr_decay_steps, 0.0, low_inclusive=False
  )
  warmup = _validation.to_float(
    "lr_warmup_steps", lr_warmup_steps, 0.0, decay, high_inclusive=False
  )
  increment = _check_increment(increment)
  if lr_decay_style == "WSD":
    if wsd_decay_steps is None:
      raise ValueError(
        "wsd_decay_steps=None: lr_decay_style='WSD' requires "
        "wsd_decay_steps >= 0 (--lr-wsd-decay-iters or "
        "--lr-wsd-decay-samples)."
      )
    if lr_wsd_decay_style is None:
      raise ValueError(
        "lr_wsd_decay_style=None: lr_decay_style='WSD' "
        "requires one of " + ", ".join(repr(s) for s in WSD_DECAY_STYLES) + "."
      )
  if wsd_decay_steps is not None:
    wsd_decay_steps = _validation.to_float(
      "wsd_decay_steps", wsd_decay_steps, 0.0
    )
  if lr_wsd_decay_style is not None:
    _validation.check_choice(
      "lr_wsd_decay_style", lr_wsd_decay_style, WSD_DECAY_STYLES
    )

  delta = max_lr - min_lr
  last_warmup = _last_count_within(warmup, increment) if warmup > 0 else -1
  last_decay = _last_count_within(decay, increment)
  warmup_rate = increment * (max_lr - init_lr) / warmup if warmup > 0 else 0.0
  decay_whole, decay_fraction = _split(decay, increment)
  decay_length = (decay - warmup) / increment

  def decayed(k):
    if lr_decay_style == "inverse-square-root":
      # max(n, 1) with n = k * increment >= increment >= 1 unless k = 0.
      peak = max_lr * math.sqrt(max(warmup, 1.0) / increment)
      denom = jnp.sqrt(jnp.where(k == 0, np.float32(1.0 / increment), k))
      return jnp.maximum(_float32(min_lr), peak / denom)
    # 1 - r and r as exact count differences plus one rounding each.
    remaining = ((decay_whole - k) + decay_fraction) / decay_length
    if lr_decay_style == "linear":
      coeff = remaining
    elif lr_decay_style == "cosine":
      coeff = _half_cosine_of_remaining(remaining)
    else:  # WSD
      anneal = wsd_decay_steps / increment
      if anneal == 0:
        # The annealing starts at D itself and is never reached.
        return jnp.full_like(k, _float32(max_lr))
      start = decay - wsd_decay_steps
      last_stable = _last_count_within(start, increment)
      start_whole, start_fraction = _split(start, increment)
      # s and 1 - s, each from the counts, so neither cancels at its end.
      done = jnp.clip(
        ((k - start_whole) - start_fraction) / anneal, _ZERO, _ONE
      )
      to_go = jnp.clip(
        ((decay_whole - k) + decay_fraction) / anneal, _ZERO, _ONE
      )
      if lr_wsd_decay_style == "linear":
        annealed = to_go
      elif lr_wsd_decay_style == "cosine":
        annealed = _half_cosine_of_remaining(to_go)
      elif lr_wsd_decay_style == "exponential":
        # 2 * 0.5 ** s - 1 == 2 ** (1 - s) - 1, exact near the end.
        annealed = jnp.expm1(math.log(2.0) * to_go)
      else:  # minus_sqrt: 1 - sqrt(s) == (1 - s) / (1 + sqrt(s)).
        # sqrt has an infinite derivative at 0 (the unselected stable phase).
        root = jnp.where(
          done > 0, jnp.sqrt(jnp.where(done > 0, done, _ONE)), _ZERO
        )
        annealed = to_go / (1.0 + root)
      coeff = jnp.where(k <= last_stable, _ONE, annealed)
    return min_lr + coeff * delta

  def schedule(count):
    k = _counts(count)
    if lr_decay_style == "constant":
      value = jnp.full_like(k, _float32(max_lr))
    else:
      value = jnp.where(k > last_decay, _float32(min_lr), decayed(k))
    if warmup > 0:
      # (k - 0) * rate, from the counts: float(num_steps) / float(W) in the
      # original, with the increment folded into the rate.
      value = jnp.where(k <= last_warmup, init_lr + k * warmup_rate, value)
    return value

  return schedule


def megatron_wd_schedule(
  start_wd: float,
  end_wd: float,
  wd_incr_steps: float,
  wd_incr_style: str,
  *,
  increment: int = 1,
) -> optax.Schedule:
  r"""Megatron-LM's weight decay: ``OptimizerParamScheduler.get_wd``.

  With ``n = count * increment`` samples seen, ``I = wd_incr_steps``,
  :math:`\lambda_0` = ``start_wd`` and :math:`\lambda_1` = ``end_wd``:

  .. math::
    \lambda(n) = \begin{cases}
      \lambda_1 & n > I \text{ or constant} \\
      \lambda_0 + c(n / I)\,(\lambda_1 - \lambda_0) & \text{otherwise}
    \end{cases}

  with :math:`c(r) = r` (``linear``) or :math:`\tfrac12 (1 + \cos \pi (1 - r))`
  (``cosine``): the weight decay *grows* from ``start_wd`` to ``end_wd``.

  In one line: ``start + c(n/I) (end - start) if n <= I, else end``.
  Megatron multiplies it by each parameter group's ``wd_mult`` (0 for biases
  and 1-D parameters: a mask, see
  :func:`~bertadam_optax.transforms.add_scheduled_decayed_weights`).

  Args:
    start_wd: ``>= 0`` (``--start-weight-decay``, or ``--weight-decay``).
    end_wd: ``>= start_wd`` (``--end-weight-decay``, or ``--weight-decay``);
      equal to ``start_wd`` for ``constant``.
    wd_incr_steps: ``I >= 0``, in scheduler steps (Megatron-LM: the training
      length in samples); ``> 0`` unless ``constant``.
    wd_incr_style: one of :data:`WD_INCR_STYLES`.
    increment: scheduler steps per optimizer update, a positive integer.

  Returns:
    A function ``count -> weight decay`` (float32), pure and jittable.

  Raises:
    ValueError: where Megatron's scheduler asserts, naming the argument.

  Examples:
    >>> from bertadam_optax.schedules import megatron_wd_schedule
    >>> wd = megatron_wd_schedule(0.0, 0.1, 100, "linear")
    >>> [round(float(wd(k)), 6) for k in (0, 50, 100, 200)]
    [0.0, 0.05, 0.1, 0.1]

  References:
    megatron-core 0.16.1, ``megatron/core/optimizer_param_scheduler.py``
    (``OptimizerParamScheduler.get_wd``).
  """
  _validation.check_choice("wd_incr_style", wd_incr_style, WD_INCR_STYLES)
  start_wd = _static_or_traced("start_wd", start_wd, 0.0)
  end_wd = _static_or_traced("end_wd", end_wd, _bound(start_wd))
  increment = _check_increment(increment)
  if wd_incr_style == "constant":
    static = _bound(start_wd) is not None and _bound(end_wd) is not None
    if static and start_wd != end_wd:
      raise ValueError(
        f"start_wd={start_wd!r}, end_wd={end_wd!r}: wd_incr_style="
        "'constant' requires start_wd == end_wd."
      )
    steps = _validation.to_float("wd_incr_steps", wd_incr_steps, 0.0)
  else:
    steps = _validation.to_float(
      "wd_incr_steps", wd_incr_steps, 0.0, low_inclusive=False
    )
  delta = end_wd - start_wd
  last_incr = _last_count_within(steps, increment)
  per_count = increment / steps if steps > 0 else 0.0

  def schedule(count):
    k = _counts(count)
    if wd_incr_style == "constant":
      return jnp.full_like(k, _float32(end_wd))
    ratio = jnp.clip(k * per_count, _ZERO, _ONE)
    if wd_incr_style == "linear":
      coeff = ratio
    else:  # 0.5 * (1 + cos(pi (1 - r))) == sin(pi r / 2) ** 2
      coeff = jnp.square(jnp.sin(0.5 * math.pi * ratio))
    return jnp.where(k > last_incr, _float32(end_wd), start_wd + coeff * delta)

  return schedule


def _build_lr(style: str):
  """``megatron_lr_schedule`` of ``style`` from the registry's uniform options.

  ``lr`` is ``--lr``, ``min_lr`` ``--min-lr`` (default 0), ``t_total`` the
  decay length ``D`` and the warmup (a fraction of it, or steps) ``W``; for
  ``WSD`` the annealing length defaults to a tenth of ``D`` and its style to
  ``linear`` (``--set wsd_decay_steps=... lr_wsd_decay_style=...``).
  """
  name = "megatron." + style

  def build(opts: _table.Options, extra: dict[str, Any]) -> optax.Schedule:
    extra = dict(extra)
    if style == "WSD":
      extra.setdefault("wsd_decay_steps", max(1, opts.t_total // 10))
      extra.setdefault("lr_wsd_decay_style", "linear")
    return megatron_lr_schedule(
      opts.lr,
      0.0 if opts.min_lr is None else opts.min_lr,
      _table.warmup_steps(name, opts),
      opts.t_total,
      style,
      **extra,
    )

  return build


def _build_wd(style: str):
  """``megatron_wd_schedule`` of ``style``: it grows from ``min_lr`` to ``lr``.

  The registry's options are learning-rate options: ``min_lr`` is the start
  weight decay (default 0), ``lr`` the end weight decay and ``t_total`` the
  increment length ``I``.
  """

  def build(opts: _table.Options, extra: dict[str, Any]) -> optax.Schedule:
    start = 0.0 if opts.min_lr is None else opts.min_lr
    end = start if style == "constant" else opts.lr
    return megatron_wd_schedule(start, end, opts.t_total, style, **extra)

  return build


# min_lr (--min-lr, --start-weight-decay) is optional: Megatron's default is 0.
_LR_KEYWORDS = {
  "max_lr": "lr",
  "lr_warmup_steps": "warmup",
  "lr_decay_steps": "t_total",
}
_WD_KEYWORDS = {"end_wd": "lr", "wd_incr_steps": "t_total"}

ENTRIES: tuple[_table.ScheduleInfo, ...] = tuple(
  _table.entry(
    "megatron",
    style,
    megatron_lr_schedule,
    _build_lr(style),
    keywords=_LR_KEYWORDS,
    required=("t_total", "warmup"),
    optional=("min_lr",),
  )
  for style in LR_DECAY_STYLES
) + tuple(
  _table.entry(
    "megatron",
    "wd_" + style,
    megatron_wd_schedule,
    _build_wd(style),
    keywords=_WD_KEYWORDS,
    required=("t_total",),
    optional=("min_lr",),
  )
  for style in WD_INCR_STYLES
)
"""This module's rows of the schedule registry: ``megatron.<style>`` for each
``--lr-decay-style`` and ``megatron.wd_<style>`` for each
``--weight-decay-incr-style`` (``lr`` is then the end and ``min_lr`` the start
weight decay)."""
