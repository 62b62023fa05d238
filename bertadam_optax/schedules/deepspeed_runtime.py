r"""DeepSpeed's runtime learning-rate schedulers, as pure JAX functions.

Holds one factory per scheduler, :func:`deepspeed_schedule` (a config's
"scheduler" section), and ``ENTRIES``, their rows of the schedule registry.

Reproduces the five schedulers of ``deepspeed.runtime.lr_schedules`` (the ones
a ``ds_config.json`` "scheduler" section names), with DeepSpeed's keyword
names and defaults:

==================  ==========================  ===============================
DeepSpeed class     here                        shape
==================  ==========================  ===============================
``WarmupLR``        :func:`warmup_lr`           log/linear warmup, then flat
``WarmupDecayLR``   :func:`warmup_decay_lr`     warmup, then linear decay
``WarmupCosineLR``  :func:`warmup_cosine_lr`    warmup ratio, then cosine ratio
``OneCycle``        :func:`one_cycle`,          up, down, then ``1/(1+r t)``
                    :func:`one_cycle_momentum`  decay (lr and beta1)
``LRRangeTest``     :func:`lr_range_test`       linear (or stepped) increase
==================  ==========================  ===============================

:func:`deepspeed_schedule` builds one from the config's ``type`` and
``params``.

The contract is DeepSpeed's engine loop, not the class formulas on their own:
the scheduler is constructed (which already writes a learning rate into the
optimizer), and every step runs ``optimizer.step()`` then
``lr_scheduler.step()``. The value at count ``k`` here is the learning rate
the ``k``-th optimizer step (0-based) applies: the constructor's value at
``k = 0``, and DeepSpeed's ``get_lr()`` with ``last_batch_iteration = k - 1``
for ``k >= 1``. That off-by-one is why, for example, a linear warmup applies
``warmup_min_lr`` twice and a cosine decay starts one step late.

Every branch on the step is decided on whole step counts against integers
fixed at construction, so the switch points are exact under ``jax.jit`` for
every count below ``2**24``; values are float32.
"""

from __future__ import annotations

import inspect
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
  "DEEPSPEED_SCHEDULERS",
  "ONE_CYCLE_BETA2",
  "deepspeed_momentum_schedule",
  "deepspeed_schedule",
  "lr_range_test",
  "one_cycle",
  "one_cycle_momentum",
  "warmup_cosine_lr",
  "warmup_decay_lr",
  "warmup_lr",
]

_WARMUP_TYPES = ("log", "linear")

# OneCycle with cycle_momentum writes ``(beta1, 0.99)`` into every param group
# that has betas, whatever beta2 the optimizer was configured with.
ONE_CYCLE_BETA2 = 0.99

_INT32_LIMIT = 2**31


def _check_steps(name: str, value: Any, low: int | None) -> int:
  return _validation.check_int(name, value, low)


def _check_lr(name: str, value: Any) -> Any:
  # A number, not a per-param-group list (an optax schedule has one value for
  # the whole tree) nor a schedule.
  return _common.static_float(_validation.check_number(name, value, 0))


def _warmup_length(warmup_num_steps: Any) -> int:
  # DeepSpeed raises for a non-positive count, then silently lengthens a
  # 1-step warmup to 2 steps (``max(2, warmup_num_steps)``).
  return max(2, _check_steps("warmup_num_steps", warmup_num_steps, 1))


def _warmup_fraction(
  last: jnp.ndarray, length: int, warmup_type: str
) -> jnp.ndarray:
  """DeepSpeed's warmup gamma at ``last_batch_iteration = last`` (< length)."""
  if warmup_type == "log":
    return jnp.log1p(last) * (1.0 / math.log(length))
  return last / length


def _steps(count) -> tuple[jnp.ndarray, jnp.ndarray]:
  """The count as float32, and ``last_batch_iteration`` of the step it runs.

  Step 0 runs with the constructor's value; DeepSpeed's formulas there equal
  their value at ``last_batch_iteration = 0`` except where a factory says
  otherwise, so ``last`` is clamped at 0.
  """
  step = jnp.asarray(count, jnp.float32)
  return step, jnp.maximum(step - 1.0, 0.0)


