r"""BertAdam as a chain of Optax building blocks, and ``get_lr``.

:func:`bertadam` reproduces the ``BertAdam`` update of pytorch-pretrained-bert
0.6.2 and of DeepSpeed's bing_bert fork step for step, as

``clip -> scale_by_bertadam -> add_decayed_weights -> scale_by_learning_rate``

so the whole update compiles into one XLA computation. Its ``schedule`` names
are the DeepSpeed fork's (:data:`~bertadam_optax.schedules.SCHEDULES`); for
0.6.2's own schedules, whose ``warmup_linear`` differs, pass
``lr=schedules.pretrained_bert.pretrained_bert_schedule(...)`` with
``schedule=None``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax
import optax

from bertadam_optax import _validation
from bertadam_optax import schedules
from bertadam_optax import transforms
from bertadam_optax.transforms._state import stage_field

__all__ = ["bertadam", "get_lr"]

_CLIPS = ("per_tensor", "global", "none")

# DeepSpeed's formulas return 1 for every step when warmup == 0.
_CONSTANT_AT_ZERO_WARMUP = (
  "warmup_linear",
  "warmup_linear_decay_exp",
  "warmup_exp_decay_exp",
)


def _static(name: str, value: Any) -> None:
  # warmup and t_total decide Python branches and integer thresholds of the
  # schedule, so they cannot be traced values; a JAX array here is one that
  # optax.inject_hyperparams made (traced or not), NumPy values are fine.
  if isinstance(value, jax.Array) or callable(value):
    raise ValueError(
      f"{name}={value!r} must be a Python number: it fixes the schedule's "
      "structure at construction. With optax.inject_hyperparams, list it in "
      "static_args, e.g. optax.inject_hyperparams(bertadam, "
      "static_args=('warmup', 't_total'))."
    )


def _multiplier(
  schedule, warmup, t_total, schedule_kwargs
) -> tuple[Callable | None, float]:
  """The ``count -> multiplier`` (None: a constant rate) and ``lr_offset``."""
  if not (schedule is None or callable(schedule)):
    _validation.check_choice(
      "schedule", schedule, tuple(schedules.SCHEDULES) + ("none",)
    )
  if schedule_kwargs is not None and not isinstance(schedule_kwargs, Mapping):
    raise ValueError(
      f"schedule_kwargs={schedule_kwargs!r} is not a mapping; "
      "expected e.g. {'decay_rate': 0.99, 'decay_steps': 100} "
      "or None."
    )
  kwargs = dict(schedule_kwargs or {})
  lr_offset = kwargs.pop("lr_offset", 0.0)
  named = isinstance(schedule, str) and schedule != "none"
  if schedule_kwargs and (not named or t_total == -1):
    raise ValueError(
      f"schedule_kwargs={dict(schedule_kwargs)!r} would be ignored with "
      f"schedule={schedule!r}, t_total={t_total!r}; they apply only to a "
      "named schedule with t_total > 0."
    )
  if schedule is None or schedule == "none":
    return None, 0.0
  if callable(schedule):
    if warmup != -1 or t_total != -1:
      warnings.warn(
        f"bertadam(warmup={warmup!r}, t_total={t_total!r}) with a callable "
        "schedule: warmup and t_total are ignored, as in the original with "
        "an _LRSchedule object; the callable alone gives the multiplier.",
        stacklevel=3,
      )
    return schedule, 0.0
  if t_total == -1:
    if schedule in schedules.STEP_BASED:
      raise ValueError(
        f"t_total=-1 with schedule={schedule!r}: this schedule needs the "
        "total number of steps; expected t_total > 0."
      )
    if warmup != -1:
      warnings.warn(
        f"bertadam(t_total=-1, warmup={warmup!r}): as in the original "
        "BertAdam, t_total=-1 means a constant learning rate and the "
        "warmup and schedule are ignored.",
        stacklevel=3,
      )
    return None, 0.0
  if warmup == 0 and schedule in _CONSTANT_AT_ZERO_WARMUP:
    warnings.warn(
      f"bertadam(schedule={schedule!r}, warmup=0): as in the original, "
      "warmup=0 makes this a constant learning rate, not a decay. Use "
      "warmup=-1 for a decay without warmup.",
      stacklevel=3,
    )
  return schedules.bert_schedule(
    schedule, 1.0, t_total, warmup, **kwargs
  ), lr_offset


def bertadam(
  lr: optax.ScalarOrSchedule,
  warmup: float = -1,
  t_total: int = -1,
  schedule: str | Callable | None = "warmup_linear",
  b1: float = 0.9,
  b2: float = 0.999,
  e: float = 1e-6,
  weight_decay: float = 0.01,
  max_grad_norm: float = 1.0,
  *,
  weight_decay_mask: Any = None,
  clip: str = "per_tensor",
  bias_correction: bool = False,
  mu_dtype: Any = None,
  schedule_kwargs: Mapping[str, Any] | None = None,
) -> optax.GradientTransformation:
  r"""BertAdam: the BERT variant of Adam, as an Optax optimizer.

  For every parameter tensor ``p`` with gradient ``g``, at step ``k`` (the
  number of updates applied before this one):

  .. math::
    g &\leftarrow g \cdot
      \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right)
      \quad \text{(per tensor, if } c > 0) \\
    m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
    u &= \frac{m}{\sqrt{v} + \epsilon} + \lambda p \\
    p &\leftarrow p - \eta_k u, \qquad
    \eta_k = \eta \cdot f(k / T, w) \text{ if } T \ne -1 \text{ else } \eta

  with no bias correction, ``c = max_grad_norm``, ``lambda = weight_decay``,
  ``T = t_total``, ``w = warmup`` and ``f`` the schedule. The first update
  of a warmup schedule therefore has learning rate 0, as in the original.

  Deliberate deviations from the original: past ``t_total`` the decaying
  schedules hold at their final value instead of going negative or rising
  (see :func:`~bertadam_optax.schedules.bert_schedule`), and ``get_lr`` before
  the first step returns the rate of step 0 instead of ``[0]``.

  Args:
    lr: the learning rate, or an ``optax.Schedule`` of the count (then
      multiplied by the schedule's multiplier).
    warmup: warmup fraction of ``t_total`` in [0, 1), or -1 for none. A
      Python number (it fixes the schedule at construction).
    t_total: total number of steps; -1 means a constant learning rate. A
      Python number, as ``warmup``.
    schedule: one of :data:`~bertadam_optax.schedules.SCHEDULES`, ``'none'``
      or ``None`` (constant), or any callable ``count -> multiplier``. The
      three progress-based names are evaluated at ``k / t_total``; the three
      step-based ones at ``k`` with ``total_steps = t_total`` and need
      ``schedule_kwargs`` (``decay_rate``, ``decay_steps``, ...).
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    e: epsilon added to ``sqrt(v)``, >= 0.
    weight_decay: decoupled weight decay ``lambda`` >= 0, added to the update
      before the learning rate scales it.
    max_grad_norm: clipping norm; <= 0 disables clipping.
    weight_decay_mask: which leaves to decay (a pytree of bools or a function
      of the params, e.g. :func:`~bertadam_optax.bert_weight_decay_mask`);
      ``None`` decays every leaf, as the original's single param group does.
    clip: ``'per_tensor'`` (the original), ``'global'``
      (``optax.clip_by_global_norm`` semantics) or ``'none'``.
    bias_correction: apply Adam's bias correction (the original does not).
    mu_dtype: optional dtype of the first moment (e.g. ``jnp.bfloat16``).
    schedule_kwargs: extra keyword arguments of
      :func:`~bertadam_optax.schedules.bert_schedule` for a named schedule
      (``decay_rate``, ``decay_steps``, ``degree``, ``warm_degree``), and
      ``lr_offset``, an absolute learning rate added after scaling by ``lr``
      (``eta_k = lr * f + lr_offset``, as bing_bert's ``--lr_offset``).

  Returns:
    An ``optax.GradientTransformation``.

  Raises:
    ValueError: on any out-of-range hyperparameter, naming it.

  NaN or Inf gradients are not checked (nothing is validated inside traced
  code) and never stop a jitted step: as in PyTorch, a non-finite gradient
  makes its tensor's clipping coefficient NaN, so that tensor's moments and
  parameters become NaN (every tensor's, with ``clip='global'``). Wrap the
  optimizer in ``optax.apply_if_finite`` to skip such steps instead.

  With ``optax.inject_hyperparams``, ``lr``, ``weight_decay``, ``b1``, ``b2``,
  ``e`` and ``max_grad_norm`` can be injected; ``warmup`` and ``t_total``
  (and any callable that is not a schedule, such as ``weight_decay_mask``)
  must be listed in ``static_args``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from bertadam_optax import bertadam, get_lr
    >>> params = {'w': jnp.ones(3)}
    >>> tx = bertadam(1e-3, warmup=0.1, t_total=100)
    >>> state = tx.init(params)
    >>> updates, state = tx.update({'w': jnp.ones(3)}, state, params)
    >>> updates['w'].tolist()  # the first warmup step has learning rate 0
    [-0.0, -0.0, -0.0]
    >>> round(float(get_lr(state)), 8)  # 1e-3 * (1 / 100) / 0.1
    0.0001
    >>> bertadam(-1e-4, warmup=0.1, t_total=100)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: lr=-0.0001 is out of range; expected a value in [0.0, 1000.0]...

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.BertAdam``; DeepSpeedExamples
    ``bing_bert/pytorch_pretrained_bert/optimization.py``.
  """
  _validation.check_rate("lr", lr)
  _static("warmup", warmup)
  _static("t_total", t_total)
  _validation.check_range(
    "warmup", warmup, 0.0, 1.0, high_inclusive=False, allowed=(-1,)
  )
  if not isinstance(warmup, int):  # a NumPy scalar or 0-d array
    warmup = _validation.to_float("warmup", warmup)
  t_total = _validation.check_int("t_total", t_total, 1, allowed=(-1,))
  _validation.check_range("b1", b1, 0.0, 1.0, high_inclusive=False)
  _validation.check_range("b2", b2, 0.0, 1.0, high_inclusive=False)
  _validation.check_non_negative("e", e)
  _validation.check_rate("weight_decay", weight_decay)
  _validation.check_number("max_grad_norm", max_grad_norm, finite=False)
  _validation.check_choice("clip", clip, _CLIPS)
  bias_correction = _validation.check_bool("bias_correction", bias_correction)
  mu_dtype = _validation.check_dtype("mu_dtype", mu_dtype)
  mask = transforms.checked_mask(weight_decay_mask)
  multiplier, lr_offset = _multiplier(
    schedule, warmup, t_total, schedule_kwargs
  )

  if multiplier is None:
    learning_rate = lr
  elif callable(lr):
    learning_rate = lambda count: lr(count) * multiplier(count) + lr_offset
  else:
    learning_rate = lambda count: lr * multiplier(count) + lr_offset

  if clip == "none" or (
    _validation.is_number(max_grad_norm) and max_grad_norm <= 0
  ):
    clipping = optax.identity()
  elif clip == "per_tensor":
    clipping = transforms.clip_by_norm_per_tensor(max_grad_norm)
  else:
    # optax.clip_by_global_norm's rule, up to rounding, in one pass: its
    # per-element t / norm * c makes XLA:CPU write the scaled gradient to a
    # buffer of its own, where a scalar factor fuses into the update. A traced
    # max_grad_norm <= 0 (optax.inject_hyperparams) disables it.
    clipping = transforms.clip_by_global_norm_torch(max_grad_norm, eps=0.0)

  decay = (
    optax.identity()
    if _validation.is_number(weight_decay) and weight_decay == 0
    else optax.add_decayed_weights(weight_decay, mask)
  )

  return optax.chain(
    clipping,
    transforms.scale_by_bertadam(
      b1, b2, e, bias_correction=bias_correction, mu_dtype=mu_dtype
    ),
    decay,
    transforms.scale_by_learning_rate(learning_rate),
  )


def get_lr(opt_state: optax.OptState) -> jax.Array | list[jax.Array]:
  """The learning rate the next update of ``opt_state`` will apply.

  After ``k`` updates this is ``lr * f(k)``, what PyTorch's
  ``BertAdam.get_lr()`` returns after ``k`` steps with the same schedule (the
  schedule names are DeepSpeed bing_bert's; pytorch-pretrained-bert 0.6.2's
  own ``warmup_linear`` differs, see :mod:`bertadam_optax.schedules`). It
  reads the state of :func:`~bertadam_optax.transforms.scale_by_learning_rate`,
  wherever it sits in
  the state tree (inside ``optax.MultiSteps``, ``optax.inject_hyperparams``,
  ``optax.apply_if_finite``, ``optax.multi_transform`` ...), so it works inside
  and outside ``jit``. The value is computed by the last update: after a
  change of an injected ``lr`` in ``opt_state.hyperparams``, the next update
  already applies the new rate, and ``get_lr`` reports it from then on.

  Args:
    opt_state: the state of :func:`bertadam` or of any chain containing
      :func:`~bertadam_optax.transforms.scale_by_learning_rate`.

  Returns:
    A float32 scalar; a list of them, in tree order, when the state holds
    several (param groups of ``optax.multi_transform``).

  Raises:
    ValueError: if the state holds no such learning-rate stage.

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from bertadam_optax import bertadam, get_lr
    >>> tx = optax.MultiSteps(bertadam(2e-3, warmup=0.5, t_total=4),
    ...                       every_k_schedule=2)
    >>> state = tx.init({'w': jnp.ones(1)})
    >>> float(get_lr(state))
    0.0
    >>> for _ in range(2):
    ...   _, state = tx.update({'w': jnp.ones(1)}, state, {'w': jnp.ones(1)})
    >>> float(get_lr(state))  # after one optimizer step: 2e-3 * 0.25 / 0.5
    0.0010000000474974513
  """
  return stage_field(
    opt_state,
    transforms.ScaleByLearningRateState,
    "learning_rate",
    what="bertadam_optax learning-rate",
    hint="get_lr works on states of bertadam and of chains ending in "
    "bertadam_optax.transforms.scale_by_learning_rate.",
  )
