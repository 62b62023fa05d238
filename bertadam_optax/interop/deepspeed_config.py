r"""A DeepSpeed ``ds_config.json`` as one optax optimizer.

:func:`from_deepspeed_config` reads the sections of a DeepSpeed config that
decide the fp32 optimizer math and builds the optax transformation that takes
the same steps as DeepSpeed's engine:

``MultiSteps(clip -> optimizer -> scale_by_learning_rate(schedule))``

* ``gradient_clipping``: the engine's global-norm clip,
  ``coef = min(1, c / (norm + 1e-6))``, on the accumulated gradient.
* ``gradient_accumulation_steps`` (or the batch-size triple):
  ``optax.MultiSteps`` with the mean of the micro-batch gradients, which
  DeepSpeed's division of the loss by the accumulation steps gives.
* ``optimizer``: ``Adam``/``AdamW`` (DeepSpeed's ``FusedAdam``, or
  ``torch.optim.Adam``/``AdamW`` with ``torch_adam``), ``Lamb``
  (``FusedLamb``'s CUDA kernel, as :func:`scale_by_fused_lamb`), ``Lion``
  (``FusedLion``), ``Adagrad`` (``torch.optim.Adagrad``); the 1-bit variants
  as one worker computes them (variance freezes and momentum resets included).
* ``scheduler``: :func:`bertadam_optax.schedules.deepspeed_schedule`; OneCycle's
  momentum cycle drives beta1 through ``optax.inject_hyperparams``.

The chain ends in :func:`bertadam_optax.transforms.scale_by_learning_rate`, so
:func:`bertadam_optax.get_lr` reads the learning rate of the next step.
:func:`plan_deepspeed_config` stops one step earlier, at the typed
:class:`~bertadam_optax.interop.specs.Plan` (inspect, replace fields, print
its source); :func:`from_deepspeed_config` is
``plan_deepspeed_config(...).build()``.
The gradient transformations themselves live in
:mod:`bertadam_optax.transforms`; :func:`scale_by_fused_lamb` is re-exported
here for the old import path.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Mapping
from typing import Any

import optax

from bertadam_optax import _validation
from bertadam_optax import schedules
from bertadam_optax import transforms
from bertadam_optax.interop import _reading
from bertadam_optax.interop import specs
from bertadam_optax.transforms import scale_by_fused_lamb

__all__ = [
  "DEEPSPEED_OPTIMIZERS",
  "LAMB_STATIC_ARGS",
  "accumulation_steps",
  "from_deepspeed_config",
  "load_config",
  "plan_deepspeed_config",
  "scale_by_fused_lamb",
]

DEEPSPEED_OPTIMIZERS = (
  "Adam",
  "AdamW",
  "Lamb",
  "Lion",
  "Adagrad",
  "OneBitAdam",
  "ZeroOneAdam",
  "OneBitLamb",
)
"""Optimizer ``type`` names supported (DeepSpeed matches them in any case)."""

LAMB_STATIC_ARGS = transforms.FUSED_LAMB_STATIC_ARGS
"""``static_args`` of ``optax.inject_hyperparams(scale_by_fused_lamb)`` when
OneCycle's momentum cycle drives beta1."""

_COMPRESSED = {
  "onebitadam": "OneBitAdam",
  "zerooneadam": "ZeroOneAdam",
  "onebitlamb": "OneBitLamb",
}

# Keys read here; everything else in a ds_config leaves the fp32 math alone.
_READ_KEYS = (
  "optimizer",
  "scheduler",
  "gradient_clipping",
  "gradient_accumulation_steps",
  "train_batch_size",
  "train_micro_batch_size_per_gpu",
)