def warmup_lr(
  warmup_min_lr: float = 0.0,
  warmup_max_lr: float | None = None,
  warmup_num_steps: int = 1000,
  warmup_type: str = "log",
  *,
  learning_rate: float | None = None,
) -> optax.Schedule:
  r"""DeepSpeed's ``WarmupLR``: warm up from a minimum to a maximum, then hold.

  With :math:`W = \max(2, \text{warmup\_num\_steps})` and
  :math:`m = \max(k - 1, 0)` (DeepSpeed's ``last_batch_iteration`` at step k):

  .. math::
    \eta(k) = \eta_{\min} + (\eta_{\max} - \eta_{\min})\,\gamma(m), \qquad
    \gamma(m) = \begin{cases}
      \log(m + 1) / \log W & m < W,\ \text{log} \\
      m / W & m < W,\ \text{linear} \\
      1 & m \ge W \end{cases}

  DeepSpeed behaviours reproduced: steps 0 and 1 both apply
  ``warmup_min_lr`` (the constructor sets it, and the first
  ``lr_scheduler.step()`` computes gamma at 0); a log warmup reaches the
  maximum at step ``W``, a linear one only at step ``W + 1``; a
  ``warmup_num_steps`` of 1 warms up over 2 steps. Deviation: an unknown
  ``warmup_type`` raises instead of falling back to ``"log"`` with a warning.

  In one line: ``min_lr + (lr - min_lr) log(s)/log(W) while s < W, then lr``.

  Args:
    warmup_min_lr: learning rate at the start (>= 0).
    warmup_max_lr: learning rate after warmup (>= 0). ``None`` means the
      optimizer's learning rate, as DeepSpeed reads it from the param group.
    warmup_num_steps: warmup length in steps (a whole number >= 1).
    warmup_type: ``"log"`` or ``"linear"``.
    learning_rate: the optimizer's learning rate; used only when
      ``warmup_max_lr`` is ``None``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import warmup_lr
    >>> schedule = warmup_lr(warmup_min_lr=0.0, warmup_max_lr=1e-3,
    ...                      warmup_num_steps=10)
    >>> # Step k uses m = k - 1: log(4) / log(10) of the way at step 4.
    >>> [round(float(schedule(k)), 7) for k in (0, 1, 4, 10, 100)]
    [0.0, 0.0, 0.0006021, 0.001, 0.001]

  References:
    DeepSpeed, ``deepspeed/runtime/lr_schedules.py``, ``WarmupLR``.
  """
  if learning_rate is not None:
    learning_rate = _check_lr("learning_rate", learning_rate)
  if warmup_max_lr is None:
    if learning_rate is None:
      raise ValueError(
        "warmup_max_lr=None: WarmupLR then uses the optimizer's "
        "learning rate; pass learning_rate= or warmup_max_lr."
      )
    warmup_max_lr = learning_rate
    max_name = "learning_rate"
  else:
    max_name = "warmup_max_lr"
  warmup_min_lr = _check_lr("warmup_min_lr", warmup_min_lr)
  warmup_max_lr = _check_lr(max_name, warmup_max_lr)
  length = _warmup_length(warmup_num_steps)
  _validation.check_choice("warmup_type", warmup_type, _WARMUP_TYPES)

  def schedule(count):
    _, last = _steps(count)
    gamma = _join.warmup_then(
      last,
      length,
      _warmup_fraction(last, length, warmup_type),
      jnp.float32(1.0),
    )
    return warmup_min_lr + (warmup_max_lr - warmup_min_lr) * gamma

  return schedule


def warmup_decay_lr(
  total_num_steps: int,
  warmup_min_lr: float = 0.0,
  warmup_max_lr: float = 0.001,
  warmup_num_steps: int = 1000,
  warmup_type: str = "log",
) -> optax.Schedule:
  r"""DeepSpeed's ``WarmupDecayLR``: :func:`warmup_lr`, then a linear decay.

  With :math:`W`, :math:`m` and :math:`\gamma` as in :func:`warmup_lr` and
  :math:`T` = ``total_num_steps``, past the warmup (:math:`m \ge W`):

  .. math::
    \gamma(m) = \max\left(0, \frac{T - m}{\max(1, T - W)}\right)

  DeepSpeed behaviours reproduced: the warmup quirks of :func:`warmup_lr`;
  ``warmup_max_lr`` defaults to 0.001 (not to the optimizer's learning rate,
  which this scheduler ignores); because of the one-step lag the learning
  rate reaches ``warmup_min_lr`` only at step ``T + 1`` and holds it there;
  with ``T < W`` it drops from the maximum straight to ``warmup_min_lr``
  when the warmup ends.

  In one line: ``WarmupLR, then lr * (T - s)/(T - W) down to 0``.

  Args:
    total_num_steps: ``T``, where the decay ends (a whole number >= 0).
    warmup_min_lr: learning rate at the start and the end (>= 0).
    warmup_max_lr: learning rate after warmup (>= 0).
    warmup_num_steps: warmup length in steps (a whole number >= 1).
    warmup_type: ``"log"`` or ``"linear"``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import warmup_decay_lr
    >>> schedule = warmup_decay_lr(110, warmup_max_lr=1e-3, warmup_num_steps=10)
    >>> # Decay over m = 10..110: half way at step 61, 0 from step 111 on.
    >>> [round(float(schedule(k)), 7) for k in (0, 10, 11, 61, 110, 111, 200)]
    [0.0, 0.001, 0.001, 0.0005, 1e-05, 0.0, 0.0]

  References:
    DeepSpeed, ``deepspeed/runtime/lr_schedules.py``, ``WarmupDecayLR``.
  """
  total = _check_steps("total_num_steps", total_num_steps, 0)
  warmup_min_lr = _check_lr("warmup_min_lr", warmup_min_lr)
  warmup_max_lr = _check_lr("warmup_max_lr", warmup_max_lr)
  length = _warmup_length(warmup_num_steps)
  _validation.check_choice("warmup_type", warmup_type, _WARMUP_TYPES)
  decay_length = float(max(1, total - length))

  def schedule(count):
    _, last = _steps(count)
    decay = jnp.maximum(0.0, (total - last) / decay_length)
    gamma = _join.warmup_then(
      last, length, _warmup_fraction(last, length, warmup_type), decay
    )
    return warmup_min_lr + (warmup_max_lr - warmup_min_lr) * gamma

  return schedule


