"""What the keys of a ``TrainingArguments`` dump are (a private module).

A dump (``TrainingArguments.to_dict()``, a ``training_args.json``) holds about
a hundred fields; a handful decide the optimizer. The porter must tell apart:

* fields it reads;
* other fields of transformers 5's ``TrainingArguments``, which do not change
  the optimizer math (logging, saving, data loading ...): understood, not
  "ignored";
* fields of transformers 4 that transformers 5 removed: flagged, and refused
  where they changed the optimizer (``adafactor: true`` meant
  ``optim="adafactor"``);
* likely typos of a field it reads (``lr_scheduler`` for
  ``lr_scheduler_type``): refused, with the field meant;
* anything else: the keys actually ignored, reported.

It also parses the two string-valued fields as transformers does:
``lr_scheduler_kwargs`` (a JSON object string, as
``TrainingArguments.__post_init__`` with ``_convert_str_dict``) and
``optim_args`` (``"k=v,k2=v2"``, ``trainer_optimizer._parse_optim_args``).
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from bertadam_optax.interop import _reading

__all__ = [
  "OTHER_VERSION_FIELDS",
  "TRAINING_ARGUMENTS_FIELDS",
  "classify_fields",
  "parse_lr_scheduler_kwargs",
  "parse_optim_args",
  "warmup_steps",
]

TRAINING_ARGUMENTS_FIELDS = frozenset(
  (
    "output_dir",
    "per_device_train_batch_size",
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "warmup_steps",
    "optim",
    "optim_args",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "optim_target_modules",
    "gradient_accumulation_steps",
    "average_tokens_across_devices",
    "max_grad_norm",
    "label_smoothing_factor",
    "bf16",
    "fp16",
    "bf16_full_eval",
    "fp16_full_eval",
    "tf32",
    "activation_checkpointing",
    "activation_checkpointing_kwargs",
    "gradient_checkpointing",
    "gradient_checkpointing_kwargs",
    "torch_compile",
    "torch_compile_backend",
    "torch_compile_mode",
    "use_liger_kernel",
    "liger_kernel_config",
    "use_cache",
    "neftune_noise_alpha",
    "torch_empty_cache_steps",
    "auto_find_batch_size",
    "logging_strategy",
    "logging_steps",
    "logging_first_step",
    "log_on_each_node",
    "logging_nan_inf_filter",
    "include_num_input_tokens_seen",
    "log_level",
    "log_level_replica",
    "disable_tqdm",
    "report_to",
    "run_name",
    "project",
    "trackio_space_id",
    "trackio_bucket_id",
    "trackio_static_space_id",
    "eval_strategy",
    "eval_steps",
    "eval_delay",
    "per_device_eval_batch_size",
    "prediction_loss_only",
    "eval_on_start",
    "eval_do_concat_batches",
    "eval_use_gather_object",
    "eval_accumulation_steps",
    "include_for_metrics",
    "batch_eval_metrics",
    "save_only_model",
    "save_strategy",
    "save_steps",
    "save_on_each_node",
    "save_total_limit",
    "enable_jit_checkpoint",
    "push_to_hub",
    "hub_token",
    "hub_private_repo",
    "hub_model_id",
    "hub_strategy",
    "hub_always_push",
    "hub_revision",
    "load_best_model_at_end",
    "metric_for_best_model",
    "greater_is_better",
    "ignore_data_skip",
    "restore_callback_states_from_checkpoint",
    "full_determinism",
    "seed",
    "data_seed",
    "use_cpu",
    "accelerator_config",
    "parallelism_config",
    "dataloader_drop_last",
    "dataloader_num_workers",
    "dataloader_pin_memory",
    "dataloader_persistent_workers",
    "dataloader_prefetch_factor",
    "dataloader_multiprocessing_context",
    "dataloader_in_order",
    "remove_unused_columns",
    "label_names",
    "train_sampling_strategy",
    "length_column_name",
    "ddp_find_unused_parameters",
    "ddp_bucket_cap_mb",
    "ddp_broadcast_buffers",
    "ddp_static_graph",
    "ddp_backend",
    "ddp_timeout",
    "fsdp",
    "fsdp_config",
    "deepspeed",
    "debug",
    "skip_memory_metrics",
    "do_train",
    "do_eval",
    "do_predict",
    "resume_from_checkpoint",
    "local_rank",
  )
)
"""The fields of transformers 5's ``TrainingArguments``."""

