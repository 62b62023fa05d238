r"""The ``"auto"`` values of a ds_config, filled as the HF Trainer fills them.

With ``TrainingArguments(deepspeed=...)`` the Trainer fills a ds_config's
``"auto"`` values from its arguments in two stages of transformers'
``HfTrainerDeepSpeedConfig``: ``trainer_config_process`` (batch sizes,
accumulation, clipping, the optimizer's ``lr``/``betas``/``eps``/
``weight_decay``, the scheduler's ``warmup_min_lr``/``warmup_max_lr``,
fp16/bf16)
and ``trainer_config_finalize`` (the scheduler's ``total_num_steps`` and
``warmup_num_steps``, ZeRO bucket sizes from the model's hidden size). A value
given instead of ``"auto"`` must match the argument, or the Trainer refuses
the config. :func:`fill_deepspeed_auto` does both stages on a dict; the result
is an ordinary ds_config for
:func:`bertadam_optax.interop.from_deepspeed_config`.
"""

from __future__ import annotations

import copy
import os
import types
from collections.abc import Mapping
from typing import Any

from bertadam_optax import _validation
from bertadam_optax.interop import _trainer_fields
from bertadam_optax.interop import deepspeed_config as ds_reader
from bertadam_optax.interop._reading import auto_keys

__all__ = [
  "HF_DEEPSPEED_FIELDS",
  "auto_keys",
  "fill_deepspeed_auto",
]

HF_DEEPSPEED_FIELDS: Mapping[str, Any] = types.MappingProxyType(
  {
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 1,
    "max_grad_norm": 1.0,
    "learning_rate": 5e-5,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "weight_decay": 0.0,
    "fp16": False,
    "fp16_full_eval": False,
    "bf16": False,
    "bf16_full_eval": False,
    "save_on_each_node": False,
    "warmup_steps": 0,
    "warmup_ratio": 0.0,
  }
)
"""The ``TrainingArguments`` fields the fill reads, with their defaults."""

_HIDDEN_SIZE_KEYS = (
  "zero_optimization.reduce_bucket_size",
  "zero_optimization.stage3_prefetch_bucket_size",
  "zero_optimization.stage3_param_persistence_threshold",
)


def _fields(training_args: Any) -> dict:
  if isinstance(training_args, Mapping):
    values = {
      k: training_args.get(k, v) for k, v in HF_DEEPSPEED_FIELDS.items()
    }
  else:
    values = {
      k: getattr(training_args, k, v) for k, v in HF_DEEPSPEED_FIELDS.items()
    }
  for key in ("per_device_train_batch_size", "gradient_accumulation_steps"):
    values[key] = _validation.check_int(key, values[key], 1)
  for key in (
    "fp16",
    "fp16_full_eval",
    "bf16",
    "bf16_full_eval",
    "save_on_each_node",
  ):
    values[key] = _validation.check_bool(key, values[key])
  return values


class _Filler:
  """``fill_match``/``fill_only`` of ``HfTrainerDeepSpeedConfig`` on a dict."""

  def __init__(self, config: dict):
    self.config = config
    self.mismatches: list[str] = []

  def node(self, long_key: str):
    *parents, key = long_key.split(".")
    node = self.config
    for name in parents:
      node = node.get(name)
      if node is None:
        return None, key
    return node, key

  def value(self, long_key: str):
    node, key = self.node(long_key)
    return None if node is None else node.get(key)

  def fill(self, long_key, hf_value, hf_key=None, must_match=True):
    node, key = self.node(long_key)
    if node is None:
      return
    if node.get(key) == "auto":
      node[key] = hf_value
      return
    if must_match and node.get(key) is not None and node.get(key) != hf_value:
      self.mismatches.append(
        f"- ds {long_key}={node.get(key)} vs hf {hf_key}={hf_value}"
      )


