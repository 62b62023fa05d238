r"""Ported optimizers as typed, printable specs, and the :class:`Plan` of a run.

A config reader (:func:`~bertadam_optax.interop.plan_deepspeed_config`,
:func:`~bertadam_optax.interop.plan_training_arguments`) turns what a PyTorch
run asked for into frozen dataclasses, each validated at construction:

* one *optimizer spec* per optimizer math (:class:`AdamSpec`,
  :class:`LambSpec`, :class:`LionSpec`, :class:`AdagradSpec`,
  :class:`SGDSpec`, and DeepSpeed's 1-bit :class:`OneBitAdamSpec`,
  :class:`ZeroOneAdamSpec`, :class:`OneBitLambSpec`): the transformation
  between the clip and the learning rate;
* one *schedule spec* per schedule family (:class:`DeepSpeedScheduleSpec`,
  :class:`MomentumScheduleSpec`, :class:`TransformersScheduleSpec`,
  :class:`MetricScheduleSpec`);
* the :class:`Plan`: clip, optimizer, learning rate, accumulation, mask.

Every spec has ``build()`` (the optax object) and ``to_source()`` (the Python
that builds the same object from public names only), so a new optimizer is
one new spec class here plus the lines of the reader that choose it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any
from typing import Protocol
from typing import TypeGuard

import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax import masks
from bertadam_optax import schedules
from bertadam_optax import transforms

__all__ = [
  "AdagradSpec",
  "AdamSpec",
  "BingBertScheduleSpec",
  "DeepSpeedScheduleSpec",
  "LambSpec",
  "LionSpec",
  "MetricScheduleSpec",
  "MomentumScheduleSpec",
  "NamedMask",
  "OneBitAdamSpec",
  "OneBitLambSpec",
  "Plan",
  "SGDSpec",
  "TransformersScheduleSpec",
  "ZeroOneAdamSpec",
]

_IMPORTS = (
  "import jax.numpy as jnp",
  "import optax",
  "from bertadam_optax import masks",
  "from bertadam_optax import schedules",
  "from bertadam_optax import transforms",
)


def _fmt(value: Any) -> str:
  return value.to_source() if hasattr(value, "to_source") else repr(value)


def _decay(weight_decay: float, mask: Any) -> optax.GradientTransformation:
  if weight_decay == 0:
    return optax.identity()
  return optax.add_decayed_weights(weight_decay, transforms.checked_mask(mask))


def _decay_source(weight_decay: float) -> str | None:
  if weight_decay == 0:
    return None
  return f"optax.add_decayed_weights({weight_decay!r}, weight_decay_mask)"


def _chain_source(parts: list[str | None]) -> str:
  kept = [p for p in parts if p]
  return "optax.chain(" + ", ".join(kept) + ")"


def _check_beta(name: str, value: Any) -> None:
  if not isinstance(value, MomentumScheduleSpec):
    _validation.check_number(name, value, 0.0, 1.0, high_inclusive=False)


def _check_common(spec: Any, *names: str) -> None:
  for name in names:
    _validation.check_number(name, getattr(spec, name), 0.0)


# Optimizer specs ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MomentumScheduleSpec:
  """DeepSpeed's OneCycle momentum cycle as beta1.

  See :func:`bertadam_optax.schedules.deepspeed_momentum_schedule`.
  """

  type: str
  params: Mapping[str, Any]

  def build(self) -> optax.Schedule:
    """Builds the schedule this spec stands for."""
    schedule = schedules.deepspeed_momentum_schedule(
      self.type, dict(self.params)
    )
    if schedule is None:
      raise ValueError(
        f"scheduler {self.type!r} with params {dict(self.params)!r} has no "
        "momentum cycle; expected OneCycle with cycle_momentum."
      )
    return schedule

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    return (
      f"schedules.deepspeed_momentum_schedule({self.type!r}, "
      f"{dict(self.params)!r})"
    )


@dataclasses.dataclass(frozen=True)
class AdamSpec:
  r"""The Adam family: torch ``Adam``/``AdamW``, DeepSpeed ``FusedAdam``.

  Moments by :func:`~bertadam_optax.transforms.scale_by_adam_torch`; the
  weight decay after them (``decoupled``, AdamW) or before them (L2, added to
  the gradient). ``b1`` may be a :class:`MomentumScheduleSpec`.
  """

  b1: float | MomentumScheduleSpec = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  bias_correction: bool = True
  decoupled: bool = True
  name: str = "Adam"

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_beta("b1", self.b1)
    _check_beta("b2", self.b2)
    _check_common(self, "eps", "weight_decay")
    _validation.check_bool("bias_correction", self.bias_correction)
    _validation.check_bool("decoupled", self.decoupled)

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    if isinstance(self.b1, MomentumScheduleSpec):
      moments = optax.inject_hyperparams(
        transforms.scale_by_adam_torch, static_args=("bias_correction",)
      )(
        b1=self.b1.build(),
        b2=self.b2,
        eps=self.eps,
        bias_correction=self.bias_correction,
      )
    else:
      moments = transforms.scale_by_adam_torch(
        self.b1, self.b2, self.eps, bias_correction=self.bias_correction
      )
    decay = _decay(self.weight_decay, weight_decay_mask)
    return optax.chain(
      *((moments, decay) if self.decoupled else (decay, moments))
    )

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    if isinstance(self.b1, MomentumScheduleSpec):
      moments = (
        "optax.inject_hyperparams(transforms.scale_by_adam_torch, "
        "static_args=('bias_correction',))(b1="
        f"{self.b1.to_source()}, b2={self.b2!r}, eps={self.eps!r}, "
        f"bias_correction={self.bias_correction!r})"
      )
    else:
      moments = (
        f"transforms.scale_by_adam_torch({self.b1!r}, {self.b2!r}, "
        f"{self.eps!r}, bias_correction={self.bias_correction!r})"
      )
    decay = _decay_source(self.weight_decay)
    return _chain_source(
      [moments, decay] if self.decoupled else [decay, moments]
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    kind = "decoupled" if self.decoupled else "L2"
    return (
      f"{self.name} (Adam math, {kind} weight decay): b1={_fmt(self.b1)}, "
      f"b2={self.b2!r}, eps={self.eps!r}, weight_decay="
      f"{self.weight_decay!r}, bias_correction={self.bias_correction!r}"
    )


@dataclasses.dataclass(frozen=True)
class LambSpec:
  """DeepSpeed ``FusedLamb``.

  See :func:`~bertadam_optax.transforms.scale_by_fused_lamb`.
  """

  b1: float | MomentumScheduleSpec = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  eps_inside_sqrt: bool = False
  bias_correction: bool = True
  weight_decay: float = 0.0
  max_coeff: float = 10.0
  min_coeff: float = 0.01
  name: str = "Lamb"

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_beta("b1", self.b1)
    _check_beta("b2", self.b2)
    _check_common(self, "eps", "weight_decay", "max_coeff", "min_coeff")
    _validation.check_bool("eps_inside_sqrt", self.eps_inside_sqrt)
    _validation.check_bool("bias_correction", self.bias_correction)

  def _kwargs(self) -> dict:
    return {
      k: getattr(self, k)
      for k in (
        "eps",
        "eps_inside_sqrt",
        "bias_correction",
        "weight_decay",
        "max_coeff",
        "min_coeff",
      )
    }

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    if isinstance(self.b1, MomentumScheduleSpec):
      # Only beta1 moves; the rest stay Python numbers (float32 bias
      # corrections from expm1, no decay stage when weight_decay is 0).
      return optax.inject_hyperparams(
        transforms.scale_by_fused_lamb,
        static_args=transforms.FUSED_LAMB_STATIC_ARGS,
      )(
        b1=self.b1.build(),
        b2=self.b2,
        weight_decay_mask=weight_decay_mask,
        **self._kwargs(),
      )
    return transforms.scale_by_fused_lamb(
      self.b1, self.b2, weight_decay_mask=weight_decay_mask, **self._kwargs()
    )

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    kwargs = "".join(f", {k}={v!r}" for k, v in self._kwargs().items())
    if isinstance(self.b1, MomentumScheduleSpec):
      return (
        "optax.inject_hyperparams(transforms.scale_by_fused_lamb, "
        "static_args=transforms.FUSED_LAMB_STATIC_ARGS)(b1="
        f"{self.b1.to_source()}, b2={self.b2!r}, "
        f"weight_decay_mask=weight_decay_mask{kwargs})"
      )
    return (
      f"transforms.scale_by_fused_lamb({self.b1!r}, {self.b2!r}, "
      f"weight_decay_mask=weight_decay_mask{kwargs})"
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (FusedLamb math, weight decay inside the per-tensor "
      f"trust ratio): b1={_fmt(self.b1)}, b2={self.b2!r}, "
      + ", ".join(f"{k}={v!r}" for k, v in self._kwargs().items())
    )


@dataclasses.dataclass(frozen=True)
class LionSpec:
  """DeepSpeed ``FusedLion``: ``optax.scale_by_lion``, decoupled decay.

  The momentum is kept in float32 whatever the parameters' dtype, as in every
  other port (``optax.scale_by_lion`` would follow a bfloat16 parameter).
  """

  b1: float | MomentumScheduleSpec = 0.9
  b2: float = 0.999
  weight_decay: float = 0.0
  name: str = "Lion"

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_beta("b1", self.b1)
    _check_beta("b2", self.b2)
    _check_common(self, "weight_decay")

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    if isinstance(self.b1, MomentumScheduleSpec):
      core = optax.inject_hyperparams(
        optax.scale_by_lion, static_args=("mu_dtype",)
      )(b1=self.b1.build(), b2=self.b2, mu_dtype=jnp.float32)
    else:
      core = optax.scale_by_lion(self.b1, self.b2, mu_dtype=jnp.float32)
    return optax.chain(core, _decay(self.weight_decay, weight_decay_mask))

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    if isinstance(self.b1, MomentumScheduleSpec):
      core = (
        "optax.inject_hyperparams(optax.scale_by_lion, "
        f"static_args=('mu_dtype',))(b1={self.b1.to_source()}, "
        f"b2={self.b2!r}, mu_dtype=jnp.float32)"
      )
    else:
      core = (
        f"optax.scale_by_lion({self.b1!r}, {self.b2!r}, mu_dtype=jnp.float32)"
      )
    return _chain_source([core, _decay_source(self.weight_decay)])

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (Lion math, decoupled weight decay): b1="
      f"{_fmt(self.b1)}, b2={self.b2!r}, weight_decay="
      f"{self.weight_decay!r}"
    )


@dataclasses.dataclass(frozen=True)
class AdagradSpec:
  """torch ``Adagrad``: L2 decay, then Adagrad's moments.

  The moments are :func:`~bertadam_optax.transforms.scale_by_adagrad_torch`.
  """

  eps: float = 1e-10
  initial_accumulator_value: float = 0.0
  weight_decay: float = 0.0
  name: str = "Adagrad"

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_common(self, "eps", "initial_accumulator_value", "weight_decay")

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    return optax.chain(
      _decay(self.weight_decay, weight_decay_mask),
      transforms.scale_by_adagrad_torch(
        self.initial_accumulator_value, self.eps
      ),
    )

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    return _chain_source(
      [
        _decay_source(self.weight_decay),
        f"transforms.scale_by_adagrad_torch("
        f"{self.initial_accumulator_value!r}, {self.eps!r})",
      ]
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (torch Adagrad math, L2 weight decay): eps="
      f"{self.eps!r}, initial_accumulator_value="
      f"{self.initial_accumulator_value!r}, weight_decay="
      f"{self.weight_decay!r}"
    )


@dataclasses.dataclass(frozen=True)
class SGDSpec:
  """torch ``SGD``: L2 decay, then ``optax.trace`` (heavy-ball momentum)."""

  momentum: float = 0.0
  nesterov: bool = False
  weight_decay: float = 0.0
  name: str = "sgd"

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _validation.check_number("momentum", self.momentum, 0.0, 1.0)
    _validation.check_bool("nesterov", self.nesterov)
    _check_common(self, "weight_decay")
    if self.nesterov and self.momentum == 0:
      raise ValueError(
        "nesterov=True needs momentum > 0, as torch.optim.SGD requires."
      )

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    moments = (
      optax.trace(self.momentum, nesterov=self.nesterov)
      if self.momentum
      else optax.identity()
    )
    return optax.chain(_decay(self.weight_decay, weight_decay_mask), moments)

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    moments = (
      f"optax.trace({self.momentum!r}, nesterov={self.nesterov!r})"
      if self.momentum
      else None
    )
    return (
      _chain_source([_decay_source(self.weight_decay), moments])
      if (moments or self.weight_decay)
      else ("optax.identity()")
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (torch SGD math, L2 weight decay): momentum="
      f"{self.momentum!r}, nesterov={self.nesterov!r}, weight_decay="
      f"{self.weight_decay!r}"
    )


def _kwargs_source(spec: Any, names: tuple[str, ...]) -> str:
  return "".join(f", {k}={getattr(spec, k)!r}" for k in names)


@dataclasses.dataclass(frozen=True)
class OneBitAdamSpec:
  """DeepSpeed ``OnebitAdam`` on one worker.

  :func:`~bertadam_optax.transforms.scale_by_onebit_adam` (variance frozen
  after ``freeze_step``, decay added to the update, no bias correction).
  """

  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  freeze_step: int = 100000
  name: str = "OneBitAdam"

  _KEYS = ("freeze_step", "weight_decay")

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_beta("b1", self.b1)
    _check_beta("b2", self.b2)
    _check_common(self, "eps", "weight_decay")
    _validation.check_int("freeze_step", self.freeze_step)

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    return transforms.scale_by_onebit_adam(
      self.b1,
      self.b2,
      self.eps,
      freeze_step=self.freeze_step,
      weight_decay=self.weight_decay,
      weight_decay_mask=weight_decay_mask,
    )

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    return (
      f"transforms.scale_by_onebit_adam({self.b1!r}, {self.b2!r}, "
      f"{self.eps!r}{_kwargs_source(self, self._KEYS)}, "
      "weight_decay_mask=weight_decay_mask)"
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (one worker: Adam without bias correction, variance "
      f"frozen after step {self.freeze_step}, decay in the update): "
      f"b1={self.b1!r}, b2={self.b2!r}, eps={self.eps!r}, "
      f"weight_decay={self.weight_decay!r}"
    )


@dataclasses.dataclass(frozen=True)
class ZeroOneAdamSpec:
  """DeepSpeed ``ZeroOneAdam`` (0/1 Adam) on one worker.

  :func:`~bertadam_optax.transforms.scale_by_zero_one_adam`. Its momentum
  resets are weighted by the learning rate, which :class:`Plan` passes to
  ``build``.
  """

  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  var_freeze_step: int = 100000
  var_update_scaler: int = 16
  local_step_scaler: int = 32678
  local_step_clipper: int = 16
  name: str = "ZeroOneAdam"

  needs_learning_rate = True
  _KEYS = (
    "var_freeze_step",
    "var_update_scaler",
    "local_step_scaler",
    "local_step_clipper",
    "weight_decay",
  )

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_beta("b1", self.b1)
    _check_beta("b2", self.b2)
    _check_common(self, "eps", "weight_decay")
    _validation.check_int("var_freeze_step", self.var_freeze_step)
    for name in (
      "var_update_scaler",
      "local_step_scaler",
      "local_step_clipper",
    ):
      _validation.check_int(name, getattr(self, name), 1)

  def build(
    self, weight_decay_mask: Any = None, learning_rate: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).
      learning_rate: the learning rate or schedule; required here.

    Returns:
      The transformation, without the learning-rate stage.
    """
    if learning_rate is None:
      raise ValueError(
        "ZeroOneAdamSpec.build needs learning_rate: its "
        "momentum resets weight the steps by it."
      )
    return transforms.scale_by_zero_one_adam(
      learning_rate,
      self.b1,
      self.b2,
      self.eps,
      weight_decay_mask=weight_decay_mask,
      **{k: getattr(self, k) for k in self._KEYS},
    )

  def to_source(self, learning_rate: str = "learning_rate") -> str:
    """The Python source that builds :meth:`build`'s result.

    Args:
      learning_rate: the source expression of the learning rate.

    Returns:
      One Python expression.
    """
    return (
      f"transforms.scale_by_zero_one_adam({learning_rate}, {self.b1!r}, "
      f"{self.b2!r}, {self.eps!r}{_kwargs_source(self, self._KEYS)}, "
      "weight_decay_mask=weight_decay_mask)"
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (one worker: variance at doubling intervals up to "
      f"step {self.var_freeze_step}, then frozen with momentum resets): "
      f"b1={self.b1!r}, b2={self.b2!r}, eps={self.eps!r}"
      f"{_kwargs_source(self, self._KEYS)}"
    )


@dataclasses.dataclass(frozen=True)
class OneBitLambSpec:
  """DeepSpeed ``OnebitLamb`` on one worker.

  :func:`~bertadam_optax.transforms.scale_by_onebit_lamb` (Lamb until
  ``freeze_step``, then the frozen trust ratio scaled by a bounded factor).
  """

  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  weight_decay: float = 0.0
  freeze_step: int = 100000
  max_coeff: float = 10.0
  min_coeff: float = 0.01
  coeff_beta: float = 0.9
  factor_max: float = 4.0
  factor_min: float = 0.5
  factor_threshold: float = 0.1
  name: str = "OneBitLamb"

  _KEYS = (
    "freeze_step",
    "weight_decay",
    "max_coeff",
    "min_coeff",
    "coeff_beta",
    "factor_max",
    "factor_min",
    "factor_threshold",
  )

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _check_beta("b1", self.b1)
    _check_beta("b2", self.b2)
    _check_common(
      self,
      "eps",
      "weight_decay",
      "max_coeff",
      "min_coeff",
      "factor_max",
      "factor_min",
      "factor_threshold",
    )
    _validation.check_number("coeff_beta", self.coeff_beta, 0.0, 1.0)
    _validation.check_int("freeze_step", self.freeze_step)

  def build(
    self, weight_decay_mask: Any = None
  ) -> optax.GradientTransformation:
    """Builds the optax transformation this spec stands for.

    Args:
      weight_decay_mask: a pytree of booleans like the params, or a
        callable returning one: which leaves get weight decay (all if
        None).

    Returns:
      The transformation, without the learning-rate stage.
    """
    return transforms.scale_by_onebit_lamb(
      self.b1,
      self.b2,
      self.eps,
      weight_decay_mask=weight_decay_mask,
      **{k: getattr(self, k) for k in self._KEYS},
    )

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    return (
      f"transforms.scale_by_onebit_lamb({self.b1!r}, {self.b2!r}, "
      f"{self.eps!r}{_kwargs_source(self, self._KEYS)}, "
      "weight_decay_mask=weight_decay_mask)"
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} (one worker: Lamb until step {self.freeze_step}, "
      "then the frozen trust ratio times a bounded factor): "
      f"b1={self.b1!r}, b2={self.b2!r}, eps={self.eps!r}"
      f"{_kwargs_source(self, self._KEYS)}"
    )


# Schedule specs -----------------------------------------------------------


def _scale_stage(schedule: Any) -> optax.GradientTransformation:
  return transforms.scale_by_learning_rate(schedule)


@dataclasses.dataclass(frozen=True)
class DeepSpeedScheduleSpec:
  """A ds_config ``scheduler`` section.

  See :func:`bertadam_optax.schedules.deepspeed_schedule`.
  """

  type: str
  params: Mapping[str, Any]
  learning_rate: float

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _validation.check_number("learning_rate", self.learning_rate, 0.0)
    self.build()  # the schedule's own checks, at construction

  def build(self) -> optax.Schedule:
    """Builds the schedule this spec stands for."""
    return schedules.deepspeed_schedule(
      self.type, dict(self.params), learning_rate=self.learning_rate
    )

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    return (
      f"schedules.deepspeed_schedule({self.type!r}, "
      f"{dict(self.params)!r}, learning_rate={self.learning_rate!r})"
    )

  def stage(self) -> optax.GradientTransformation:
    """This schedule as a chain stage that scales the updates by it."""
    return _scale_stage(self.build())

  def stage_source(self) -> str:
    """The Python source of :meth:`stage`, for the generated script."""
    return f"transforms.scale_by_learning_rate({self.to_source()})"

  def milestone(self) -> tuple[str, int] | None:
    """The step worth printing besides the quarters: warmup end or peak."""
    if self.type.startswith("Warmup"):
      return (
        "warmup end",
        max(2, int(self.params.get("warmup_num_steps", 1000))),
      )
    if self.type == "OneCycle":
      return ("peak", int(self.params.get("cycle_first_step_size", 2000)))
    return None

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return f"{self.type} {dict(self.params)}"


@dataclasses.dataclass(frozen=True)
class TransformersScheduleSpec:
  """A ``transformers.get_scheduler`` schedule.

  :func:`bertadam_optax.schedules.get_schedule`, divided by
  ``1 + k lr_decay`` for torch Adagrad's ``lr_decay``.
  """

  name: str
  learning_rate: float
  num_warmup_steps: int
  num_training_steps: int
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  lr_decay: float = 0.0

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _validation.check_number("learning_rate", self.learning_rate, 0.0)
    _validation.check_int("num_warmup_steps", self.num_warmup_steps)
    _validation.check_int("num_training_steps", self.num_training_steps, 1)
    _validation.check_number("lr_decay", self.lr_decay, 0.0)
    self.build()

  def build(self) -> optax.Schedule:
    """Builds the schedule this spec stands for."""
    base = schedules.get_schedule(
      self.name,
      self.learning_rate,
      self.num_warmup_steps,
      self.num_training_steps,
      **self.kwargs,
    )
    if not self.lr_decay:
      return base
    return schedules.inverse_time_decay_schedule(base, self.lr_decay)

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    kwargs = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
    base = (
      f"schedules.get_schedule({self.name!r}, {self.learning_rate!r}, "
      f"{self.num_warmup_steps!r}, {self.num_training_steps!r}{kwargs})"
    )
    if not self.lr_decay:
      return base
    return f"schedules.inverse_time_decay_schedule({base}, {self.lr_decay!r})"

  def stage(self) -> optax.GradientTransformation:
    """This schedule as a chain stage that scales the updates by it."""
    return _scale_stage(self.build())

  def stage_source(self) -> str:
    """The Python source of :meth:`stage`, for the generated script."""
    return f"transforms.scale_by_learning_rate({self.to_source()})"

  def milestone(self) -> tuple[str, int] | None:
    """The step worth printing besides the quarters, or None."""
    return (
      ("warmup end", self.num_warmup_steps) if self.num_warmup_steps else None
    )

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    extra = f", lr_decay {self.lr_decay!r}" if self.lr_decay else ""
    return (
      f"{self.name} {dict(self.kwargs)}, peak {self.learning_rate!r}, "
      f"warmup {self.num_warmup_steps} steps{extra}"
    )


@dataclasses.dataclass(frozen=True)
class BingBertScheduleSpec:
  r"""bing_bert's ``update_learning_rate``.

  :func:`bertadam_optax.schedules.bert_schedule` of the ``--lr_schedule``
  (``EE``: ``warmup_exp_decay_exp``, ``EP``: ``warmup_exp_decay_poly``, else
  ``warmup_linear_decay_exp``) plus ``lr_offset``, at ``count - restore_step``
  (``--rewarmup``).
  """

  name: str
  learning_rate: float
  total_training_steps: int
  warmup_proportion: float
  decay_rate: float | None = None
  decay_step: float | None = None
  lr_offset: float = 0.0
  restore_step: int = 0

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _validation.check_int("restore_step", self.restore_step)
    self.build()

  def _base_source(self) -> str:
    decay = (
      ""
      if self.decay_rate is None
      else f", decay_rate={self.decay_rate!r}, decay_steps={self.decay_step!r}"
    )
    return (
      f"schedules.bert_schedule({self.name!r}, {self.learning_rate!r}, "
      f"{self.total_training_steps!r}, {self.warmup_proportion!r}"
      f"{decay}, lr_offset={self.lr_offset!r})"
    )

  def build(self) -> optax.Schedule:
    """Builds the schedule this spec stands for."""
    kwargs = {}
    if self.decay_rate is not None:
      kwargs = dict(decay_rate=self.decay_rate, decay_steps=self.decay_step)
    base = schedules.bert_schedule(
      self.name,
      self.learning_rate,
      self.total_training_steps,
      self.warmup_proportion,
      lr_offset=self.lr_offset,
      **kwargs,
    )
    if not self.restore_step:
      return base
    return schedules.shift_schedule(base, self.restore_step)

  def to_source(self) -> str:
    """The Python source that builds :meth:`build`'s result."""
    if not self.restore_step:
      return self._base_source()
    return (
      f"schedules.shift_schedule({self._base_source()}, {self.restore_step!r})"
    )

  def stage(self) -> optax.GradientTransformation:
    """This schedule as a chain stage that scales the updates by it."""
    return _scale_stage(self.build())

  def stage_source(self) -> str:
    """The Python source of :meth:`stage`, for the generated script."""
    return f"transforms.scale_by_learning_rate({self.to_source()})"

  def milestone(self) -> tuple[str, int] | None:
    """The step worth printing besides the quarters, or None."""
    end = math.ceil(self.warmup_proportion * self.total_training_steps)
    return ("warmup end", self.restore_step + end) if end > 0 else None

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    decay = (
      ""
      if self.decay_rate is None
      else f", decay {self.decay_rate!r} every {self.decay_step!r} steps"
    )
    restart = (
      f", restarted at step {self.restore_step} (--rewarmup)"
      if self.restore_step
      else ""
    )
    return (
      f"bing_bert {self.name}: peak {self.learning_rate!r}, warmup "
      f"{self.warmup_proportion!r} of {self.total_training_steps} "
      f"steps{decay}, + lr_offset {self.lr_offset!r}{restart}"
    )


_METRIC_STAGES = {
  "reduce_lr_on_plateau": transforms.reduce_lr_on_plateau,
  "greedy": transforms.greedy,
}


@dataclasses.dataclass(frozen=True)
class MetricScheduleSpec:
  """A loss-driven learning-rate stage.

  :func:`~bertadam_optax.transforms.reduce_lr_on_plateau` or
  :func:`~bertadam_optax.transforms.greedy`; ``update`` then takes
  ``value=loss``.
  """

  name: str
  learning_rate: float
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _validation.check_choice(
      "lr_scheduler_type", self.name, tuple(_METRIC_STAGES)
    )
    try:
      self.stage()
    except TypeError as e:
      raise ValueError(
        f"lr_scheduler_kwargs={dict(self.kwargs)!r} do not fit "
        f"{self.name!r}: {e}."
      ) from e

  def stage(self) -> optax.GradientTransformationExtraArgs:
    """This schedule as a chain stage that scales the updates by it."""
    return _METRIC_STAGES[self.name](self.learning_rate, **self.kwargs)

  def stage_source(self) -> str:
    """The Python source of :meth:`stage`, for the generated script."""
    kwargs = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
    return f"transforms.{self.name}({self.learning_rate!r}{kwargs})"

  def milestone(self) -> None:
    """The step worth printing besides the quarters, or None."""
    return None

  def describe(self) -> str:
    """One line for the port report: the math and the values kept."""
    return (
      f"{self.name} {dict(self.kwargs)} from {self.learning_rate!r} "
      "(metric-driven: update(..., value=loss))"
    )


# Masks --------------------------------------------------------------------

_MASKS = {
  "bert_weight_decay_mask": masks.bert_weight_decay_mask,
  "bing_bert_weight_decay_mask": masks.bing_bert_weight_decay_mask,
  "trainer_weight_decay_mask": masks.trainer_weight_decay_mask,
}


@dataclasses.dataclass(frozen=True)
class NamedMask:
  """A weight-decay mask of :mod:`bertadam_optax.masks` that knows its source.

  It is called with ``kwargs`` (its defaults if empty).
  """

  name: str
  kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    _validation.check_choice("name", self.name, tuple(_MASKS))

  def __call__(self, params: Any) -> Any:
    """Builds the mask for ``params``.

    Args:
      params: the parameter pytree to mask.

    Returns:
      A pytree of booleans like ``params``.
    """
    return _MASKS[self.name](params, **self.kwargs)

  def to_source(self) -> str:
    """The Python source of this mask, for the generated script."""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
    return f"masks.{self.name}({kwargs})"


def _mask_source(mask: Any) -> str | None:
  """Source of a mask, or None if it can only be given by the user."""
  if mask is None or hasattr(mask, "to_source"):
    return _fmt(mask)
  for name, fn in _MASKS.items():
    if mask is fn:
      return f"masks.{name}"
  return None


# The plan -----------------------------------------------------------------


class _ScheduleSpec(Protocol):
  """What :class:`Plan` calls on a learning-rate spec."""

  def build(self) -> Any: ...

  def to_source(self) -> str: ...

  def describe(self) -> str: ...

  def stage(self) -> optax.GradientTransformation: ...

  def stage_source(self) -> str: ...


def _is_spec(value: Any) -> TypeGuard[_ScheduleSpec]:
  return hasattr(value, "stage") and hasattr(value, "stage_source")


@dataclasses.dataclass(frozen=True)
class Plan:
  r"""What a PyTorch run's configuration asks for, as one optax optimizer.

  .. math::
    g = \tfrac1A \textstyle\sum_{a=1}^{A} g_a, \quad
    g \leftarrow g \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right),
    \quad p \leftarrow p - \eta_k\,\mathrm{opt}(g, p)

  ``build()`` is ``MultiSteps(chain(clip, optimizer, learning rate))``
  (``MultiSteps`` only when ``accumulation_steps > 1``). Any field can be
  replaced with ``dataclasses.replace``, e.g. the learning rate by any optax
  schedule or float and the mask by another.

  Attributes:
    source: what was read (``"ds_config"``, ``"training_arguments"``, ...).
    optimizer: the optimizer spec (``build(weight_decay_mask)``,
      ``to_source()``, ``describe()``).
    learning_rate: a schedule spec, an optax schedule or a float.
    clip: torch's global-norm clip ``c``; 0 means none.
    accumulation_steps: micro-batches per optimizer step (mean), >= 1.
    weight_decay_mask: which leaves decay; ``None`` decays all.
    notes: how the reader decided: defaults, ignored keys.

  Examples:
    >>> import dataclasses
    >>> import optax
    >>> from bertadam_optax.interop import specs
    >>> plan = specs.Plan(source="by hand", optimizer=specs.AdamSpec(),
    ...                   learning_rate=1e-3, clip=1.0, accumulation_steps=4)
    >>> plan.describe()[2]
    'clipping:      global norm 1.0 (torch rule)'
    >>> warm = dataclasses.replace(
    ...     plan, learning_rate=optax.linear_schedule(0.0, 1e-3, 100))
    >>> tx = warm.build()
    >>> line = plan.to_source().splitlines()[-1]
    >>> print(line)  # doctest: +NORMALIZE_WHITESPACE
    optimizer = optax.MultiSteps(optimizer, every_k_schedule=4,
        use_grad_mean=True).gradient_transformation()
  """

  source: str
  optimizer: Any
  learning_rate: Any
  clip: float = 0.0
  accumulation_steps: int = 1
  weight_decay_mask: Any = None
  notes: tuple[str, ...] = ()

  def __post_init__(self):
    """Checks every field at construction (ValueError naming it)."""
    if not isinstance(self.source, str):
      raise ValueError(f"source={self.source!r} is not a string.")
    if not (
      hasattr(self.optimizer, "build") and hasattr(self.optimizer, "to_source")
    ):
      raise ValueError(
        f"optimizer={self.optimizer!r} is not an optimizer "
        "spec (with build() and to_source())."
      )
    if not _is_spec(self.learning_rate):
      _validation.check_rate("learning_rate", self.learning_rate)
    _validation.check_number("clip", self.clip, 0.0)
    _validation.check_int("accumulation_steps", self.accumulation_steps, 1)
    if isinstance(self.weight_decay_mask, (str, bytes)):
      transforms.checked_mask(self.weight_decay_mask)
    if not (
      isinstance(self.notes, tuple)
      and all(isinstance(n, str) for n in self.notes)
    ):
      raise ValueError(f"notes={self.notes!r} is not a tuple of strings.")

  def _stage(self) -> optax.GradientTransformation:
    if _is_spec(self.learning_rate):
      return self.learning_rate.stage()
    return transforms.scale_by_learning_rate(self.learning_rate)

  def _schedule(self) -> Any:
    """The learning rate as a float or ``count -> lr``.

    For optimizers that weight their state by it (:class:`ZeroOneAdamSpec`).
    """
    if isinstance(self.learning_rate, MetricScheduleSpec):
      raise ValueError(
        f"{self.optimizer.name} weights its momentum resets by the "
        f"learning rate, which {self.learning_rate.name} decides from the "
        "loss during the run; not supported."
      )
    if _is_spec(self.learning_rate):
      return self.learning_rate.build()
    return self.learning_rate

  def build(self) -> optax.GradientTransformation:
    """The optax optimizer: ``get_lr`` reads its next learning rate."""
    extra = (
      {"learning_rate": self._schedule()}
      if getattr(self.optimizer, "needs_learning_rate", False)
      else {}
    )
    inner = optax.chain(
      transforms.clip_by_global_norm_torch(self.clip),
      self.optimizer.build(weight_decay_mask=self.weight_decay_mask, **extra),
      self._stage(),
    )
    if self.accumulation_steps == 1:
      return inner
    return optax.MultiSteps(
      inner, every_k_schedule=self.accumulation_steps, use_grad_mean=True
    ).gradient_transformation()

  def describe(self) -> list[str]:
    """What the optimizer does, one line per aspect (what ``port`` prints)."""
    if _is_spec(self.learning_rate):
      schedule = self.learning_rate.describe()
    elif callable(self.learning_rate):
      schedule = f"a schedule given to the plan ({self.learning_rate!r})"
    else:
      schedule = f"constant {self.learning_rate!r}"
    mask = _mask_source(self.weight_decay_mask)
    lines = [
      f"source:        {self.source}",
      f"optimizer:     {self.optimizer.describe()}"
      if hasattr(self.optimizer, "describe")
      else f"optimizer:     {self.optimizer!r}",
      "clipping:      "
      + (f"global norm {self.clip!r} (torch rule)" if self.clip else "none"),
      f"accumulation:  {self.accumulation_steps} micro-batches per step (mean)",
      f"schedule:      {schedule}",
      "decay mask:    "
      + (
        "every leaf"
        if self.weight_decay_mask is None
        else mask or repr(self.weight_decay_mask)
      ),
    ]
    return lines + [f"note:          {n}" for n in self.notes]

  def to_source(self) -> str:
    """Python that builds the same optimizer from public names only.

    It defines ``optimizer``. A learning rate or mask that is a Python object
    of the caller's has no source: the code then reads it from the names
    ``learning_rate`` / ``weight_decay_mask``, which the caller defines.
    """
    lines = list(_IMPORTS) + [""]
    mask = _mask_source(self.weight_decay_mask)
    if mask is None:
      lines.append("# weight_decay_mask: the mask given to the plan.")
    else:
      lines.append(f"weight_decay_mask = {mask}")
    if _is_spec(self.learning_rate):
      stage = self.learning_rate.stage_source()
    elif callable(self.learning_rate):
      lines.append("# learning_rate: the schedule given to the plan.")
      stage = "transforms.scale_by_learning_rate(learning_rate)"
    else:
      stage = f"transforms.scale_by_learning_rate({self.learning_rate!r})"
    if getattr(self.optimizer, "needs_learning_rate", False):
      if _is_spec(self.learning_rate):
        lines.append(f"learning_rate = {self.learning_rate.to_source()}")
      elif not callable(self.learning_rate):
        lines.append(f"learning_rate = {self.learning_rate!r}")
      optimizer_source = self.optimizer.to_source("learning_rate")
    else:
      optimizer_source = self.optimizer.to_source()
    lines += [
      "optimizer = optax.chain(",
      f"    transforms.clip_by_global_norm_torch({self.clip!r}),",
      f"    {optimizer_source},",
      f"    {stage},",
      ")",
    ]
    if self.accumulation_steps > 1:
      lines.append(
        f"optimizer = optax.MultiSteps(optimizer, every_k_schedule="
        f"{self.accumulation_steps}, use_grad_mean=True)"
        ".gradient_transformation()"
      )
    return "\n".join(lines)
