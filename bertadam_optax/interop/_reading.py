"""Checks of values read from config files (a private module).

Thin layers over :mod:`bertadam_optax._validation` that add what only a
config file can get wrong: the ``"auto"`` placeholders of the transformers
DeepSpeed integration, and numbers or booleans written as JSON strings. Every
message names the key path (``optimizer.params.lr``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertadam_optax import _validation

__all__ = [
  "auto_keys",
  "boolean",
  "integer",
  "number",
  "refuse_auto",
  "refuse_text",
]


def refuse_text(path: str, value: Any) -> None:
  """Raises for ``"auto"`` and for a number written as a string."""
  if not isinstance(value, str):
    return
  if value == "auto":
    raise ValueError(
      f"{path}='auto': 'auto' is a placeholder the transformers Trainer "
      "fills in from its TrainingArguments when it starts DeepSpeed; this "
      "reader has no TrainingArguments, so write the value itself."
    )
  try:
    as_number = float(value)
  except ValueError:
    return
  raise ValueError(
    f"{path}={value!r} is a string; numbers must be JSON "
    f"numbers (write {as_number!r} without quotes)."
  )


def number(
  path: str,
  value: Any,
  low: float | None = None,
  high: float | None = None,
  **kwargs,
) -> float:
  """A real number in ``[low, high]``, as a Python float."""
  refuse_text(path, value)
  return _validation.to_float(path, value, low, high, **kwargs)


def integer(
  path: str,
  value: Any,
  low: int | None = 0,
  high: int | None = _validation.INT32_MAX,
) -> int:
  """An integer (an integral JSON float is accepted) in ``[low, high]``."""
  refuse_text(path, value)
  return _validation.check_int(path, value, low, high)


def boolean(path: str, value: Any) -> bool:
  """A JSON boolean: ``"false"`` and ``0`` are refused."""
  refuse_text(path, value)
  return _validation.check_bool(path, value)


def auto_keys(config: Mapping[str, Any]) -> list[str]:
  """The dotted key paths of ``config`` whose value is ``"auto"``, in order.

  Examples:
    >>> auto_keys({'optimizer': {'params': {'lr': 'auto', 'eps': 1e-8}},
    ...            'train_batch_size': 'auto'})
    ['optimizer.params.lr', 'train_batch_size']
  """
  found = []

  def walk(node, prefix):
    for key, value in node.items():
      path = f"{prefix}{key}"
      if isinstance(value, Mapping):
        walk(value, path + ".")
      elif isinstance(value, str) and value == "auto":
        found.append(path)

  walk(config, "")
  return found


def refuse_auto(config: Mapping[str, Any]) -> None:
  """Raises, listing every ``"auto"`` key, for a ds_config given alone."""
  found = auto_keys(config)
  if found:
    raise ValueError(
      f"ds_config keys {', '.join(found)} are 'auto': the transformers "
      "Trainer fills them from its TrainingArguments. Port the "
      "TrainingArguments with this config as their 'deepspeed' field "
      "(from_training_arguments), or fill them first "
      "(bertadam_optax.interop.fill_deepspeed_auto)."
    )