def warmup_cosine_lr(
  total_num_steps: int,
  warmup_min_ratio: float = 0.0,
  warmup_num_steps: int = 1000,
  cos_min_ratio: float = 0.0001,
  warmup_type: str = "log",
  *,
  learning_rate: float,
) -> optax.Schedule:
  r"""DeepSpeed's ``WarmupCosineLR``: a ratio of the optimizer's learning rate.

  With :math:`W`, :math:`m` and the warmup fraction :math:`\gamma` as in
  :func:`warmup_lr`, :math:`T` = ``total_num_steps``, :math:`D = \max(1, T -
  W)` and :math:`p = \min(1, (k - W) / D)`:

  .. math::
    \eta(k) = \eta_0 \begin{cases}
      0 & k = 0 \\
      r_w + (1 - r_w)\,\gamma(m) & m < W \\
      \max\left(0, r_c + (1 - r_c)\,\tfrac12 (1 + \cos \pi p)\right)
        & \text{otherwise} \end{cases}

  DeepSpeed behaviours reproduced: step 0 applies a learning rate of exactly
  0 (the constructor writes ``0.0 * lr``, not the warmup's start); the cosine
  starts one step past its peak (``p = 1 / D`` on the first step after
  warmup) and holds ``cos_min_ratio`` from step ``T`` on, including when
  ``T <= W``; the warmup quirks of :func:`warmup_lr`.

  In one line: ``lr * warmup ratio while s < W, then a cosine ratio down to
  min_lr/lr``.

  Args:
    total_num_steps: ``T`` (a whole number >= 0).
    warmup_min_ratio: ratio ``r_w`` at the start of warmup (>= 0).
    warmup_num_steps: warmup length in steps (a whole number >= 1).
    cos_min_ratio: ratio ``r_c`` at the end of the cosine (>= 0).
    warmup_type: ``"log"`` or ``"linear"``.
    learning_rate: ``eta_0``, the optimizer's learning rate (>= 0), which
      DeepSpeed scales.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import warmup_cosine_lr
    >>> schedule = warmup_cosine_lr(110, warmup_num_steps=10, cos_min_ratio=0.1,
    ...                             warmup_type="linear", learning_rate=1e-3)
    >>> # Step 60: p = 0.5, ratio 0.1 + 0.9 * 0.5. Step 11 is past the peak.
    >>> [round(float(schedule(k)), 7) for k in (0, 1, 6, 10, 11, 60, 110, 200)]
    [0.0, 0.0, 0.0005, 0.0009, 0.0009998, 0.00055, 0.0001, 0.0001]

  References:
    DeepSpeed, ``deepspeed/runtime/lr_schedules.py``, ``WarmupCosineLR``.
  """
  total = _check_steps("total_num_steps", total_num_steps, 0)
  warmup_min_ratio = _check_lr("warmup_min_ratio", warmup_min_ratio)
  length = _warmup_length(warmup_num_steps)
  if total < warmup_num_steps:
    # DeepSpeed only logs a warning, then never reaches the cosine.
    raise ValueError(
      f"total_num_steps={total_num_steps!r} is out of range; WarmupCosineLR "
      f"expects total_num_steps >= warmup_num_steps={warmup_num_steps!r}."
    )
  cos_min_ratio = _check_lr("cos_min_ratio", cos_min_ratio)
  _validation.check_choice("warmup_type", warmup_type, _WARMUP_TYPES)
  learning_rate = _check_lr("learning_rate", learning_rate)
  decay_length = float(max(1, total - length))

  def schedule(count):
    step, last = _steps(count)
    warm = warmup_min_ratio + (1.0 - warmup_min_ratio) * _warmup_fraction(
      last, length, warmup_type
    )
    # 0.5 (1 + cos(pi p)) == sin(pi (1 - p) / 2) ** 2, with 1 - p from whole
    # step counts: no cancellation as the cosine reaches its floor.
    remaining = jnp.maximum(0.0, decay_length - (step - length)) / decay_length
    cosine = jnp.square(jnp.sin(0.5 * math.pi * remaining))
    decay = jnp.maximum(0.0, cos_min_ratio + (1.0 - cos_min_ratio) * cosine)
    ratio = _join.warmup_then(last, length, warm, decay)
    return learning_rate * jnp.where(step == 0, jnp.float32(0.0), ratio)

  return schedule


