"""Construction-time argument checks shared by every factory.

Each check raises ``ValueError`` naming the argument, its value and what is
allowed. They run on Python values before anything is traced; nothing here is
ever called from inside a jitted function.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable


def _is_concrete_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
  """Returns ``value`` if it is one of ``choices``, else raises with a suggestion."""
  choices = list(choices)
  if value in choices:
    return value
  close = difflib.get_close_matches(str(value), choices, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise ValueError(
      f"{name}={value!r} is not a valid choice; expected one of "
      f"{', '.join(repr(c) for c in choices)}.{hint}")


def check_range(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    allowed: Iterable[float] = (),
) -> Any:
  """Checks ``low <= value <= high`` (bounds' inclusiveness configurable).

  Values that are not Python numbers (arrays, tracers, schedules) are passed
  through untouched: only what is known at construction is validated.
  """
  if not _is_concrete_number(value):
    return value
  if value in tuple(allowed):
    return value
  ok = not math.isnan(value)
  if ok and low is not None:
    ok = value >= low if low_inclusive else value > low
  if ok and high is not None:
    ok = value <= high if high_inclusive else value < high
  if not ok:
    lo = "-inf" if low is None else repr(low)
    hi = "inf" if high is None else repr(high)
    interval = (("[" if low_inclusive else "(") + f"{lo}, {hi}" +
                ("]" if high_inclusive else ")"))
    extra = "".join(f" or {a!r}" for a in allowed)
    raise ValueError(f"{name}={value!r} is out of range; expected a value in "
                     f"{interval}{extra}.")
  return value


def check_positive(name: str, value: Any) -> Any:
  return check_range(name, value, 0, None, low_inclusive=False)


def check_non_negative(name: str, value: Any) -> Any:
  return check_range(name, value, 0, None)


def unknown_keys(mapping: Iterable[str], known: Iterable[str], *,
                 what: str) -> list[str]:
  """The keys of ``mapping`` that are not ``known``, in order.

  A key that is a near miss of a known one is a typo, not an unknown key: it
  raises, naming the key and what it most likely means, instead of being
  ignored.

  Args:
    mapping: the keys the user wrote.
    known: the keys that are read.
    what: how to name a known key in the message, e.g. ``"a DeepSpeed key"``.
  """
  known = list(known)
  unknown = []
  for key in mapping:
    if key in known:
      continue
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.85)
    if close:
      raise ValueError(f"key {key!r} is not {what}. Did you mean {close[0]!r}?")
    unknown.append(key)
  return unknown
