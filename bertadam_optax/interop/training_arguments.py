r"""transformers ``TrainingArguments`` as one optax optimizer.

:func:`from_training_arguments` builds the optimizer that the transformers
``Trainer`` creates from its arguments (``create_optimizer`` and
``create_scheduler``), as

``MultiSteps(clip -> optimizer -> learning rate)``

* ``max_grad_norm``: torch's ``clip_grad_norm_`` over all parameters.
* ``gradient_accumulation_steps``: ``optax.MultiSteps`` (mean of the micro-batch
  gradients, the Trainer's loss division).
* ``optim``: the ``adamw_torch`` family (``torch.optim.AdamW``), ``sgd`` and
  ``adagrad`` (with ``optim_args``), weight decay on the Trainer's parameters
  (:func:`trainer_weight_decay_mask`).
* ``lr_scheduler_type``: :func:`bertadam_optax.schedules.get_schedule`, or the
  two metric-driven names as transformations that read the loss,
  :func:`~bertadam_optax.transforms.reduce_lr_on_plateau` (torch's
  ``ReduceLROnPlateau``) and :func:`~bertadam_optax.transforms.greedy`
  (transformers' ``GreedyLR``).

:func:`plan_training_arguments` returns the typed
:class:`~bertadam_optax.interop.specs.Plan`; :func:`from_training_arguments`
is ``plan_training_arguments(...).build()``. The transformations and the
Trainer's mask live in :mod:`bertadam_optax.transforms` and
:mod:`bertadam_optax.masks`; they are re-exported here for the old import
paths. transformers itself is imported only to read an instance given to it.
"""

from __future__ import annotations

import math
import types
import warnings
from typing import Any, Mapping

import optax

from bertadam_optax import _validation
from bertadam_optax.interop import _reading
from bertadam_optax.interop import specs
from bertadam_optax.masks import TRAINER_NO_DECAY_PATTERNS
from bertadam_optax.masks import trainer_weight_decay_mask
from bertadam_optax.transforms import GreedyState
from bertadam_optax.transforms import ReduceLROnPlateauState
from bertadam_optax.transforms import greedy
from bertadam_optax.transforms import reduce_lr_on_plateau

__all__ = [
    "GreedyState",
    "ReduceLROnPlateauState",
    "SUPPORTED_OPTIMS",
    "TRAINER_NO_DECAY_PATTERNS",
    "TRAINING_ARGUMENTS_DEFAULTS",
    "from_training_arguments",
    "greedy",
    "plan_training_arguments",
    "reduce_lr_on_plateau",
    "trainer_weight_decay_mask",
    "warmup_steps",
]

SUPPORTED_OPTIMS = ("adamw_torch", "adamw_torch_fused", "sgd", "adagrad")
"""``TrainingArguments.optim`` values supported."""

_METRIC_DRIVEN = ("reduce_lr_on_plateau", "greedy")

TRAINING_ARGUMENTS_DEFAULTS = types.MappingProxyType({
    "learning_rate": 5e-5,
    "weight_decay": 0.0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "max_grad_norm": 1.0,
    "gradient_accumulation_steps": 1,
    "optim": "adamw_torch_fused",
    "optim_args": None,
    "lr_scheduler_type": "linear",
    "lr_scheduler_kwargs": None,
    "warmup_steps": 0,
    "warmup_ratio": 0.0,
})
"""TrainingArguments' defaults (transformers 5) for the fields read here."""

def _read_args(args: Any) -> dict:
  """The fields read here, from an instance or a mapping, with defaults."""
  if isinstance(args, Mapping):
    ignored = _validation.unknown_keys(args, TRAINING_ARGUMENTS_DEFAULTS,
                                      what="a TrainingArguments field")
    values = {k: args.get(k, v) for k, v in TRAINING_ARGUMENTS_DEFAULTS.items()}
  elif hasattr(args, "learning_rate") and hasattr(args, "optim"):
    ignored = []
    values = {k: getattr(args, k, v)
              for k, v in TRAINING_ARGUMENTS_DEFAULTS.items()}
  else:
    raise ValueError(f"args={args!r} is neither a transformers "
                     "TrainingArguments nor a mapping of its fields.")
  for key in ("optim", "lr_scheduler_type"):
    values[key] = getattr(values[key], "value", values[key])
    if not isinstance(values[key], str):
      raise ValueError(f"{key}={values[key]!r} is not a string.")
  return values, ignored


def warmup_steps(fields: Mapping[str, Any], num_training_steps: int) -> int:
  """The Trainer's warmup steps (``TrainingArguments.get_warmup_steps``).

  ``warmup_steps`` when it is at least 1; a ``warmup_steps`` below 1 is a
  ratio of ``num_training_steps`` (transformers 5); else ``warmup_ratio``.

  Examples:
    >>> warmup_steps({'warmup_steps': 0.25}, 100)
    25
  """
  steps = _reading.number("warmup_steps", fields.get("warmup_steps", 0), 0.0)
  ratio = _reading.number("warmup_ratio", fields.get("warmup_ratio") or 0.0,
                          0.0, 1.0)
  if steps >= 1:
    return int(steps)  # as get_warmup_steps
  if steps > 0:
    return math.ceil(num_training_steps * steps)
  return math.ceil(num_training_steps * ratio)