def _one_cycle_shape(
  cycle_first_step_size,
  cycle_second_step_size,
  cycle_first_stair_count,
  cycle_second_stair_count,
  decay_step_size,
):
  """Validates OneCycle's cycle shape; returns ``(scale, total, decay)``.

  ``scale(count)`` is DeepSpeed's ``_get_scale_factor`` at ``batch_iteration
  = count`` (0 at both ends of the cycle, 1 at its peak), for counts within
  the cycle; ``total`` is the cycle length; ``decay`` the decay step size,
  or None when DeepSpeed skips the post-cycle decay.
  """
  first = _check_steps("cycle_first_step_size", cycle_first_step_size, 1)
  second = (
    first
    if cycle_second_step_size is None
    else _check_steps("cycle_second_step_size", cycle_second_step_size, 0)
  )
  first_stairs = _check_steps(
    "cycle_first_stair_count", cycle_first_stair_count, -_INT32_LIMIT
  )
  second_stairs = (
    first_stairs
    if cycle_second_stair_count is None
    else (
      _check_steps(
        "cycle_second_stair_count", cycle_second_stair_count, -_INT32_LIMIT
      )
    )
  )
  decay_step_size = _validation.check_int("decay_step_size", decay_step_size, 0)
  total = first + second
  for name, stairs in (
    ("cycle_first_stair_count", first_stairs),
    ("cycle_second_stair_count", second_stairs),
  ):
    # Stair positions are computed as int32 products of a step and a count.
    if stairs > 0 and total * stairs >= _INT32_LIMIT:
      raise ValueError(
        f"{name}={stairs!r} is out of range with a cycle of {total} steps; "
        f"expected (cycle length) * {name} < 2**31."
      )

  def half(offset, size, stairs):
    """Fraction of a half cycle covered ``offset`` steps into it."""
    if size == 0:
      return jnp.zeros(offset.shape, jnp.float32)
    if stairs > 0:
      # DeepSpeed floors the exact stair position; an integer floor division
      # is exact where float32 ``offset * stairs / size`` may land an ulp low.
      return (
        jnp.floor_divide(offset * stairs, size).astype(jnp.float32) / stairs
      )
    return offset.astype(jnp.float32) / size

  def scale(count):
    b = jnp.clip(jnp.asarray(count, jnp.int32), 0, total)
    value = jnp.where(
      b <= first,
      half(b, first, first_stairs),
      half(total - b, second, second_stairs),
    )
    # At ``batch_iteration == total`` DeepSpeed's cycle index has already
    # moved on to the next cycle, whose scale starts at 0.
    return jnp.where(b >= total, jnp.float32(0.0), value)

  decay = None if decay_step_size == 0 else float(decay_step_size)
  return scale, total, decay