# Optimizer params each type takes, with DeepSpeed's defaults.
_ADAM_KEYS = (
  "lr",
  "betas",
  "eps",
  "weight_decay",
  "bias_correction",
  "adam_w_mode",
  "torch_adam",
  "amsgrad",
  "foreach",
  "fp32_optimizer_states",
  "set_grad_none",
)
_PARAMS = {
  "adam": _ADAM_KEYS,
  "adamw": _ADAM_KEYS,
  "lion": ("lr", "betas", "weight_decay", "set_grad_none"),
  "adagrad": (
    "lr",
    "lr_decay",
    "weight_decay",
    "initial_accumulator_value",
    "eps",
    "foreach",
    "maximize",
    "differentiable",
    "fused",
  ),
  "lamb": (
    "lr",
    "bias_correction",
    "betas",
    "eps",
    "eps_inside_sqrt",
    "weight_decay",
    "max_coeff",
    "min_coeff",
    "amsgrad",
  ),
  "onebitadam": (
    "lr",
    "freeze_step",
    "bias_correction",
    "betas",
    "eps",
    "eps_inside_sqrt",
    "weight_decay",
    "amsgrad",
    "cuda_aware",
    "comm_backend_name",
  ),
  "zerooneadam": (
    "lr",
    "bias_correction",
    "betas",
    "eps",
    "eps_inside_sqrt",
    "weight_decay",
    "amsgrad",
    "cuda_aware",
    "comm_backend_name",
    "var_freeze_step",
    "var_update_scaler",
    "local_step_scaler",
    "local_step_clipper",
  ),
  "onebitlamb": (
    "lr",
    "freeze_step",
    "bias_correction",
    "betas",
    "eps",
    "eps_inside_sqrt",
    "weight_decay",
    "max_coeff",
    "min_coeff",
    "amsgrad",
    "cuda_aware",
    "comm_backend_name",
    "coeff_beta",
    "factor_max",
    "factor_min",
    "factor_threshold",
  ),
}


def load_config(config: Mapping[str, Any] | str | os.PathLike) -> dict:
  """A config as a dict: ``config`` itself, or the JSON file it names.

  Raises:
    ValueError: naming the file, for one that cannot be read, is not UTF-8
      JSON, nests too deeply, or does not hold a JSON object.
  """
  if isinstance(config, Mapping):
    return dict(config)
  if not isinstance(config, (str, os.PathLike)):
    raise ValueError(
      f"config={config!r} is neither a mapping nor a path to a JSON file."
    )
  name = os.fspath(config)
  try:
    with open(config, encoding="utf-8") as f:
      loaded = json.load(f)
  except OSError as e:
    raise ValueError(f"config={name!r} cannot be read: {e.strerror}.") from e
  except UnicodeDecodeError as e:
    raise ValueError(
      f"config={name!r} is not a UTF-8 text file (JSON): "
      f"{e.reason} at byte {e.start}."
    ) from None
  except json.JSONDecodeError as e:
    raise ValueError(
      f"config={name!r} is not valid JSON: {e.msg} (line {e.lineno})."
    ) from e
  except RecursionError:
    raise ValueError(
      f"config={name!r} nests JSON arrays or objects too deeply to be a config."
    ) from None
  if not isinstance(loaded, dict):
    raise ValueError(
      f"config={name!r} holds a JSON "
      f"{type(loaded).__name__}; expected an object."
    )
  return loaded


def accumulation_steps(
  config: Mapping[str, Any], data_parallel_size: int = 1
) -> int:
  """``gradient_accumulation_steps`` as DeepSpeed derives and checks it.

  From whichever of ``train_batch_size``, ``train_micro_batch_size_per_gpu``
  and ``gradient_accumulation_steps`` are given, as DeepSpeed's config does
  (integer divisions included), then DeepSpeed's check ``train_batch_size ==
  micro * accumulation * data_parallel_size``. With none of the batch sizes
  (DeepSpeed then refuses the config) the accumulation steps, or 1, are used.

  Examples:
    >>> accumulation_steps({'train_batch_size': 32,
    ...                     'train_micro_batch_size_per_gpu': 4}, 2)
    4
  """
  dp = _validation.check_int("data_parallel_size", data_parallel_size, 1)
  values = {}
  for key in (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
  ):
    if config.get(key) is not None:
      values[key] = _reading.integer(key, config[key], 1)
  batch = values.get("train_batch_size")
  micro = values.get("train_micro_batch_size_per_gpu")
  steps = values.get("gradient_accumulation_steps")
  if micro is None:
    if batch is None:
      return 1 if steps is None else steps
    if steps is None:
      steps, micro = 1, batch // dp
    else:
      micro = batch // dp // steps
  elif batch is None:
    steps = 1 if steps is None else steps
    batch = micro * steps * dp
  elif steps is None:
    steps = batch // micro // dp
  if steps <= 0 or micro <= 0 or batch != micro * steps * dp:
    raise ValueError(
      f"train_batch_size={batch!r} != train_micro_batch_size_per_gpu="
      f"{micro!r} * gradient_accumulation_steps={steps!r} * "
      f"data_parallel_size={dp!r}: inconsistent batch sizes, which "
      "DeepSpeed rejects."
    )
  return steps


