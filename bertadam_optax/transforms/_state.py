"""Reading a value out of a transformation's state (a private module).

``get_lr`` and ``get_weight_decay`` both find every stage of one state type in
an optimizer state (a chain, ``MultiSteps``, ``multi_transform``, an
``nnx.Optimizer``'s Variables) and return one of its fields.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

__all__ = ["stage_field"]


def stage_field(
  opt_state: optax.OptState,
  state_type: type,
  field: str,
  *,
  what: str,
  hint: str,
) -> jax.Array | list[jax.Array]:
  """``field`` of every ``state_type`` stage in ``opt_state``.

  Args:
    opt_state: any optimizer state.
    state_type: the NamedTuple state class of the stage to read.
    field: the field to return.
    what: the stage's name in the message when there is none.
    hint: what to say, after the class name, when there is no such stage.

  Returns:
    The field's array (an ``nnx.Optimizer`` Variable unwrapped), or a list of
    them when several stages hold one (``optax.multi_transform``).

  Raises:
    ValueError: no stage of ``state_type`` in ``opt_state``.
  """

  def is_stage(node: Any) -> bool:
    return isinstance(node, state_type)

  # ``nnx.Optimizer`` keeps each state array in a Variable: return the array.
  found = [
    getattr(getattr(s, field), "value", getattr(s, field))
    for s in jax.tree.leaves(opt_state, is_leaf=is_stage)
    if is_stage(s)
  ]
  if not found:
    raise ValueError(
      f"opt_state holds no {what} stage ({state_type.__name__}); {hint}"
    )
  return found[0] if len(found) == 1 else found