def one_cycle(
  cycle_min_lr: float,
  cycle_max_lr: float,
  decay_lr_rate: float = 0.0,
  cycle_first_step_size: int = 2000,
  cycle_second_step_size: int | None = None,
  cycle_first_stair_count: int = 0,
  cycle_second_stair_count: int | None = None,
  decay_step_size: int = 0,
) -> optax.Schedule:
  r"""DeepSpeed's ``OneCycle`` learning rate: one triangle, then a slow decay.

  With :math:`F` = ``cycle_first_step_size``, :math:`S = F +`
  ``cycle_second_step_size`` and :math:`s(k)` the cycle's scale
  (:math:`k / F` up to the peak, then :math:`(S - k) / (S - F)`, 0 at
  :math:`k = S`; with a stair count :math:`n > 0` for a half,
  :math:`\lfloor s n \rfloor / n` there):

  .. math::
    \eta(k) = \begin{cases}
      \eta_{\min} + (\eta_{\max} - \eta_{\min})\, s(k) & k \le S \\
      \eta_{\min} / (1 + \rho\,(k - S) / d) & k > S
    \end{cases}

  where :math:`\rho` = ``decay_lr_rate`` and :math:`d` = ``decay_step_size``;
  with :math:`\rho = 0` or :math:`d = 0` the rate stays at
  :math:`\eta_{\min}` after the cycle. The decay is continuous, not stepped
  every :math:`d` steps.

  DeepSpeed behaviours reproduced: step ``k`` applies the scale at
  ``batch_iteration = k`` (its ``last_batch_iteration + 1`` cancels the
  engine's one-step lag); the cycle's last step, ``k = S``, is already back at
  ``cycle_min_lr``; a stair count <= 0 (the command line's default -1)
  disables the stairs. Deviations: step sizes must be whole numbers (DeepSpeed
  takes any float), and the optimizer's own learning rate is ignored, as
  DeepSpeed overwrites it.

  In one line: ``min_lr up to lr over W steps, back over W more, then
  min_lr / (1 + decay_rate (s - 2W) / decay_steps)``.

  Args:
    cycle_min_lr: lower learning rate of the cycle (>= 0).
    cycle_max_lr: upper learning rate of the cycle (>= 0).
    decay_lr_rate: ``rho`` (>= 0).
    cycle_first_step_size: steps of the rising half (>= 1).
    cycle_second_step_size: steps of the falling half (>= 0); ``None`` means
      ``cycle_first_step_size``.
    cycle_first_stair_count: stairs in the rising half (<= 0: none).
    cycle_second_stair_count: stairs in the falling half; ``None`` means
      ``cycle_first_stair_count``.
    decay_step_size: ``d`` (>= 0; 0 disables the decay).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import one_cycle
    >>> schedule = one_cycle(1e-4, 1e-3, decay_lr_rate=0.5,
    ...                      cycle_first_step_size=10, decay_step_size=10)
    >>> # Up over 10 steps, down over 10, then 1e-4 / (1 + 0.5 (k - 20) / 10).
    >>> [round(float(schedule(k)), 7) for k in (0, 5, 10, 15, 20, 40)]
    [0.0001, 0.00055, 0.001, 0.00055, 0.0001, 5e-05]

  References:
    DeepSpeed, ``deepspeed/runtime/lr_schedules.py``, ``OneCycle``; Smith,
    `A disciplined approach to neural network hyper-parameters
    <https://arxiv.org/abs/1803.09820>`_, 2018.
  """
  cycle_min_lr = _check_lr("cycle_min_lr", cycle_min_lr)
  cycle_max_lr = _check_lr("cycle_max_lr", cycle_max_lr)
  decay_lr_rate = _check_lr("decay_lr_rate", decay_lr_rate)
  scale, total, decay = _one_cycle_shape(
    cycle_first_step_size,
    cycle_second_step_size,
    cycle_first_stair_count,
    cycle_second_stair_count,
    decay_step_size,
  )

  def schedule(count):
    step = jnp.asarray(count, jnp.float32)
    cycle = cycle_min_lr + (cycle_max_lr - cycle_min_lr) * scale(count)
    if decay is None:
      after = jnp.full_like(step, cycle_min_lr)
    else:
      after = cycle_min_lr / (1.0 + decay_lr_rate * (step - total) / decay)
    return jnp.where(step <= total, cycle, after)

  return schedule


def one_cycle_momentum(
  cycle_min_mom: float = 0.8,
  cycle_max_mom: float = 0.9,
  decay_mom_rate: float = 0.0,
  cycle_first_step_size: int = 2000,
  cycle_second_step_size: int | None = None,
  cycle_first_stair_count: int = 0,
  cycle_second_stair_count: int | None = None,
  decay_step_size: int = 0,
) -> optax.Schedule:
  r"""DeepSpeed's ``OneCycle`` momentum: beta1, moving opposite the rate.

  With :math:`s(k)`, :math:`S` and :math:`d` as in :func:`one_cycle` and
  :math:`\rho` = ``decay_mom_rate``:

  .. math::
    \beta_1(k) = \begin{cases}
      \mu_{\min} & k = 0 \\
      \mu_{\max} - (\mu_{\max} - \mu_{\min})\, s(k) & 1 \le k \le S \\
      \mu_{\max}\,(1 + \rho\,(k - S) / d) & k > S
    \end{cases}

  DeepSpeed behaviours reproduced, all surprising: step 0 runs with
  ``cycle_min_mom`` (the constructor's value) although the cycle starts at
  ``cycle_max_mom`` on step 1; the post-cycle "decay" *multiplies* by
  :math:`1 + \rho t`, so with :math:`\rho > 0` beta1 grows and eventually
  passes 1; and DeepSpeed writes ``(beta1, 0.99)`` into the optimizer, so
  beta2 is :data:`ONE_CYCLE_BETA2` on every step whatever the optimizer's
  betas were (this schedule gives beta1 only). DeepSpeed cycles the momentum
  only for optimizers with ``betas``.

  Args:
    cycle_min_mom: lower beta1 of the cycle, in [0, 1].
    cycle_max_mom: upper beta1 of the cycle, in [0, 1].
    decay_mom_rate: ``rho`` (>= 0).
    cycle_first_step_size: as in :func:`one_cycle`.
    cycle_second_step_size: as in :func:`one_cycle`.
    cycle_first_stair_count: as in :func:`one_cycle`.
    cycle_second_stair_count: as in :func:`one_cycle`.
    decay_step_size: as in :func:`one_cycle`.

  Returns:
    A function ``count -> beta1``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import one_cycle_momentum
    >>> beta1 = one_cycle_momentum(0.85, 0.95, cycle_first_step_size=10)
    >>> # Step 0 is the constructor's cycle_min_mom; the cycle starts at 0.95.
    >>> [round(float(beta1(k)), 6) for k in (0, 1, 10, 15, 20, 30)]
    [0.85, 0.94, 0.85, 0.9, 0.95, 0.95]

  References:
    DeepSpeed, ``deepspeed/runtime/lr_schedules.py``, ``OneCycle``.
  """
  for name, value in (
    ("cycle_min_mom", cycle_min_mom),
    ("cycle_max_mom", cycle_max_mom),
  ):
    _validation.check_number(name, value, 0.0, 1.0)
  _validation.check_number("decay_mom_rate", decay_mom_rate, 0)
  cycle_min_mom, cycle_max_mom, decay_mom_rate = (
    _common.static_float(v)
    for v in (cycle_min_mom, cycle_max_mom, decay_mom_rate)
  )
  scale, total, decay = _one_cycle_shape(
    cycle_first_step_size,
    cycle_second_step_size,
    cycle_first_stair_count,
    cycle_second_stair_count,
    decay_step_size,
  )

  def schedule(count):
    step = jnp.asarray(count, jnp.float32)
    cycle = cycle_max_mom - (cycle_max_mom - cycle_min_mom) * scale(count)
    if decay is None:
      after = jnp.full_like(step, cycle_max_mom)
    else:
      after = cycle_max_mom * (1.0 + decay_mom_rate * (step - total) / decay)
    value = jnp.where(step <= total, cycle, after)
    return jnp.where(step == 0, jnp.full_like(step, cycle_min_mom), value)

  return schedule