def fill_deepspeed_auto(
  ds_config: Mapping[str, Any] | str | os.PathLike,
  training_args: Any,
  *,
  num_training_steps: int,
  world_size: int = 1,
  hidden_size: int | None = None,
  auto_find_batch_size: bool = False,
) -> dict:
  r"""A ds_config with its ``"auto"`` values filled as the HF Trainer does.

  .. math::
    \texttt{train\_batch\_size} = W \cdot B_{\text{device}} \cdot A, \quad
    \texttt{optimizer.params.betas} = [\beta_1, \beta_2], \quad
    \texttt{scheduler.params.warmup\_num\_steps} = \max(1, N_w), \ \ldots

  key by key as ``HfTrainerDeepSpeedConfig.trainer_config_process`` and
  ``trainer_config_finalize`` (``W`` the world size, ``A`` the accumulation
  steps, ``N_w`` ``get_warmup_steps(num_training_steps)``). A non-``"auto"``
  value that disagrees with the TrainingArguments is an error, as in the
  Trainer; ``warmup_min_lr`` and the ZeRO sizes are filled, never checked.

  Args:
    ds_config: the ds_config (dict or JSON path); not modified.
    training_args: a ``TrainingArguments`` or a mapping of its fields
      (absent fields take the defaults of :data:`HF_DEEPSPEED_FIELDS`).
    num_training_steps: the run's optimizer steps (``max_steps``).
    world_size: ``TrainingArguments.world_size``, the data-parallel size.
    hidden_size: the model's ``config.hidden_size``, needed only for the
      ZeRO bucket sizes given as ``"auto"``.
    auto_find_batch_size: the Trainer's flag: the micro and global batch
      sizes are then filled but not checked.

  Returns:
    A new dict.

  Raises:
    ValueError: listing the mismatched keys as the Trainer does, or naming
      the ZeRO keys that need ``hidden_size``.

  Examples:
    >>> filled = fill_deepspeed_auto(
    ...     {'train_batch_size': 'auto', 'gradient_clipping': 'auto',
    ...      'optimizer': {'type': 'AdamW', 'params': {'lr': 'auto',
    ...                                                'betas': 'auto'}}},
    ...     {'per_device_train_batch_size': 4, 'learning_rate': 3e-4},
    ...     num_training_steps=100, world_size=2)
    >>> filled['train_batch_size'], filled['gradient_clipping']
    (8, 1.0)
    >>> filled['optimizer']['params']
    {'lr': 0.0003, 'betas': [0.9, 0.999]}

  References:
    transformers, ``integrations/deepspeed.py`` (``HfTrainerDeepSpeedConfig``),
    ``training_args.py`` (``get_warmup_steps``).
  """
  config = copy.deepcopy(ds_reader.load_config(ds_config))
  args = _fields(training_args)
  num_training_steps = _validation.check_int(
    "num_training_steps", num_training_steps, 1
  )
  world_size = _validation.check_int("world_size", world_size, 1)
  _validation.check_bool("auto_find_batch_size", auto_find_batch_size)
  f = _Filler(config)

  # trainer_config_process
  micro = args["per_device_train_batch_size"]
  accumulation = args["gradient_accumulation_steps"]
  f.fill(
    "train_micro_batch_size_per_gpu",
    micro,
    "per_device_train_batch_size",
    not auto_find_batch_size,
  )
  f.fill(
    "gradient_accumulation_steps", accumulation, "gradient_accumulation_steps"
  )
  f.fill(
    "train_batch_size",
    world_size * micro * accumulation,
    "train_batch_size (calculated)",
    not auto_find_batch_size,
  )
  f.fill("gradient_clipping", args["max_grad_norm"], "max_grad_norm")
  f.fill("optimizer.params.lr", args["learning_rate"], "learning_rate")
  f.fill(
    "optimizer.params.betas",
    [args["adam_beta1"], args["adam_beta2"]],
    "adam_beta1+adam_beta2",
  )
  f.fill("optimizer.params.eps", args["adam_epsilon"], "adam_epsilon")
  f.fill("optimizer.params.weight_decay", args["weight_decay"], "weight_decay")
  f.fill("scheduler.params.warmup_min_lr", 0, must_match=False)
  f.fill(
    "scheduler.params.warmup_max_lr", args["learning_rate"], "learning_rate"
  )
  if args["save_on_each_node"]:
    config["checkpoint"] = config.get("checkpoint", {})
    config["checkpoint"]["use_node_local_storage"] = True
  f.fill(
    "fp16.enabled",
    args["fp16"] or args["fp16_full_eval"],
    "fp16|fp16_full_eval",
  )
  f.fill(
    "bf16.enabled",
    args["bf16"] or args["bf16_full_eval"],
    "bf16|bf16_full_eval",
  )

  # trainer_config_finalize
  hidden_auto = [k for k in _HIDDEN_SIZE_KEYS if f.value(k) == "auto"]
  if hidden_auto:
    if hidden_size is None:
      raise ValueError(
        f"ds_config keys {', '.join(repr(k) for k in hidden_auto)} are "
        "'auto' and come from the model's hidden_size: pass hidden_size."
      )
    hidden_size = _validation.check_int("hidden_size", hidden_size, 1)
    f.fill(
      "zero_optimization.reduce_bucket_size",
      hidden_size * hidden_size,
      must_match=False,
    )
    stage = (config.get("zero_optimization") or {}).get("stage", 0)
    if stage == 3:
      f.fill(
        "zero_optimization.stage3_prefetch_bucket_size",
        int(0.9 * hidden_size * hidden_size),
        must_match=False,
      )
      f.fill(
        "zero_optimization.stage3_param_persistence_threshold",
        10 * hidden_size,
        must_match=False,
      )
  f.fill(
    "scheduler.params.total_num_steps",
    num_training_steps,
    "num_training_steps (calculated)",
  )
  f.fill(
    "scheduler.params.warmup_num_steps",
    max(1, _trainer_fields.warmup_steps(args, num_training_steps)),
    "warmup_steps",
  )
  if f.mismatches:
    raise ValueError(
      "ds_config values that mismatch the TrainingArguments (the Trainer "
      "refuses them; set them to 'auto'):\n" + "\n".join(f.mismatches)
    )
  return config
