"""Checks of values read from config files (a private module).

Thin layers over :mod:`bertadam_optax._validation` that add what only a
config file can get wrong: the ``"auto"`` placeholders of the transformers
DeepSpeed integration, and numbers or booleans written as JSON strings. Every
message names the key path (``optimizer.params.lr``).
"""

from __future__ import annotations

from typing import Any

from bertadam_optax import _validation

__all__ = ["boolean", "integer", "number", "refuse_text"]


def refuse_text(path: str, value: Any) -> None:
  """Raises for ``"auto"`` and for a number written as a string."""
  if not isinstance(value, str):
    return
  if value == "auto":
    raise ValueError(
        f"{path}='auto': 'auto' is a placeholder the transformers Trainer "
        "fills in from its TrainingArguments when it starts DeepSpeed; this "
        "reader has no TrainingArguments, so write the value itself.")
  try:
    as_number = float(value)
  except ValueError:
    return
  raise ValueError(f"{path}={value!r} is a string; numbers must be JSON "
                   f"numbers (write {as_number!r} without quotes).")


def number(path: str, value: Any, low: float | None = None,
           high: float | None = None, **kwargs) -> float:
  """A real number in ``[low, high]``, as a Python float."""
  refuse_text(path, value)
  return _validation.to_float(path, value, low, high, **kwargs)


def integer(path: str, value: Any, low: int | None = 0,
            high: int | None = _validation.INT32_MAX) -> int:
  """An integer (an integral JSON float is accepted) in ``[low, high]``."""
  refuse_text(path, value)
  return _validation.check_int(path, value, low, high)


def boolean(path: str, value: Any) -> bool:
  """A JSON boolean: ``"false"`` and ``0`` are refused."""
  refuse_text(path, value)
  return _validation.check_bool(path, value)