class _Params:
  """An optimizer's ``params`` section, read with key paths and defaults."""

  def __init__(self, params: Mapping[str, Any]):
    self.params = params

  def number(
    self,
    key: str,
    default: float,
    low: float = 0.0,
    high: float | None = None,
    **kwargs,
  ) -> float:
    if key not in self.params:
      return default
    return _reading.number(
      f"optimizer.params.{key}", self.params[key], low, high, **kwargs
    )

  def flag(self, key: str, default: bool) -> bool:
    if key not in self.params:
      return default
    return _reading.boolean(f"optimizer.params.{key}", self.params[key])

  def betas(self, default=(0.9, 0.999)) -> tuple[float, float]:
    betas = self.params.get("betas", default)
    if not isinstance(betas, (list, tuple)) or len(betas) != 2:
      raise ValueError(
        f"optimizer.params.betas={betas!r} is not a pair; "
        "expected [beta1, beta2]."
      )
    b1, b2 = (
      _reading.number(
        f"optimizer.params.betas[{i}]", b, 0.0, 1.0, high_inclusive=False
      )
      for i, b in enumerate(betas)
    )
    return b1, b2


def _optimizer_spec(
  name: str,
  params: Mapping[str, Any],
  beta1: specs.MomentumScheduleSpec | None,
  notes: list[str],
) -> Any:
  """The optimizer spec, DeepSpeed's defaults filled in.

  ``beta1`` is OneCycle's momentum cycle (then beta2 is DeepSpeed's 0.99).
  """
  kind = name.lower()
  for key in params:
    _validation.check_choice("optimizer.params key", key, _PARAMS[kind])
  read = _Params(params)
  # None when absent: the Adams' default depends on the variant.
  weight_decay = (
    read.number("weight_decay", 0.0) if "weight_decay" in params else None
  )

  def with_momentum(b1: float, b2: float) -> tuple[Any, float]:
    if beta1 is None:
      return b1, b2
    notes.append(
      f"OneCycle cycles beta1 ({beta1.to_source()}); beta2 is "
      f"{schedules.ONE_CYCLE_BETA2}, as DeepSpeed sets it."
    )
    return beta1, schedules.ONE_CYCLE_BETA2

  if kind == "lion":
    b1, b2 = with_momentum(*read.betas())
    return specs.LionSpec(b1, b2, weight_decay or 0.0, name=name)
  if kind == "adagrad":
    for key, allowed in (
      ("lr_decay", 0),
      ("maximize", False),
      ("differentiable", False),
    ):
      if params.get(key, allowed) != allowed:
        raise ValueError(
          f"optimizer.params.{key}={params[key]!r} is not "
          f"supported; expected {allowed!r}."
        )
    # torch's Adagrad adds the L2 term to the gradient before the sums.
    return specs.AdagradSpec(
      eps=read.number("eps", 1e-10),
      initial_accumulator_value=read.number("initial_accumulator_value", 0.0),
      weight_decay=weight_decay or 0.0,
      name=name,
    )

  b1, b2 = with_momentum(*read.betas())
  eps = read.number("eps", 1e-8)
  if read.flag("amsgrad", False):
    raise ValueError(
      "optimizer.params.amsgrad=True is not supported "
      "(DeepSpeed's fused and CPU optimizers refuse it too)."
    )
  if kind in _COMPRESSED:
    return _compressed_spec(
      kind, params, read, b1, b2, eps, weight_decay, notes
    )
  if kind == "lamb":
    return specs.LambSpec(
      b1,
      b2,
      eps,
      eps_inside_sqrt=read.flag("eps_inside_sqrt", False),
      bias_correction=read.flag("bias_correction", True),
      weight_decay=weight_decay or 0.0,
      max_coeff=read.number("max_coeff", 10.0),
      min_coeff=read.number("min_coeff", 0.01),
      name=name,
    )
  torch_adam = read.flag("torch_adam", False)
  decoupled = kind == "adamw" or read.flag("adam_w_mode", True)
  if torch_adam and "bias_correction" in params:
    raise ValueError(
      f"optimizer.params.bias_correction={params['bias_correction']!r} "
      "with torch_adam: torch.optim.Adam/AdamW take no bias_correction."
    )
  if weight_decay is None:
    # torch.optim.AdamW defaults to weight_decay=0.01; DeepSpeed's own Adams
    # (and torch's Adam) to 0.
    weight_decay = 0.01 if torch_adam and decoupled else 0.0
    notes.append(
      f"weight_decay not given: {weight_decay!r}, the default of "
      f"{'torch.optim.AdamW' if weight_decay else name}."
    )
  return specs.AdamSpec(
    b1,
    b2,
    eps,
    weight_decay,
    bias_correction=read.flag("bias_correction", True),
    decoupled=decoupled,
    name=name,
  )