def lr_range_test(
  lr_range_test_min_lr: float = 1e-3,
  lr_range_test_step_size: int = 2000,
  lr_range_test_step_rate: float = 1.0,
  lr_range_test_staircase: bool = False,
) -> optax.Schedule:
  r"""DeepSpeed's ``LRRangeTest``: a learning rate that grows without bound.

  .. math::
    \eta(k) = \eta_{\min} \left(1 + \rho\, t(k)\right), \qquad
    t(k) = \begin{cases} \lfloor k / n \rfloor & \text{staircase} \\
                         k / n & \text{otherwise} \end{cases}

  with :math:`\rho` = ``lr_range_test_step_rate`` and :math:`n` =
  ``lr_range_test_step_size``. DeepSpeed's ``last_batch_iteration + 1``
  cancels the engine's one-step lag, so step ``k`` sees ``k``.

  In one line: ``lr * (1 + step_rate * s / step_size), growing without
  bound``.

  Args:
    lr_range_test_min_lr: learning rate at step 0 (>= 0).
    lr_range_test_step_size: ``n`` (a whole number >= 1).
    lr_range_test_step_rate: ``rho`` (>= 0).
    lr_range_test_staircase: grow in steps of ``n`` instead of continuously.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import lr_range_test
    >>> schedule = lr_range_test(1e-3, lr_range_test_step_size=10,
    ...                          lr_range_test_step_rate=1.0)
    >>> [round(float(schedule(k)), 7) for k in (0, 5, 10, 100)]
    [0.001, 0.0015, 0.002, 0.011]
    >>> stairs = lr_range_test(1e-3, 10, 1.0, lr_range_test_staircase=True)
    >>> [round(float(stairs(k)), 7) for k in (0, 5, 10, 19, 20)]
    [0.001, 0.001, 0.002, 0.002, 0.003]

  References:
    DeepSpeed, ``deepspeed/runtime/lr_schedules.py``, ``LRRangeTest``.
  """
  lr_range_test_min_lr = _check_lr("lr_range_test_min_lr", lr_range_test_min_lr)
  size = _check_steps("lr_range_test_step_size", lr_range_test_step_size, 1)
  lr_range_test_step_rate = _check_lr(
    "lr_range_test_step_rate", lr_range_test_step_rate
  )
  lr_range_test_staircase = _validation.check_bool(
    "lr_range_test_staircase", lr_range_test_staircase
  )

  def schedule(count):
    if lr_range_test_staircase:
      interval = jnp.floor_divide(jnp.asarray(count, jnp.int32), size).astype(
        jnp.float32
      )
    else:
      interval = jnp.asarray(count, jnp.float32) / size
    return lr_range_test_min_lr * (1.0 + lr_range_test_step_rate * interval)

  return schedule