def _optim_args(text: Any) -> dict:
  if not text:
    return {}
  if not isinstance(text, str):
    raise ValueError(f"optim_args={text!r} is not a string of key=value "
                     "pairs.")
  parsed = {}
  for item in text.replace(" ", "").split(","):
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"optim_args={text!r}: {item!r} is not key=value.")
    parsed[key] = value
  return parsed


def _optim_number(extra: Mapping[str, str], key: str, default: float,
                  low: float = 0.0, high: float | None = None) -> float:
  # optim_args is a string, so its numbers are text by design.
  if key not in extra:
    return default
  try:
    value = float(extra[key])
  except ValueError:
    raise ValueError(f"optim_args {key}={extra[key]!r} is not a number."
                     ) from None
  return _validation.to_float(f"optim_args {key}", value, low, high)


def _optimizer(values: Mapping[str, Any], weight_decay: float
               ) -> tuple[Any, float]:
  """The Trainer's optimizer spec, and Adagrad's ``lr_decay`` (else 0)."""
  optim = _validation.check_choice("optim", values["optim"], SUPPORTED_OPTIMS)
  extra = _optim_args(values["optim_args"])
  if optim.startswith("adamw"):
    return specs.AdamSpec(
        _reading.number("adam_beta1", values["adam_beta1"], 0.0, 1.0,
                        high_inclusive=False),
        _reading.number("adam_beta2", values["adam_beta2"], 0.0, 1.0,
                        high_inclusive=False),
        _reading.number("adam_epsilon", values["adam_epsilon"], 0.0),
        weight_decay, bias_correction=True, decoupled=True,
        name=optim), 0.0
  # The Trainer puts weight_decay in both param groups, so optim_args'
  # weight_decay never reaches torch: it is read and dropped here too.
  if optim == "sgd":
    for key in extra:
      _validation.check_choice("optim_args key", key,
                               ("momentum", "dampening", "weight_decay",
                                "nesterov"))
    if _optim_number(extra, "dampening", 0.0) != 0:
      raise ValueError(f"optim_args dampening={extra['dampening']!r} is not "
                       "supported; expected 0.")
    nesterov = extra.get("nesterov", "false").lower()
    _validation.check_choice("optim_args nesterov", nesterov,
                             ("true", "false", "1", "0", "yes", "no"))
    return specs.SGDSpec(_optim_number(extra, "momentum", 0.0, 0.0, 1.0),
                         nesterov in ("true", "1", "yes"), weight_decay,
                         name=optim), 0.0
  for key in extra:
    _validation.check_choice("optim_args key", key,
                             ("lr_decay", "weight_decay", "eps"))
  return (specs.AdagradSpec(_optim_number(extra, "eps", 1e-10), 0.0,
                            weight_decay, name=optim),
          _optim_number(extra, "lr_decay", 0.0))


def plan_training_arguments(
    args: Any,
    *,
    num_training_steps: int,
    weight_decay_mask: Any = None,
    learning_rate: Any = None,
) -> specs.Plan:
  r"""What ``TrainingArguments`` ask of the Trainer, as a typed :class:`~bertadam_optax.interop.specs.Plan`.

  The optimizer, schedule, clip and accumulation of
  :func:`from_training_arguments`, before anything is built.

  Args:
    args: a ``transformers.TrainingArguments`` or a mapping of its field
      names; absent fields take TrainingArguments' defaults.
    num_training_steps: the optimizer steps of the run (``max_steps``).
    weight_decay_mask: which leaves decay; ``None`` means the Trainer's rule,
      :func:`bertadam_optax.masks.trainer_weight_decay_mask`.
    learning_rate: replaces the schedule the fields describe (a float or an
      optax schedule); ``None`` keeps it.

  Returns:
    A :class:`~bertadam_optax.interop.specs.Plan` with
    ``source="training_arguments"``.

  Raises:
    ValueError: naming the field and its value.

  Examples:
    >>> from bertadam_optax.interop import plan_training_arguments
    >>> plan = plan_training_arguments(
    ...     {'learning_rate': 3e-4, 'warmup_steps': 10,
    ...      'gradient_accumulation_steps': 4}, num_training_steps=100)
    >>> plan.optimizer.name, plan.accumulation_steps, plan.clip
    ('adamw_torch_fused', 4, 1.0)
    >>> plan.learning_rate.num_warmup_steps
    10
  """
  values, ignored = _read_args(args)
  notes = []
  if ignored:
    message = ("from_training_arguments: fields that do not change the "
               "optimizer math are ignored: "
               f"{', '.join(repr(k) for k in ignored)}.")
    warnings.warn(message, stacklevel=2)
    notes.append(message)
  num_training_steps = _validation.check_int("num_training_steps",
                                             num_training_steps, 1)
  lr = _reading.number("learning_rate", values["learning_rate"], 0.0)
  steps = _reading.integer("gradient_accumulation_steps",
                           values["gradient_accumulation_steps"], 1)
  max_norm = values["max_grad_norm"]
  max_norm = 0.0 if max_norm is None else _reading.number(
      "max_grad_norm", max_norm, 0.0)
  weight_decay = _reading.number("weight_decay", values["weight_decay"], 0.0)
  optimizer, lr_decay = _optimizer(values, weight_decay)
  if weight_decay_mask is None:
    weight_decay_mask = specs.NamedMask("trainer_weight_decay_mask")
  name = values["lr_scheduler_type"]
  kwargs = values["lr_scheduler_kwargs"] or {}
  if not isinstance(kwargs, Mapping):
    raise ValueError(f"lr_scheduler_kwargs={kwargs!r} is not a mapping.")
  for key, value in kwargs.items():
    _reading.refuse_text(f"lr_scheduler_kwargs.{key}", value)
  kwargs = dict(kwargs)
  if name in ("reduce_lr_on_plateau", "greedy"):
    if lr_decay:
      raise ValueError("optim_args lr_decay with lr_scheduler_type="
                       f"{name!r} is not supported; expected lr_decay=0.")
    schedule = specs.MetricScheduleSpec(name, lr, kwargs)
  else:
    schedule = specs.TransformersScheduleSpec(
        name, lr, warmup_steps(values, num_training_steps),
        num_training_steps, kwargs, lr_decay)
  if learning_rate is not None:
    notes.append("learning rate replaced by the learning_rate argument.")
    schedule = learning_rate
  return specs.Plan(source="training_arguments", optimizer=optimizer,
                    learning_rate=schedule, clip=max_norm,
                    accumulation_steps=steps,
                    weight_decay_mask=weight_decay_mask, notes=tuple(notes))