def _compressed_spec(kind, params, read, b1, b2, eps, weight_decay, notes):
  """The spec of a 1-bit optimizer: what one worker computes."""
  name = _COMPRESSED[kind]
  if not isinstance(b1, float) and not _validation.is_number(b1):
    raise ValueError(
      f"optimizer.type={name!r} with the OneCycle momentum "
      "cycle is not supported."
    )
  for key in ("bias_correction", "eps_inside_sqrt"):
    if key in params:
      read.flag(key, False)
      notes.append(
        f"optimizer.params.{key}={params[key]!r}: {name} reads "
        "it but never applies it (no effect)."
      )
  for key in ("cuda_aware", "comm_backend_name"):
    if key in params:
      notes.append(
        f"optimizer.params.{key}: communication only; one worker "
        "has nothing to compress."
      )

  def count(key, default, low=0):
    if key not in params:
      return default
    return _validation.check_int(f"optimizer.params.{key}", params[key], low)

  weight_decay = weight_decay or 0.0
  if kind == "onebitadam":
    return specs.OneBitAdamSpec(
      b1, b2, eps, weight_decay, freeze_step=count("freeze_step", 100000)
    )
  if kind == "zerooneadam":
    return specs.ZeroOneAdamSpec(
      b1,
      b2,
      eps,
      weight_decay,
      var_freeze_step=count("var_freeze_step", 100000),
      var_update_scaler=count("var_update_scaler", 16, 1),
      local_step_scaler=count("local_step_scaler", 32678, 1),
      local_step_clipper=count("local_step_clipper", 16, 1),
    )
  return specs.OneBitLambSpec(
    b1,
    b2,
    eps,
    weight_decay,
    freeze_step=count("freeze_step", 100000),
    max_coeff=read.number("max_coeff", 10.0),
    min_coeff=read.number("min_coeff", 0.01),
    coeff_beta=read.number("coeff_beta", 0.9, 0.0, 1.0),
    factor_max=read.number("factor_max", 4.0),
    factor_min=read.number("factor_min", 0.5),
    factor_threshold=read.number("factor_threshold", 0.1),
  )


def _section(config: Mapping[str, Any], key: str) -> tuple[str, dict]:
  """``(type, params)`` of the "optimizer" or "scheduler" section."""
  section = config[key]
  if not isinstance(section, Mapping) or "type" not in section:
    raise ValueError(
      f"{key}={section!r}: expected {{'type': ..., 'params': {{...}}}}."
    )
  params = section.get("params")
  if params is None:
    params = {}
  if not isinstance(params, Mapping):
    raise ValueError(f"{key}.params={params!r} is not an object.")
  for name, value in params.items():
    _reading.refuse_text(f"{key}.params.{name}", value)
  if not isinstance(section["type"], str):
    raise ValueError(f"{key}.type={section['type']!r} is not a string.")
  return section["type"], dict(params)