def _build(source: str):
  """``deepspeed_schedule(source, params)`` from the uniform options."""
  name = "deepspeed_runtime." + source

  def build(opts: _table.Options, extra: dict[str, Any]) -> optax.Schedule:
    if source == "LRRangeTest":
      params = {"lr_range_test_min_lr": opts.lr}
    elif source == "OneCycle":
      params = _table.drop_none(
        cycle_min_lr=opts.min_lr,
        cycle_max_lr=opts.lr,
        cycle_first_step_size=_table.warmup_steps(name, opts),
        decay_lr_rate=opts.decay_rate,
        decay_step_size=opts.decay_steps,
      )
    elif source == "WarmupLR":
      params = _table.drop_none(
        warmup_min_lr=opts.min_lr,
        warmup_max_lr=opts.lr,
        warmup_num_steps=_table.warmup_steps(name, opts),
      )
    elif source == "WarmupDecayLR":
      params = _table.drop_none(
        total_num_steps=opts.t_total,
        warmup_min_lr=opts.min_lr,
        warmup_max_lr=opts.lr,
        warmup_num_steps=_table.warmup_steps(name, opts),
      )
    else:
      # WarmupCosineLR: a ratio of the learning rate, so the floor is one too.
      ratio = (
        None if opts.min_lr is None else _table.ratio(opts.min_lr, opts.lr)
      )
      params = _table.drop_none(
        total_num_steps=opts.t_total,
        warmup_num_steps=_table.warmup_steps(name, opts),
        cos_min_ratio=ratio,
      )
    return deepspeed_schedule(
      source, {**params, **extra}, learning_rate=opts.lr
    )

  return build


# The factories' keywords that are uniform options of the registry.
_KEYWORDS = {
  "learning_rate": "lr",
  "warmup_max_lr": "lr",
  "cycle_max_lr": "lr",
  "lr_range_test_min_lr": "lr",
  "total_num_steps": "t_total",
  "warmup_num_steps": "warmup",
  "cycle_first_step_size": "warmup",
  "warmup_min_lr": "min_lr",
  "cos_min_ratio": "min_lr",
  "cycle_min_lr": "min_lr",
  "decay_lr_rate": "decay_rate",
  "decay_step_size": "decay_steps",
}

ENTRIES: tuple[_table.ScheduleInfo, ...] = tuple(
  # Every warmup is required: the uniform options give it as steps or as a
  # fraction of t_total, never as DeepSpeed's default of 1000 steps.
  _table.entry(
    "deepspeed_runtime",
    source,
    factory,
    _build(source),
    keywords=_KEYWORDS,
    required=("warmup",) if source != "LRRangeTest" else (),
  )
  for source, factory in (
    ("WarmupLR", warmup_lr),
    ("WarmupDecayLR", warmup_decay_lr),
    ("WarmupCosineLR", warmup_cosine_lr),
    ("OneCycle", one_cycle),
    ("LRRangeTest", lr_range_test),
  )
)
"""This module's rows of the schedule registry
(``deepspeed_runtime.<type>``), in the order of :data:`DEEPSPEED_SCHEDULERS`."""


