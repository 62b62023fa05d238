"""A weight-decay mask checked against the parameters at ``init``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bertadam_optax import _validation

__all__ = ["checked_mask"]


def checked_mask(
  mask: Any, name: str = "weight_decay_mask"
) -> Callable[[Any], Any] | None:
  """``mask`` as a function ``params -> mask`` that checks its structure.

  What ``optax.add_decayed_weights(mask=...)`` and ``optax.masked`` accept,
  except that a mask of the wrong tree structure or with non-boolean leaves
  raises a ``ValueError`` naming ``name`` when the transformation is
  initialised (where the parameters are first known), instead of decaying
  the wrong leaves. A string is refused at once.

  Args:
    mask: ``None`` (no mask), a pytree of booleans, or a function of the
      parameters returning one.
    name: the argument's name for the messages.

  Returns:
    ``None`` for ``None``, else the checking function.

  Examples:
    >>> import jax.numpy as jnp
    >>> fn = checked_mask({'w': True, 'b': False})
    >>> fn({'w': jnp.ones(2), 'b': jnp.ones(2)})
    {'w': True, 'b': False}
    >>> checked_mask('bias')
    Traceback (most recent call last):
    ...
    ValueError: weight_decay_mask='bias' is not a mask; expected a pytree of booleans shaped like the parameters, or a callable params -> such a pytree.
  """
  if mask is None:
    return None
  if isinstance(mask, (str, bytes)):
    _validation.check_mask_structure(name, mask, None)

  def fn(params: Any) -> Any:
    return _validation.check_mask_structure(name, mask, params)

  return fn