OTHER_VERSION_FIELDS: Mapping[str, str] = {
  "adafactor": "transformers 4: adafactor=true meant optim='adafactor'",
  "evaluation_strategy": "transformers 4: renamed eval_strategy",
  "per_gpu_train_batch_size": "transformers 4: per_device_train_batch_size",
  "per_gpu_eval_batch_size": "transformers 4: per_device_eval_batch_size",
  "no_cuda": "transformers 4: use_cpu",
  "overwrite_output_dir": "transformers 4",
  "logging_dir": "transformers 4",
  "save_safetensors": "transformers 4",
  "use_mps_device": "transformers 4",
  "jit_mode_eval": "transformers 4",
  "use_ipex": "transformers 4",
  "fp16_opt_level": "transformers 4: apex AMP level (fp32 master weights)",
  "half_precision_backend": "transformers 4",
  "fp16_backend": "transformers 4",
  "tpu_num_cores": "transformers 4",
  "tpu_metrics_debug": "transformers 4",
  "past_index": "transformers 4",
  "fsdp_min_num_params": "transformers 4",
  "fsdp_transformer_layer_cls_to_wrap": "transformers 4",
  "group_by_length": "transformers 4",
  "use_legacy_prediction_loop": "transformers 4",
  "include_inputs_for_metrics": "transformers 4",
  "push_to_hub_model_id": "transformers 4",
  "push_to_hub_organization": "transformers 4",
  "push_to_hub_token": "transformers 4",
  "_n_gpu": "transformers 4",
  "mp_parameters": "transformers 4",
  "torchdynamo": "transformers 4",
  "ray_scope": "transformers 4",
  "dispatch_batches": "transformers 4",
  "split_batches": "transformers 4",
  "include_tokens_per_second": "transformers 4",
  "evaluate_during_training": "transformers 3",
}
"""Fields of other transformers versions, with what they were."""

# Fields of other versions that changed the optimizer, with the value that
# leaves it alone.
_MATH_FIELDS = {"adafactor": False}


def _near_miss(key: str, read: Iterable[str]) -> str | None:
  """The read field ``key`` most likely means, or None."""
  read = list(read)
  close = difflib.get_close_matches(key, read, n=1, cutoff=0.8)
  if close:
    return close[0]
  # A truncated or extended name: ``lr_scheduler`` for ``lr_scheduler_type``.
  for name in read:
    shorter, longer = sorted((key, name), key=len)
    if len(shorter) >= 5 and longer.startswith(shorter):
      return name
  return None


def classify_fields(
  args: Mapping[str, Any], read: Iterable[str]
) -> tuple[list[str], list[str]]:
  """Sorts the keys of a ``TrainingArguments`` mapping.

  Args:
    args: the mapping.
    read: the fields the porter reads.

  Returns:
    ``(ignored, notes)``: the keys that are neither fields of transformers 5
    nor of an older version (the keys actually ignored), and one note per
    key of an older version that leaves the optimizer alone.

  Raises:
    ValueError: for a likely typo of a read field (naming the field meant),
      or a field of another version that changes the optimizer.
  """
  read = list(read)
  ignored, notes = [], []
  for key in args:
    if key in read or key in TRAINING_ARGUMENTS_FIELDS:
      continue
    if key in OTHER_VERSION_FIELDS:
      if key in _MATH_FIELDS and args[key] != _MATH_FIELDS[key]:
        raise ValueError(
          f"TrainingArguments field {key!r}={args[key]!r} is not a field of "
          f"transformers 5 ({OTHER_VERSION_FIELDS[key]}), and it changes "
          "the optimizer; not supported."
        )
      notes.append(
        f"{key!r} is a field of another transformers version "
        f"({OTHER_VERSION_FIELDS[key]}); it leaves the optimizer "
        "alone."
      )
      continue
    meant = _near_miss(key, read)
    if meant is not None:
      raise ValueError(
        f"key {key!r} is not a TrainingArguments field. Did you mean {meant!r}?"
      )
    ignored.append(key)
  return ignored, notes


