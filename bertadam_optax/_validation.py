"""Construction-time argument checks: the one validation layer of the package.

Every factory, config reader and command-line option checks its arguments
through these functions, so that one value is judged the same way everywhere:

* a *number* is a Python ``int``/``float``, a NumPy scalar, or a 0-d NumPy or
  concrete JAX array of a real numeric dtype; booleans, strings, ``None``,
  complex numbers and arrays of other shapes are not numbers;
* a number is *finite* unless the caller says infinity means something;
* a *step count* is an integer (an integral float is accepted and returned as
  ``int``) inside the int32 range, because counts are int32 in optax states;
* a *flag* is a real boolean (``True``/``False`` or a NumPy bool), never the
  string ``"false"``;
* a *dtype* is a floating dtype.

Each check raises ``ValueError`` naming the argument (a key path such as
``optimizer.params.lr`` for config readers), showing the value with ``repr``
and saying what is allowed. Checks run on Python values before anything is
traced; a JAX tracer (a hyperparameter injected under ``jit``) passes through
unchecked, since its value is not known until run time. Nothing here is called
from inside traced code.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

INT32_MAX = 2**31 - 1
"""The largest step count an optax ``count`` (int32) can hold."""

MAX_RATE = 1e3
"""The largest learning rate or weight-decay coefficient accepted.