def _keys(
  factory: Callable[..., Any],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
  """The ``params`` keys of a scheduler (its factory's positional-or-keyword
  parameters; ``learning_rate`` comes from the optimizer), and the required
  ones.
  """
  params = [
    p
    for p in inspect.signature(factory).parameters.values()
    if p.kind == p.POSITIONAL_OR_KEYWORD
  ]
  return (
    tuple(p.name for p in params),
    tuple(p.name for p in params if p.default is p.empty),
  )


_FACTORIES = {e.source: (e.factory, *_keys(e.factory)) for e in ENTRIES}

DEEPSPEED_SCHEDULERS = tuple(_FACTORIES)
"""The scheduler ``type`` names of a ``ds_config.json`` that are supported."""

_ONE_CYCLE_SHAPE = tuple(
  k
  for k in _keys(one_cycle)[0]
  if k.startswith(("cycle_first", "cycle_second", "decay_step"))
)
_ONE_CYCLE_MOMENTUM = tuple(
  k for k in _keys(one_cycle_momentum)[0] if k not in _ONE_CYCLE_SHAPE
)


def _split_params(type: str, params: Mapping[str, Any] | None):
  """Checks a config's params against DeepSpeed's constructor for ``type``.

  Returns the keyword arguments of the factory, and of
  :func:`one_cycle_momentum` (None unless OneCycle cycles the momentum).
  """
  _validation.check_choice("scheduler type", type, DEEPSPEED_SCHEDULERS)
  factory, keys, required = _FACTORIES[type]
  if params is not None and not isinstance(params, Mapping):
    raise ValueError(
      f"{type} params={params!r} is not a mapping; expected "
      "the section's keyword arguments, e.g. "
      '{"warmup_num_steps": 1000}.'
    )
  params = dict(params or {})
  extra = ("last_batch_iteration",)
  if type == "OneCycle":
    extra += ("cycle_momentum",) + _ONE_CYCLE_MOMENTUM
  for key in params:
    _validation.check_choice(f"{type} params key", key, keys + extra)
  for key in required:
    if params.get(key) is None:
      raise ValueError(
        f"{type} params[{key!r}]={params.get(key)!r}: {type} requires {key!r}."
      )
  last = params.pop("last_batch_iteration", -1)
  if last != -1:
    raise ValueError(
      f"{type} params['last_batch_iteration']={last!r} is not supported; "
      "expected -1 (resume by restoring the optimizer state's count)."
    )
  momentum = None
  if type == "OneCycle":
    cycle_momentum = params.pop("cycle_momentum", True)
    _validation.check_bool("OneCycle params['cycle_momentum']", cycle_momentum)
    momentum = {k: params.pop(k) for k in _ONE_CYCLE_MOMENTUM if k in params}
    if cycle_momentum:
      momentum.update({k: params[k] for k in _ONE_CYCLE_SHAPE if k in params})
    else:
      momentum = None
  return factory, params, momentum


def deepspeed_schedule(
  type: str,  # pylint: disable=redefined-builtin
  params: Mapping[str, Any] | None,
  *,
  learning_rate: float | None = None,
) -> optax.Schedule:
  r"""The schedule of a ``ds_config.json`` "scheduler" section.

  ``{"scheduler": {"type": type, "params": params}}`` becomes the factory of
  this module for ``type``, called with ``params`` as keyword arguments, as
  DeepSpeed's engine constructs the class. For ``OneCycle`` the momentum keys
  are checked too (the learning rate is returned; :func:`one_cycle_momentum`
  gives beta1).

  Args:
    type: one of :data:`DEEPSPEED_SCHEDULERS`.
    params: the section's ``params`` (DeepSpeed's keyword names).
    learning_rate: the optimizer's learning rate: WarmupCosineLR scales it
      (and requires it), WarmupLR uses it when ``warmup_max_lr`` is absent;
      the other schedulers overwrite it, as DeepSpeed does.

  Returns:
    A function ``count -> learning rate``, pure and jittable.


  Examples:
    >>> from bertadam_optax.schedules import deepspeed_schedule
    >>> schedule = deepspeed_schedule(
    ...     "WarmupDecayLR", {"total_num_steps": 100, "warmup_max_lr": 1e-3,
    ...                       "warmup_num_steps": 10, "warmup_type": "linear"})
    >>> # Step k applies DeepSpeed's get_lr() after k - 1 scheduler steps.
    >>> [round(float(schedule(k)), 7) for k in (0, 1, 6, 11, 56, 101, 200)]
    [0.0, 0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

  Raises:
    ValueError: an unknown type or params key (with the closest valid name),
      a missing required key, or a hyperparameter out of range.

  References:
    DeepSpeed, ``deepspeed/runtime/engine.py``, ``_scheduler_from_config``.
  """
  factory, kwargs, momentum = _split_params(type, params)
  if learning_rate is not None:
    # Read by WarmupLR and WarmupCosineLR only, but checked for every type.
    learning_rate = _check_lr("learning_rate", learning_rate)
  if momentum is not None:
    one_cycle_momentum(**momentum)
  if type == "WarmupCosineLR":
    if learning_rate is None:
      raise ValueError(
        "learning_rate=None: WarmupCosineLR scales the "
        "optimizer's learning rate; pass learning_rate=."
      )
    return factory(**kwargs, learning_rate=learning_rate)
  if type == "WarmupLR":
    if kwargs.get("warmup_max_lr") is None and learning_rate is None:
      raise ValueError(
        "WarmupLR params['warmup_max_lr'] is missing and learning_rate=None: "
        "WarmupLR then uses the optimizer's learning rate; give one."
      )
    return factory(**kwargs, learning_rate=learning_rate)
  return factory(**kwargs)


def deepspeed_momentum_schedule(
  type: str,  # pylint: disable=redefined-builtin
  params: Mapping[str, Any] | None,
) -> optax.Schedule | None:
  """The beta1 schedule of a "scheduler" section, or None if it sets none.

  Only ``OneCycle`` with ``cycle_momentum`` (its default) moves beta1:
  :func:`one_cycle_momentum` with the section's params. DeepSpeed applies it
  only to optimizers with ``betas`` (and sets beta2 to
  :data:`ONE_CYCLE_BETA2`); that choice is the caller's.

  Examples:
    >>> from bertadam_optax.schedules import deepspeed_momentum_schedule
    >>> beta1 = deepspeed_momentum_schedule(
    ...     "OneCycle", {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3,
    ...                  "cycle_first_step_size": 10})
    >>> # cycle_min_mom=0.8 and cycle_max_mom=0.9 by default.
    >>> [round(float(beta1(k)), 6) for k in (0, 1, 10, 20)]
    [0.8, 0.89, 0.8, 0.9]
    >>> print(deepspeed_momentum_schedule("WarmupLR", {"warmup_max_lr": 1e-3}))
    None

  Raises:
    ValueError: as :func:`deepspeed_schedule`.
  """
  _, _, momentum = _split_params(type, params)
  return None if momentum is None else one_cycle_momentum(**momentum)
