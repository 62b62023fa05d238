r"""What a run's files are: ds_config, TrainingArguments, bing_bert, script.

:func:`detect_run_kind` decides from the files' contents, and says how it
decided, so that ``bertadam-optax port`` never routes a TrainingArguments
JSON with ``"fp16": true`` to the ds_config reader:

* a shell script (``#!``, a ``.sh`` name, or a line starting a launcher) is a
  ``"launch_script"``;
* two JSON files, one with ``mixed_seq_training`` (bing_bert's ``--cf``) and
  a ds_config, are a ``"bing_bert"`` pair;
* one JSON object is a ``"deepspeed"`` config or ``"training_arguments"``
  by the keys only one of them has (``fp16``/``bf16`` count as DeepSpeed's
  only when they hold an object, as they do in a ds_config; as booleans they
  are TrainingArguments fields).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from bertadam_optax.interop import _trainer_fields
from bertadam_optax.interop import deepspeed_config

__all__ = [
  "DEEPSPEED_CONFIG_KEYS",
  "RUN_KINDS",
  "RunKind",
  "detect_run_kind",
]

RUN_KINDS = ("deepspeed", "training_arguments", "bing_bert", "launch_script")
"""The kinds :func:`detect_run_kind` tells apart."""

DEEPSPEED_CONFIG_KEYS = frozenset(
  (
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
    "optimizer",
    "scheduler",
    "zero_optimization",
    "gradient_clipping",
    "steps_per_print",
    "wall_clock_breakdown",
    "prescale_gradients",
    "gradient_predivide_factor",
    "sparse_attention",
    "flops_profiler",
    "tensorboard",
    "wandb",
    "csv_monitor",
    "comet",
    "zero_allow_untested_optimizer",
    "communication_data_type",
    "autotuning",
    "data_efficiency",
    "curriculum_learning",
    "elasticity",
    "pipeline",
    "aio",
    "compression_training",
    "checkpoint",
    "data_types",
    "comms_logger",
    "memory_breakdown",
    "sparse_gradients",
    "amp",
    "zero_force_ds_cpu_optimizer",
    "tensor_parallel",
    "torch_autocast",
    "fp32_allreduce",
    "dump_state",
    "hybrid_engine",
    "compile",
    "nebula",
    "disable_allgather",
    "load_universal_checkpoint",
    "weight_quantization",
    "seq_parallel_communication_data_type",
    "timers",
    "monitor_config",
  )
)
"""Top-level keys of a DeepSpeed config that TrainingArguments do not have."""

_SHARED = (
  "gradient_accumulation_steps",
  "fp16",
  "bf16",
  "activation_checkpointing",
)


@dataclasses.dataclass(frozen=True)
class RunKind:
  """What :func:`detect_run_kind` found.

  Attributes:
    kind: one of :data:`RUN_KINDS`.
    paths: the files, in the order their kind reads them (bing_bert: the
      ``--cf`` file, then the ds_config).
    reason: how the kind was decided, in words.
  """

  kind: str
  paths: tuple[str, ...]
  reason: str


def _is_script(path: str, text: str) -> bool:
  if path.endswith((".sh", ".bash")) or text.startswith("#!"):
    return True
  starts = ("deepspeed ", "torchrun ", "python ", "python3 ")
  return any(line.strip().startswith(starts) for line in text.splitlines())


def _load(path: str) -> tuple[str, Any]:
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except OSError as e:
    raise ValueError(f"{path!r} cannot be read: {e.strerror}.") from e
  except UnicodeDecodeError as e:
    raise ValueError(
      f"{path!r} is not a UTF-8 text file: {e.reason} at byte {e.start}."
    ) from None
  if _is_script(path, text.lstrip()):
    return text, None
  # Not a script: a JSON object, read (and refused) as configs are.
  return text, deepspeed_config.load_config(path)


def _keys_of(config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
  """The keys that only a ds_config has, and those only TrainingArguments."""
  ds, ta = [], []
  fields = _trainer_fields.TRAINING_ARGUMENTS_FIELDS | set(
    _trainer_fields.OTHER_VERSION_FIELDS
  )
  for key, value in config.items():
    if key in ("fp16", "bf16", "activation_checkpointing"):
      (ds if isinstance(value, Mapping) else ta).append(key)
    elif key in DEEPSPEED_CONFIG_KEYS:
      ds.append(key)
    elif key in fields and key not in _SHARED:
      ta.append(key)
  return ds, ta


def _named(keys: Sequence[str]) -> str:
  shown = ", ".join(repr(k) for k in keys[:4])
  return shown + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")


def _single(path: str, config: Mapping[str, Any]) -> RunKind:
  if "mixed_seq_training" in config:
    raise ValueError(
      f"{path!r} is a bing_bert --cf file (it has 'mixed_seq_training'); "
      "give its ds_config too (the --deepspeed_config of the run)."
    )
  ds, ta = _keys_of(config)
  if len(ta) > len(ds):
    deepspeed = config.get("deepspeed")
    what = "a dict" if isinstance(deepspeed, Mapping) else repr(deepspeed)
    extra = (
      f"; its 'deepspeed' field ({what}) gives the ds_config the Trainer runs"
      if deepspeed
      else ""
    )
    return RunKind(
      "training_arguments",
      (path,),
      f"{len(ta)} TrainingArguments fields ({_named(ta)}) against "
      f"{len(ds)} ds_config keys{extra}",
    )
  if len(ds) > len(ta):
    return RunKind(
      "deepspeed",
      (path,),
      f"{len(ds)} ds_config keys ({_named(ds)}) against {len(ta)} "
      "TrainingArguments fields",
    )
  raise ValueError(
    f"{path!r}: cannot tell a ds_config ({_named(ds) or 'no keys'}) from "
    f"TrainingArguments ({_named(ta) or 'no fields'}); pass --kind to port "
    "(the kind)."
  )


def detect_run_kind(
  paths: str | os.PathLike | Sequence[str | os.PathLike],
) -> RunKind:
  """Decides what a run's files are, from their contents.

  Args:
    paths: one file (a ds_config, a TrainingArguments JSON or a launch
      script) or two (a bing_bert ``--cf`` file and its ds_config, in any
      order).

  Returns:
    A :class:`RunKind` with the reason.

  Raises:
    ValueError: for an unreadable file, or contents that do not tell.

  Examples:
    >>> import json, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'args.json')
    >>> with open(path, 'w') as f:
    ...   json.dump({'learning_rate': 1e-4, 'fp16': True, 'output_dir': 'o'}, f)
    >>> detect_run_kind(path).kind
    'training_arguments'
  """
  if isinstance(paths, (str, os.PathLike)):
    paths = [paths]
  paths = [os.fspath(p) for p in paths]
  if not 1 <= len(paths) <= 2:
    raise ValueError(
      f"paths={paths!r}: expected one file, or a bing_bert --cf file and its "
      "ds_config."
    )
  loaded = [_load(p) for p in paths]
  if len(paths) == 1:
    _, config = loaded[0]
    if config is None:
      return RunKind(
        "launch_script", (paths[0],), "a shell script with a launcher command"
      )
    return _single(paths[0], config)
  configs = [c for _, c in loaded]
  if any(c is None for c in configs):
    raise ValueError(
      f"paths={paths!r}: a launch script is ported alone; two files are a "
      "bing_bert --cf file and its ds_config."
    )
  cf = [i for i, c in enumerate(configs) if "mixed_seq_training" in c]
  if len(cf) != 1:
    raise ValueError(
      f"paths={paths!r}: two files are a bing_bert --cf file (with "
      "'mixed_seq_training') and its ds_config; "
      f"{'none' if not cf else 'both'} of these has 'mixed_seq_training'."
    )
  ds_index = 1 - cf[0]
  kind = _single(paths[ds_index], configs[ds_index])
  if kind.kind != "deepspeed":
    raise ValueError(
      f"{paths[ds_index]!r} is not a ds_config ({kind.reason}); a bing_bert "
      "run takes its --deepspeed_config."
    )
  return RunKind(
    "bing_bert",
    (paths[cf[0]], paths[ds_index]),
    f"{paths[cf[0]]!r} has 'mixed_seq_training' (a bing_bert --cf file) and "
    f"{paths[ds_index]!r} is a ds_config ({kind.reason})",
  )