def plan_deepspeed_config(
  config: Mapping[str, Any] | str | os.PathLike,
  *,
  total_steps: int | None = None,
  data_parallel_size: int = 1,
  weight_decay_mask: Any = None,
  learning_rate: Any = None,
) -> specs.Plan:
  r"""What a ``ds_config.json`` asks for, checked, as a typed plan.

  The result is a :class:`~bertadam_optax.interop.specs.Plan`.

  The optimizer, scheduler, clip and accumulation of
  :func:`from_deepspeed_config`, before anything is built:
  ``plan.build()`` is the optimizer, ``plan.describe()`` and
  ``plan.to_source()`` what ``bertadam-optax port`` prints, and
  ``dataclasses.replace(plan, learning_rate=...)`` swaps a field.

  Args:
    config: a ds_config dict or the path of its JSON file.
    total_steps: fills the scheduler's ``total_num_steps`` when the config
      leaves it out (WarmupDecayLR, WarmupCosineLR).
    data_parallel_size: DeepSpeed's world size, for the batch-size triple.
    weight_decay_mask: which leaves decay; ``None`` decays every leaf.
    learning_rate: replaces the config's learning rate (its scheduler and
      ``optimizer.params.lr``): a float or an optax schedule.

  Returns:
    A :class:`~bertadam_optax.interop.specs.Plan` with ``source="ds_config"``.

  Raises:
    ValueError: naming the key path (``optimizer.params.lr``) and its value.

  Examples:
    >>> from bertadam_optax.interop import plan_deepspeed_config
    >>> plan = plan_deepspeed_config({
    ...     'train_batch_size': 8, 'gradient_accumulation_steps': 2,
    ...     'gradient_clipping': 1.0,
    ...     'optimizer': {'type': 'AdamW', 'params': {'lr': 1e-3}}})
    >>> plan.optimizer.name, plan.learning_rate, plan.clip
    ('AdamW', 0.001, 1.0)
    >>> plan.accumulation_steps
    2
    >>> tx = plan.build()
  """
  if learning_rate is not None and not dataclasses.is_dataclass(learning_rate):
    # A float or a schedule; a schedule spec (a dataclass) checks itself.
    _validation.check_rate("learning_rate", learning_rate)
  config = load_config(config)
  _reading.refuse_auto(config)
  notes: list[str] = []
  ignored = _validation.unknown_keys(
    config, _READ_KEYS, what="a DeepSpeed config key"
  )
  if ignored:
    message = (
      "from_deepspeed_config: keys that do not change the fp32 "
      "optimizer math are ignored: "
      f"{', '.join(repr(k) for k in ignored)}."
    )
    warnings.warn(message, stacklevel=2)
    notes.append(message)
  if total_steps is not None:
    total_steps = _validation.check_int("total_steps", total_steps, 1)
  steps = accumulation_steps(config, data_parallel_size)
  clip = _reading.number(
    "gradient_clipping", config.get("gradient_clipping", 0.0), 0.0
  )
  if "optimizer" not in config:
    raise ValueError(
      "config has no 'optimizer' section; expected "
      "{'type': ..., 'params': {...}}."
    )
  name, params = _section(config, "optimizer")
  by_lower = {n.lower(): n for n in DEEPSPEED_OPTIMIZERS}
  if name.lower() not in by_lower:
    _validation.check_choice("optimizer.type", name, DEEPSPEED_OPTIMIZERS)
  # DeepSpeed's engine refuses it for every optimizer type.
  if "max_grad_norm" in params:
    raise ValueError(
      f"optimizer.params.max_grad_norm={params['max_grad_norm']!r}: "
      "DeepSpeed refuses it; use the top-level 'gradient_clipping'."
    )
  lr = _Params(params).number("lr", 1e-2 if name.lower() == "adagrad" else 1e-3)
  schedule: Any = lr
  beta1 = None
  if config.get("scheduler") is not None:
    kind, section = _section(config, "scheduler")
    if (
      kind in ("WarmupDecayLR", "WarmupCosineLR")
      and section.get("total_num_steps") is None
      and total_steps is not None
    ):
      section["total_num_steps"] = total_steps
      notes.append(
        f"scheduler.params.total_num_steps={total_steps} from total_steps."
      )
    schedule = specs.DeepSpeedScheduleSpec(kind, section, lr)
    # OneCycle cycles the momentum only of optimizers with betas.
    if (
      schedules.deepspeed_momentum_schedule(kind, section) is not None
      and name.lower() != "adagrad"
    ):
      beta1 = specs.MomentumScheduleSpec(kind, section)
  optimizer = _optimizer_spec(name, params, beta1, notes)
  if learning_rate is not None:
    notes.append("learning rate replaced by the learning_rate argument.")
    schedule = learning_rate
  return specs.Plan(
    source="ds_config",
    optimizer=optimizer,
    learning_rate=schedule,
    clip=clip,
    accumulation_steps=steps,
    weight_decay_mask=weight_decay_mask,
    notes=tuple(notes),
  )


