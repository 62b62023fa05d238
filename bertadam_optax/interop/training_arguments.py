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

import dataclasses
import json
import types
import warnings
from collections.abc import Mapping
from typing import Any

import optax

from bertadam_optax import _validation
from bertadam_optax import schedules
from bertadam_optax.interop import _reading
from bertadam_optax.interop import _trainer_fields
from bertadam_optax.interop import deepspeed_config as ds_reader
from bertadam_optax.interop import hf_deepspeed
from bertadam_optax.interop import specs
from bertadam_optax.interop._trainer_fields import warmup_steps
from bertadam_optax.masks import TRAINER_NO_DECAY_PATTERNS
from bertadam_optax.masks import trainer_weight_decay_mask
from bertadam_optax.transforms import GreedyState
from bertadam_optax.transforms import ReduceLROnPlateauState
from bertadam_optax.transforms import greedy
from bertadam_optax.transforms import reduce_lr_on_plateau

__all__ = [
  "SUPPORTED_OPTIMS",
  "TRAINER_NO_DECAY_PATTERNS",
  "TRAINING_ARGUMENTS_DEFAULTS",
  "GreedyState",
  "ReduceLROnPlateauState",
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

TRAINING_ARGUMENTS_DEFAULTS = types.MappingProxyType(
  {
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
  }
)
"""TrainingArguments' defaults (transformers 5) for the fields read here."""


def _read_args(args: Any) -> tuple[dict, list[str], list[str]]:
  """The fields read here, with defaults; the ignored keys; notes."""
  read = (*TRAINING_ARGUMENTS_DEFAULTS, "deepspeed")
  if isinstance(args, Mapping):
    ignored, notes = _trainer_fields.classify_fields(args, read)
    values = {k: args.get(k, v) for k, v in TRAINING_ARGUMENTS_DEFAULTS.items()}
    values["deepspeed"] = args.get("deepspeed")
  elif hasattr(args, "learning_rate") and hasattr(args, "optim"):
    ignored, notes = [], []
    values = {
      k: getattr(args, k, v) for k, v in TRAINING_ARGUMENTS_DEFAULTS.items()
    }
    values["deepspeed"] = getattr(args, "deepspeed", None)
  else:
    raise ValueError(
      f"args={args!r} is neither a transformers "
      "TrainingArguments nor a mapping of its fields."
    )
  for key in ("optim", "lr_scheduler_type"):
    values[key] = getattr(values[key], "value", values[key])
    if not isinstance(values[key], str):
      raise ValueError(f"{key}={values[key]!r} is not a string.")
  values["lr_scheduler_kwargs"] = _trainer_fields.parse_lr_scheduler_kwargs(
    values["lr_scheduler_kwargs"]
  )
  return values, ignored, notes


def _optim_number(
  extra: Mapping[str, str],
  key: str,
  default: float,
  low: float = 0.0,
  high: float | None = None,
) -> float:
  # optim_args is a string, so its numbers are text by design.
  if key not in extra:
    return default
  try:
    value = float(extra[key])
  except ValueError:
    raise ValueError(
      f"optim_args {key}={extra[key]!r} is not a number."
    ) from None
  return _validation.to_float(f"optim_args {key}", value, low, high)


def _optimizer(
  values: Mapping[str, Any], weight_decay: float
) -> tuple[Any, float]:
  """The Trainer's optimizer spec, and Adagrad's ``lr_decay`` (else 0)."""
  optim = _validation.check_choice("optim", values["optim"], SUPPORTED_OPTIMS)
  extra = _trainer_fields.parse_optim_args(values["optim_args"])
  if optim.startswith("adamw"):
    return specs.AdamSpec(
      _reading.number(
        "adam_beta1", values["adam_beta1"], 0.0, 1.0, high_inclusive=False
      ),
      _reading.number(
        "adam_beta2", values["adam_beta2"], 0.0, 1.0, high_inclusive=False
      ),
      _reading.number("adam_epsilon", values["adam_epsilon"], 0.0),
      weight_decay,
      bias_correction=True,
      decoupled=True,
      name=optim,
    ), 0.0
  # The Trainer puts weight_decay in both param groups, so optim_args'
  # weight_decay never reaches torch: it is read and dropped here too.
  if optim == "sgd":
    for key in extra:
      _validation.check_choice(
        "optim_args key",
        key,
        ("momentum", "dampening", "weight_decay", "nesterov"),
      )
    if _optim_number(extra, "dampening", 0.0) != 0:
      raise ValueError(
        f"optim_args dampening={extra['dampening']!r} is not "
        "supported; expected 0."
      )
    nesterov = extra.get("nesterov", "false").lower()
    _validation.check_choice(
      "optim_args nesterov", nesterov, ("true", "false", "1", "0", "yes", "no")
    )
    return specs.SGDSpec(
      _optim_number(extra, "momentum", 0.0, 0.0, 1.0),
      nesterov in ("true", "1", "yes"),
      weight_decay,
      name=optim,
    ), 0.0
  for key in extra:
    _validation.check_choice(
      "optim_args key", key, ("lr_decay", "weight_decay", "eps")
    )
  return (
    specs.AdagradSpec(
      _optim_number(extra, "eps", 1e-10), 0.0, weight_decay, name=optim
    ),
    _optim_number(extra, "lr_decay", 0.0),
  )


def plan_training_arguments(
  args: Any,
  *,
  num_training_steps: int,
  weight_decay_mask: Any = None,
  learning_rate: Any = None,
  data_parallel_size: int = 1,
) -> specs.Plan:
  r"""What ``TrainingArguments`` ask of the Trainer, as a typed plan.

  The result is a :class:`~bertadam_optax.interop.specs.Plan`.

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
    data_parallel_size: the Trainer's world size (with ``deepspeed``: the
      ``train_batch_size`` it fills and checks).

  Returns:
    A :class:`~bertadam_optax.interop.specs.Plan` with
    ``source="training_arguments"`` (``"training_arguments+deepspeed"`` with
    a ``deepspeed`` field).

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
  if learning_rate is not None and not dataclasses.is_dataclass(learning_rate):
    # A float or a schedule; a schedule spec (a dataclass) checks itself.
    _validation.check_rate("learning_rate", learning_rate)
  values, ignored, notes = _read_args(args)
  if ignored:
    message = (
      "from_training_arguments: fields that do not change the "
      "optimizer math are ignored: "
      f"{', '.join(repr(k) for k in ignored)}."
    )
    warnings.warn(message, stacklevel=2)
    notes.append(message)
  num_training_steps = _validation.check_int(
    "num_training_steps", num_training_steps, 1
  )
  lr = _reading.number("learning_rate", values["learning_rate"], 0.0)
  steps = _reading.integer(
    "gradient_accumulation_steps", values["gradient_accumulation_steps"], 1
  )
  max_norm = values["max_grad_norm"]
  max_norm = (
    0.0 if max_norm is None else _reading.number("max_grad_norm", max_norm, 0.0)
  )
  weight_decay = _reading.number("weight_decay", values["weight_decay"], 0.0)
  optimizer, lr_decay = _optimizer(values, weight_decay)
  explicit_mask = weight_decay_mask is not None
  if weight_decay_mask is None:
    weight_decay_mask = specs.NamedMask("trainer_weight_decay_mask")
  data_parallel_size = _validation.check_int(
    "data_parallel_size", data_parallel_size, 1
  )
  name = values["lr_scheduler_type"]
  kwargs = values["lr_scheduler_kwargs"]
  for key, value in kwargs.items():
    _reading.refuse_text(f"lr_scheduler_kwargs.{key}", value)
  kwargs = dict(kwargs)
  if name in ("reduce_lr_on_plateau", "greedy"):
    if lr_decay:
      raise ValueError(
        "optim_args lr_decay with lr_scheduler_type="
        f"{name!r} is not supported; expected lr_decay=0."
      )
    schedule = specs.MetricScheduleSpec(name, lr, kwargs)
  else:
    schedule = specs.TransformersScheduleSpec(
      name,
      lr,
      warmup_steps(values, num_training_steps),
      num_training_steps,
      kwargs,
      lr_decay,
    )
  plan = specs.Plan(
    source="training_arguments",
    optimizer=optimizer,
    learning_rate=schedule,
    clip=max_norm,
    accumulation_steps=steps,
    weight_decay_mask=weight_decay_mask,
    notes=tuple(notes),
  )
  if values["deepspeed"]:
    plan = _with_deepspeed(
      plan, args, values, num_training_steps, data_parallel_size, explicit_mask
    )
  if learning_rate is not None:
    plan = dataclasses.replace(
      plan,
      learning_rate=learning_rate,
      notes=plan.notes
      + ("learning rate replaced by the learning_rate argument.",),
    )
  return plan


def _deepspeed_config(value: Any) -> dict:
  """The ``deepspeed`` field as a dict.

  A mapping, a JSON object string (as TrainingArguments parses one) or the
  path of a JSON file.
  """
  if isinstance(value, str) and value.startswith("{"):
    try:
      loaded = json.loads(value)
    except json.JSONDecodeError as e:
      raise ValueError(
        f"deepspeed={value!r} is not valid JSON: {e.msg}."
      ) from e
    return dict(loaded)
  try:
    return ds_reader.load_config(value)
  except ValueError as e:
    raise ValueError(str(e).replace("config=", "deepspeed=", 1)) from None


def _with_deepspeed(
  plan: specs.Plan,
  args: Any,
  values: Mapping[str, Any],
  num_training_steps: int,
  data_parallel_size: int,
  explicit_mask: bool,
) -> specs.Plan:
  """What the Trainer runs with ``deepspeed``.

  The ``"auto"`` values filled, the ds_config's optimizer and scheduler
  winning over the Trainer's.
  """
  config = _deepspeed_config(values["deepspeed"])
  auto = _reading.auto_keys(config)
  zero = [k for k in auto if k.startswith("zero_optimization.")]
  filled = hf_deepspeed.fill_deepspeed_auto(
    config,
    args,
    num_training_steps=num_training_steps,
    world_size=data_parallel_size,
    hidden_size=1 if zero else None,
  )
  notes = list(plan.notes)
  if auto:
    notes.append(
      "ds_config 'auto' values filled from the TrainingArguments "
      f"as HfTrainerDeepSpeedConfig does: {', '.join(auto)}"
      + (
        " (the ZeRO bucket sizes, which leave the optimizer "
        "alone, with hidden_size 1)"
        if zero
        else ""
      )
      + "."
    )
  if "optimizer" in filled:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      deepspeed = ds_reader.plan_deepspeed_config(
        filled,
        total_steps=num_training_steps,
        data_parallel_size=data_parallel_size,
        weight_decay_mask=plan.weight_decay_mask if explicit_mask else None,
      )
    notes += [n for n in deepspeed.notes if "are ignored" not in n]
    notes.append(
      "the ds_config's optimizer runs: deepspeed_init hands "
      "DeepSpeed every parameter in one group, so every parameter "
      "decays."
      if not explicit_mask
      else "the ds_config's optimizer runs, with the mask given."
    )
    learning_rate = deepspeed.learning_rate
    if "scheduler" not in filled:
      # The Trainer's scheduler, created on DeepSpeed's optimizer: its base
      # rate is that optimizer's lr.
      learning_rate = dataclasses.replace(
        plan.learning_rate, learning_rate=deepspeed.learning_rate
      )
      notes.append(
        f"the Trainer's {values['lr_scheduler_type']} schedule "
        "drives the ds_config's optimizer (no 'scheduler' "
        "section)."
      )
    return dataclasses.replace(
      deepspeed,
      source="training_arguments+deepspeed",
      learning_rate=learning_rate,
      notes=tuple(notes),
    )
  optimizer = plan.optimizer
  learning_rate = plan.learning_rate
  if "scheduler" in filled:
    kind = filled["scheduler"].get("type")
    section = dict(filled["scheduler"].get("params") or {})
    lr = plan.learning_rate.learning_rate
    learning_rate = specs.DeepSpeedScheduleSpec(kind, section, lr)
    if schedules.deepspeed_momentum_schedule(
      kind, section
    ) is not None and hasattr(optimizer, "b1"):
      optimizer = dataclasses.replace(
        optimizer,
        b1=specs.MomentumScheduleSpec(kind, section),
        b2=schedules.ONE_CYCLE_BETA2,
      )
    notes.append(
      f"the ds_config's {kind} scheduler drives the Trainer's {optimizer.name}."
    )
  else:
    notes.append(
      f"the Trainer's {optimizer.name} and "
      f"{values['lr_scheduler_type']} schedule run (no "
      "'optimizer' or 'scheduler' section in the ds_config)."
    )
  clip = _reading.number(
    "gradient_clipping", filled.get("gradient_clipping", 0.0), 0.0
  )
  return dataclasses.replace(
    plan,
    source="training_arguments+deepspeed",
    optimizer=optimizer,
    learning_rate=learning_rate,
    clip=clip,
    accumulation_steps=ds_reader.accumulation_steps(filled, data_parallel_size),
    notes=tuple(notes),
  )


def from_training_arguments(
  args: Any,
  *,
  num_training_steps: int,
  weight_decay_mask: Any = None,
  learning_rate: Any = None,
  data_parallel_size: int = 1,
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

  With a ``deepspeed`` field (a dict, a JSON string or a path) it is what
  the Trainer runs under DeepSpeed: the ds_config's ``"auto"`` values filled
  as ``HfTrainerDeepSpeedConfig`` fills them
  (:func:`~bertadam_optax.interop.fill_deepspeed_auto`), then the
  ds_config's ``optimizer`` (every parameter in one group, as
  ``deepspeed_init`` hands them: every parameter decays) and ``scheduler``
  where present, the Trainer's otherwise, with the ds_config's clipping and
  accumulation.

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
    data_parallel_size: the Trainer's world size (used with ``deepspeed``).

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
    args,
    num_training_steps=num_training_steps,
    weight_decay_mask=weight_decay_mask,
    learning_rate=learning_rate,
    data_parallel_size=data_parallel_size,
  ).build()