def _convert_str_dict(value: dict) -> dict:
  """Transformers' ``_convert_str_dict``: strings to bools and numbers.

  "true"/"false", digits and decimals given as strings become bools, ints and
  floats (recursively).
  """
  out = {}
  for key, item in value.items():
    if isinstance(item, dict):
      item = _convert_str_dict(item)
    elif isinstance(item, str):
      if item.lower() in ("true", "false"):
        item = item.lower() == "true"
      elif item.isdigit():
        item = int(item)
      elif item.replace(".", "", 1).isdigit():
        item = float(item)
    out[key] = item
  return out


def parse_lr_scheduler_kwargs(value: Any) -> dict:
  """``lr_scheduler_kwargs`` as the Trainer receives it.

  ``None`` is no keywords; a mapping is taken as it is; a string starting with
  ``{`` is a JSON object, converted as ``TrainingArguments.__post_init__``
  does. Any other value breaks the Trainer's scheduler call, and is refused.
  """
  if value is None:
    return {}
  if isinstance(value, Mapping):
    return dict(value)
  if isinstance(value, str) and value.startswith("{"):
    try:
      loaded = json.loads(value)
    except json.JSONDecodeError as e:
      raise ValueError(
        f"lr_scheduler_kwargs={value!r} is not valid JSON: {e.msg}."
      ) from e
    if not isinstance(loaded, dict):
      raise ValueError(f"lr_scheduler_kwargs={value!r} is not a JSON object.")
    return _convert_str_dict(loaded)
  raise ValueError(
    f"lr_scheduler_kwargs={value!r} is neither a mapping nor a "
    "JSON object string such as '{\"min_lr_rate\": 0.1}'."
  )


def parse_optim_args(value: Any) -> dict[str, str]:
  """``optim_args`` as the Trainer parses it, into string values.

  ``"k=v,k2=v2"`` with spaces dropped; ``None`` or ``""`` is no arguments.
  """
  if not value:
    return {}
  if not isinstance(value, str):
    raise ValueError(
      f"optim_args={value!r} is not a string; expected 'key=value,key2=value2'."
    )
  parsed = {}
  for item in value.replace(" ", "").split(","):
    key, sep, rest = item.partition("=")
    if not sep or "=" in rest:
      raise ValueError(f"optim_args={value!r}: {item!r} is not key=value.")
    parsed[key] = rest
  return parsed


def warmup_steps(fields: Mapping[str, Any], num_training_steps: int) -> int:
  """The Trainer's warmup steps (``TrainingArguments.get_warmup_steps``).

  ``warmup_steps`` when it is at least 1; a ``warmup_steps`` below 1 is a
  ratio of ``num_training_steps`` (transformers 5); else ``warmup_ratio``.

  Examples:
    >>> warmup_steps({'warmup_steps': 0.25}, 100)
    25
  """
  steps = _reading.number("warmup_steps", fields.get("warmup_steps", 0), 0.0)
  ratio = _reading.number(
    "warmup_ratio", fields.get("warmup_ratio") or 0.0, 0.0, 1.0
  )
  if steps >= 1:
    return int(steps)  # as get_warmup_steps
  if steps > 0:
    return math.ceil(num_training_steps * steps)
  return math.ceil(num_training_steps * ratio)