def from_deepspeed_config(
  config: Mapping[str, Any] | str | os.PathLike,
  *,
  total_steps: int | None = None,
  data_parallel_size: int = 1,
  weight_decay_mask: Any = None,
  learning_rate: Any = None,
) -> optax.GradientTransformation:
  r"""The optax optimizer that takes the steps a ``ds_config.json`` describes.

  .. math::
    g &= \tfrac1A \textstyle\sum_{a=1}^{A} g_a, \qquad
    g \leftarrow g \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right) \\
    p &\leftarrow p - \eta_k \, \mathrm{opt}(g, p)

  with ``A`` the accumulation steps, ``c`` = ``gradient_clipping`` (0: none),
  ``eta_k`` the scheduler's learning rate of DeepSpeed's ``k``-th optimizer
  step, and ``opt`` the optimizer's update:

  * ``Adam``/``AdamW``: DeepSpeed's rule, type ``Adam`` means decoupled
    weight decay (AdamW) unless ``adam_w_mode`` is false (then L2: the decay
    joins the gradient); ``bias_correction`` (default true) as FusedAdam;
    ``torch_adam`` gives torch's Adam/AdamW, whose AdamW decays 0.01 by
    default. ``Adam`` with ``bias_correction: false`` is BertAdam with global
    clipping, built from the same blocks as :func:`bertadam_optax.bertadam`.
  * ``Lamb``: FusedLamb's kernel, :func:`scale_by_fused_lamb` (per-tensor
    trust ratio clamped to ``[min_coeff, max_coeff]``, default
    ``[0.01, 10]``; bias correction on the step size; decay inside the trust
    ratio).
  * ``Lion``: FusedLion (betas default ``(0.9, 0.999)``, decoupled decay).
  * ``Adagrad``: torch's Adagrad (L2 decay, ``eps`` outside the square root).
  * ``OneBitAdam``/``ZeroOneAdam``/``OneBitLamb``: what one worker computes
    (:func:`~bertadam_optax.transforms.scale_by_onebit_adam`: the variance
    frozen after ``freeze_step``;
    :func:`~bertadam_optax.transforms.scale_by_zero_one_adam`;
    :func:`~bertadam_optax.transforms.scale_by_onebit_lamb`), first no-op
    step included.

  With a ``OneCycle`` scheduler and an optimizer with betas, beta1 follows
  :func:`~bertadam_optax.schedules.one_cycle_momentum` and beta2 is 0.99, as
  DeepSpeed writes them into the param groups.

  Args:
    config: a ds_config dict or the path of its JSON file.
    total_steps: fills the scheduler's ``total_num_steps`` when the config
      leaves it out (WarmupDecayLR, WarmupCosineLR).
    data_parallel_size: DeepSpeed's world size, for the batch-size triple.
    weight_decay_mask: which leaves decay (pytree of bools or a function of
      the params, e.g. :func:`bertadam_optax.bert_weight_decay_mask` for
      bing_bert's no-decay groups); ``None`` decays every leaf.
    learning_rate: replaces the config's learning rate (a float or an optax
      schedule); ``None`` keeps it.

  Returns:
    An ``optax.GradientTransformation``; ``optax.MultiSteps``' when the config
    accumulates gradients.

  Raises:
    ValueError: naming the key and its value, for an unknown optimizer or
      scheduler type (with the closest name), a missing required scheduler
      parameter, a negative learning rate, an inconsistent batch-size triple
      or an unreadable file.

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import get_lr
    >>> from bertadam_optax.interop import from_deepspeed_config
    >>> tx = from_deepspeed_config({
    ...     'train_batch_size': 4, 'gradient_clipping': 1.0,
    ...     'optimizer': {'type': 'AdamW', 'params': {'lr': 1e-3}},
    ...     'scheduler': {'type': 'WarmupLR', 'params': {
    ...         'warmup_min_lr': 0.0, 'warmup_max_lr': 1e-3,
    ...         'warmup_num_steps': 10, 'warmup_type': 'linear'}}})
    >>> state = tx.init({'w': jnp.ones(2)})
    >>> float(get_lr(state))
    0.0

  References:
    DeepSpeed, ``deepspeed/runtime/engine.py`` (``_configure_basic_optimizer``,
    ``_take_model_step``), ``deepspeed/runtime/config.py`` (batch sizes),
    ``deepspeed/ops/adam/fused_adam.py``, ``deepspeed/ops/lamb/fused_lamb.py``.
  """
  return plan_deepspeed_config(
    config,
    total_steps=total_steps,
    data_parallel_size=data_parallel_size,
    weight_decay_mask=weight_decay_mask,
    learning_rate=learning_rate,
  ).build()