No training run uses a rate anywhere near it; a larger value is a mistake of
units or a typo (``1e30`` for ``1e-3``), refused rather than trained with.
"""

__all__ = [
  "INT32_MAX",
  "MAX_RATE",
  "check_bool",
  "check_choice",
  "check_dtype",
  "check_int",
  "check_mask_structure",
  "check_non_negative",
  "check_number",
  "check_positive",
  "check_range",
  "check_rate",
  "is_number",
  "is_traced",
  "to_float",
  "unknown_keys",
]


def is_traced(value: Any) -> bool:
  """Whether ``value`` is a JAX tracer (its value is unknown until run time)."""
  return isinstance(value, jax.core.Tracer)


def _scalar(value: Any) -> Any:
  """``value`` as a Python number if it is a static real number, else None."""
  if isinstance(value, (bool, np.bool_)):
    return None
  if isinstance(value, numbers.Real) and not isinstance(value, np.ndarray):
    # Python int/float and NumPy scalars (np.float32, np.int64, ...).
    return value.item() if isinstance(value, np.generic) else value
  if isinstance(value, (np.ndarray, jax.Array)) and not is_traced(value):
    if value.shape != () or not (
      jnp.issubdtype(value.dtype, jnp.integer)
      or jnp.issubdtype(value.dtype, jnp.floating)
    ):
      return None
    return np.asarray(value).item()
  return None


def is_number(value: Any) -> bool:
  """Whether ``value`` is a static real number (see the module docstring)."""
  return _scalar(value) is not None


def _interval(low, high, low_inclusive, high_inclusive) -> str:
  lo = "-inf" if low is None else repr(low)
  hi = "inf" if high is None else repr(high)
  # An infinite end is never a member of the interval: (-inf, ...), ..., inf).
  return (
    ("[" if low_inclusive and low is not None else "(")
    + f"{lo}, {hi}"
    + ("]" if high_inclusive and high is not None else ")")
  )


def check_number(
  name: str,
  value: Any,
  low: float | None = None,
  high: float | None = None,
  *,
  low_inclusive: bool = True,
  high_inclusive: bool = True,
  allowed: Iterable[float] = (),
  finite: bool = True,
  allow_schedule: bool = False,
  allow_none: bool = False,
) -> Any:
  """Checks that ``value`` is a real number in ``[low, high]`` and returns it.

  The value is returned unchanged (a NumPy scalar stays one), so a caller that
  closes over it keeps its dtype.

  Args:
    name: the argument's name (or key path) for the message.
    value: what the user gave.
    low, high: the bounds; ``None`` for unbounded.
    low_inclusive, high_inclusive: whether the bounds are allowed values.
    allowed: values accepted outside the interval (e.g. ``-1`` for "off").
    finite: refuse ``nan`` and ``+-inf`` (``nan`` is always refused).
    allow_schedule: accept a callable (an optax schedule) unchecked.
    allow_none: accept ``None``.

  Returns:
    ``value``.

  Raises:
    ValueError: naming ``name``, showing ``value`` and what is allowed.
  """
  if value is None and allow_none:
    return value
  if (
    allow_schedule
    and callable(value)
    and not isinstance(value, (np.ndarray, jax.Array))
  ):
    return value
  if is_traced(value):
    return value
  number = _scalar(value)
  if number is None:
    what = "a number" + (" or a schedule" if allow_schedule else "")
    if isinstance(value, (bool, np.bool_)):
      got = "a boolean"
    elif isinstance(value, (str, bytes)):
      got = "a string"
    elif value is None:
      got = "None"
    elif isinstance(value, (np.ndarray, jax.Array)):
      got = f"an array of shape {value.shape} and dtype {value.dtype}"
    else:
      got = f"a {type(value).__name__}"
    raise ValueError(f"{name}={value!r} is {got}; expected {what}.")
  if number in tuple(allowed):
    return value
  if math.isnan(number) or (finite and math.isinf(number)):
    raise ValueError(
      f"{name}={value!r} is not finite; expected a finite value in "
      f"{_interval(low, high, low_inclusive, high_inclusive)}."
    )
  ok = True
  if low is not None:
    ok = number >= low if low_inclusive else number > low
  if ok and high is not None:
    ok = number <= high if high_inclusive else number < high
  if not ok:
    extra = "".join(f" or {a!r}" for a in allowed)
    raise ValueError(
      f"{name}={value!r} is out of range; expected a value in "
      f"{_interval(low, high, low_inclusive, high_inclusive)}{extra}."
    )
  return value


def check_range(
  name: str,
  value: Any,
  low: float | None = None,
  high: float | None = None,
  *,
  low_inclusive: bool = True,
  high_inclusive: bool = True,
  allowed: Iterable[float] = (),
  finite: bool = True,
) -> Any:
  """:func:`check_number` for a hyperparameter that may also be a schedule.

  A callable (an optax schedule) or a tracer passes through; anything else
  must be a finite real number in the interval.
  """
  return check_number(
    name,
    value,
    low,
    high,
    low_inclusive=low_inclusive,
    high_inclusive=high_inclusive,
    allowed=allowed,
    finite=finite,
    allow_schedule=True,
  )


def check_positive(name: str, value: Any) -> Any:
  """``value > 0`` (or a schedule)."""
  return check_range(name, value, 0, None, low_inclusive=False)


def check_non_negative(name: str, value: Any) -> Any:
  """``value >= 0`` (or a schedule)."""
  return check_range(name, value, 0, None)


def check_rate(name: str, value: Any) -> Any:
  """A learning rate or weight decay (or a schedule): in ``[0, MAX_RATE]``."""
  return check_range(name, value, 0.0, MAX_RATE)


def to_float(
  name: str,
  value: Any,
  low: float | None = None,
  high: float | None = None,
  **kwargs,
) -> float:
  """:func:`check_number`, then the value as a Python ``float``."""
  check_number(name, value, low, high, **kwargs)
  return float(_scalar(value))


def check_int(
  name: str,
  value: Any,
  low: int | None = 0,
  high: int | None = INT32_MAX,
  *,
  allowed: Iterable[int] = (),
) -> int:
  """Checks that ``value`` is an integer in ``[low, high]``; returns an ``int``.

  An integral float (``100.0``, as JSON configs write counts) is accepted;
  ``100.5`` is not. The default range is that of an int32 step count.
  """
  if is_traced(value):  # e.g. a count injected by optax.inject_hyperparams
    return value
  check_number(name, value, allowed=allowed)
  number = _scalar(value)
  if number in tuple(allowed):
    return int(number)
  if isinstance(number, float) and not number.is_integer():
    raise ValueError(
      f"{name}={value!r} is not an integer; expected an "
      f"integer in {_interval(low, high, True, True)}."
    )
  number = int(number)
  if (low is not None and number < low) or (high is not None and number > high):
    extra = "".join(f" or {a!r}" for a in allowed)
    raise ValueError(
      f"{name}={value!r} is out of range; expected an integer "
      f"in {_interval(low, high, True, True)}{extra}."
    )
  return number


def check_bool(name: str, value: Any) -> bool:
  """Checks that ``value`` is a real boolean (not ``"false"``, not ``0``)."""
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  raise ValueError(
    f"{name}={value!r} is not a boolean; expected True or "
    "False (a JSON true/false in a config file)."
  )


def check_dtype(name: str, value: Any, *, allow_none: bool = True) -> Any:
  """Checks that ``value`` names a floating dtype; returns it as a ``jnp.dtype``.

  ``None`` (meaning "the parameter's own dtype") is returned as is when
  ``allow_none``.
  """
  if value is None and allow_none:
    return None
  try:
    dtype = jnp.dtype(value)
  except TypeError:
    dtype = None
  if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(
      f"{name}={value!r} is not a floating dtype; expected e.g. "
      "jnp.float32, jnp.bfloat16 or 'float16'"
      + (" (or None)." if allow_none else ".")
    )
  return dtype


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
  """Returns ``value`` if it is one of ``choices``, else raises with a suggestion."""
  choices = list(choices)
  try:
    if value in choices:
      return value
  except TypeError:  # an unhashable value, e.g. a list from a config file
    pass
  close = difflib.get_close_matches(str(value), choices, n=1)
  hint = f" Did you mean {close[0]!r}?" if close else ""
  raise ValueError(
    f"{name}={value!r} is not a valid choice; expected one of "
    f"{', '.join(repr(c) for c in choices)}.{hint}"
  )


def check_mask_structure(name: str, mask: Any, params: Any) -> Any:
  """Checks a mask (a pytree of booleans, or a callable) against ``params``.

  Called from a transformation's ``init``, where the parameters are first
  known. A callable is applied to ``params`` first. The mask must have the
  parameters' tree structure (or be a prefix of it) with boolean leaves.

  Returns:
    The mask pytree.
  """
  if isinstance(mask, (str, bytes)) or mask is None:
    raise ValueError(
      f"{name}={mask!r} is not a mask; expected a pytree of "
      "booleans shaped like the parameters, or a callable "
      "params -> such a pytree."
    )
  tree = mask(params) if callable(mask) else mask
  leaves = jax.tree.leaves(tree)
  bad = [
    leaf
    for leaf in leaves
    if not isinstance(leaf, (bool, np.bool_))
    and not (
      isinstance(leaf, (np.ndarray, jax.Array))
      and leaf.dtype == jnp.bool_
      and leaf.shape == ()
    )
  ]
  if bad:
    raise ValueError(
      f"{name} has a leaf {bad[0]!r} that is not a boolean; "
      "expected True (decay) or False (no decay) per "
      "parameter."
    )
  try:  # the mask may also be a prefix of the parameters' structure
    jax.tree.map(lambda m, p: None, tree, params)
  except ValueError as e:
    raise ValueError(
      f"{name} does not have the parameters' tree structure: mask "
      f"{jax.tree_util.tree_structure(tree)} vs params "
      f"{jax.tree_util.tree_structure(params)}."
    ) from e
  return tree


def unknown_keys(
  mapping: Iterable[str], known: Iterable[str], *, what: str
) -> list[str]:
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