def from_training_arguments(
    args: Any,
    *,
    num_training_steps: int,
    weight_decay_mask: Any = None,
    learning_rate: Any = None,
) -> optax.GradientTransformation:
  r"""The optax optimizer the transformers ``Trainer`` builds from ``args``.

  .. math::
    g &= \tfrac1A \textstyle\sum_{a=1}^{A} g_a, \qquad
    g \leftarrow g \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right) \\
    p &\leftarrow p - \eta_k \, \mathrm{opt}(g, p)

  with ``A = gradient_accumulation_steps``, ``c = max_grad_norm`` (0 or None:
  no clipping), ``eta_k`` the ``lr_scheduler_type`` schedule with
  ``lr_scheduler_kwargs`` and the warmup of ``warmup_steps`` (a count, or a
  ratio of ``num_training_steps`` below 1; the older ``warmup_ratio`` when
  ``warmup_steps`` is 0), and ``opt``: ``torch.optim.AdamW`` (bias-corrected,
  decoupled decay) for the ``adamw_torch`` family, ``torch.optim.SGD`` (L2
  decay; ``momentum``/``nesterov`` from ``optim_args``) or
  ``torch.optim.Adagrad`` (L2 decay; ``lr_decay``/``eps`` from
  ``optim_args``; ``lr_decay`` divides the rate by ``1 + k lr_decay``).

  ``reduce_lr_on_plateau`` and ``greedy`` end the chain with
  :func:`~bertadam_optax.transforms.reduce_lr_on_plateau` /
  :func:`~bertadam_optax.transforms.greedy` instead, so ``update`` then
  needs ``value=loss``; the Trainer steps them only after evaluations, here
  they read every update's loss.

  Args:
    args: a ``transformers.TrainingArguments`` or a mapping of its field
      names; absent fields take TrainingArguments' defaults.
    num_training_steps: the optimizer steps of the run (the Trainer's
      ``max_steps``).
    weight_decay_mask: which leaves decay; ``None`` means the Trainer's rule,
      :func:`bertadam_optax.masks.trainer_weight_decay_mask`.
    learning_rate: replaces the schedule the fields describe (a float or an
      optax schedule); ``None`` keeps it.

  Returns:
    An ``optax.GradientTransformation`` (``GradientTransformationExtraArgs``
    for the metric-driven schedules); ``optax.MultiSteps``' when accumulating.

  Raises:
    ValueError: naming the field and its value, for an unsupported ``optim``
      (listing the supported ones), an unknown scheduler, a negative learning
      rate or a bad ``lr_scheduler_kwargs``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import get_lr
    >>> from bertadam_optax.interop import from_training_arguments
    >>> tx = from_training_arguments(
    ...     {'learning_rate': 1e-3, 'lr_scheduler_type': 'constant'},
    ...     num_training_steps=100)
    >>> params = {'dense.weight': jnp.ones(2), 'dense.bias': jnp.ones(2)}
    >>> state = tx.init(params)
    >>> round(float(get_lr(state)), 6)
    0.001

  References:
    transformers, ``trainer.py`` (``create_optimizer``, ``create_scheduler``),
    ``trainer_optimizer.py``, ``training_args.py`` (``get_warmup_steps``).
  """
  return plan_training_arguments(
      args, num_training_steps=num_training_steps,
      weight_decay_mask=weight_decay_mask,
      learning_rate=learning_rate).build()
