r"""Decoupled weight decay whose coefficient follows a schedule.

:func:`add_scheduled_decayed_weights` is ``optax.add_decayed_weights`` with a
``count -> weight decay`` schedule (Megatron-LM's
:func:`~bertadam_optax.schedules.megatron_wd_schedule`, or any other) and a
state that records the coefficient the next update applies, which
:func:`get_weight_decay` reads as :func:`bertadam_optax.get_lr` reads the
learning rate.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._numerics import increment
from bertadam_optax.transforms._state import stage_field

__all__ = [
  "AddScheduledDecayedWeightsState",
  "add_scheduled_decayed_weights",
  "get_weight_decay",
]


class AddScheduledDecayedWeightsState(NamedTuple):
  """State of :func:`add_scheduled_decayed_weights`."""

  # int32 number of updates applied so far.
  count: chex.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # optax name
  weight_decay: chex.Array  # the coefficient the next update applies


def add_scheduled_decayed_weights(
  weight_decay: optax.ScalarOrSchedule,
  mask: Any = None,
) -> optax.GradientTransformation:
  r"""Adds ``weight_decay(count) * params`` to the updates of masked leaves.

  .. math::
    u \leftarrow u + \lambda_k\, p \quad \text{(leaves where the mask is True)}

  where ``k`` is the number of updates applied before this one. Chained
  before :func:`~bertadam_optax.transforms.scale_by_learning_rate` (as
  ``optax.add_decayed_weights`` is in ``optax.adamw``), the step becomes
  :math:`p \leftarrow p - \eta_k (\hat u + \lambda_k p)`, which is torch
  AdamW's decoupled
  :math:`p \leftarrow p (1 - \eta_k \lambda_k) - \eta_k \hat u`
  with Megatron-LM's per-step ``param_group['weight_decay']``. Chained before
  the moments instead, it is torch ``SGD``/``Adam``'s coupled L2 decay.

  The state keeps ``weight_decay(count)``, the coefficient of the *next*
  update, for :func:`get_weight_decay`.

  Args:
    weight_decay: a coefficient ``>= 0`` or a schedule ``count -> value``.
    mask: which leaves decay: a pytree of booleans with the parameters'
      structure (or a prefix of it), or a callable ``params -> such a
      pytree`` (e.g. Megatron's rule,
      :func:`bertadam_optax.interop.megatron.megatron_weight_decay_mask`);
      ``None`` decays every leaf. Checked against the parameters in ``init``.

  Returns:
    An ``optax.GradientTransformation`` with an
    :class:`AddScheduledDecayedWeightsState`.

  Raises:
    ValueError: a negative or non-numeric ``weight_decay`` (at construction),
      a mask that does not fit the parameters (in ``init``), or ``params=None``
      in ``update``.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from bertadam_optax import transforms
    >>> from bertadam_optax.schedules import megatron_wd_schedule
    >>> params = {"w": jnp.ones(2), "b": jnp.ones(2)}
    >>> decay = transforms.add_scheduled_decayed_weights(
    ...     megatron_wd_schedule(0.0, 0.1, 10, "linear"),
    ...     mask={"w": True, "b": False})
    >>> state = decay.init(params)
    >>> zeros = {"w": jnp.zeros(2), "b": jnp.zeros(2)}
    >>> for _ in range(5):
    ...   updates, state = decay.update(zeros, state, params)
    >>> updates["w"].tolist(), updates["b"].tolist()
    ([0.04..., 0.04...], [0.0, 0.0])
    >>> round(float(transforms.get_weight_decay(state)), 6)
    0.05

  References:
    optax ``add_decayed_weights``; torch ``AdamW``; megatron-core 0.16.1
    ``OptimizerParamScheduler.step`` (``weight_decay = get_wd() * wd_mult``).
  """
  _validation.check_rate("weight_decay", weight_decay)
  schedule = (
    weight_decay if callable(weight_decay) else (lambda count: weight_decay)
  )

  def value_at(count):
    return jnp.asarray(schedule(count), jnp.float32)

  def mask_tree(params):
    if mask is None:
      return jax.tree.map(lambda _: True, params)
    return mask(params) if callable(mask) else mask

  def init_fn(params):
    if mask is not None:
      _validation.check_mask_structure("mask", mask, params)
    count = jnp.zeros([], jnp.int32)
    return AddScheduledDecayedWeightsState(
      count=count, weight_decay=value_at(count)
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
        "add_scheduled_decayed_weights needs the parameters: "
        "call update(updates, state, params)."
      )
    coefficient = value_at(state.count)

    def decay_subtree(decays, u_subtree, p_subtree):
      if isinstance(decays, (bool, np.bool_)):
        if not decays:
          return u_subtree
        return jax.tree.map(
          lambda u, p: (u + coefficient * p).astype(u.dtype),
          u_subtree,
          p_subtree,
        )
      # A 0-d boolean array (possibly traced): select, never branch.
      return jax.tree.map(
        lambda u, p: jnp.where(decays, u + coefficient * p, u).astype(u.dtype),
        u_subtree,
        p_subtree,
      )

    # The mask may be a prefix of the parameters' tree: map over it first.
    updates = jax.tree.map(decay_subtree, mask_tree(params), updates, params)
    count = increment(state.count)
    return updates, AddScheduledDecayedWeightsState(
      count=count, weight_decay=value_at(count)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def get_weight_decay(opt_state: optax.OptState) -> jax.Array | list[jax.Array]:
  """The weight decay coefficient the next update of ``opt_state`` applies.

  Reads the state of :func:`add_scheduled_decayed_weights` wherever it sits
  in the state tree (inside ``optax.chain``, ``optax.MultiSteps``,
  ``optax.inject_hyperparams``, ``optax.multi_transform`` ...), inside and
  outside ``jit``. After ``k`` updates this is ``weight_decay(k)``, what
  Megatron-LM's scheduler has written into ``param_group['weight_decay']``
  (before the group's ``wd_mult``; masked leaves get 0).

  Args:
    opt_state: a state containing an :class:`AddScheduledDecayedWeightsState`.

  Returns:
    A float32 scalar; a list of them, in tree order, when the state holds
    several.

  Raises:
    ValueError: if the state holds no such stage.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> from bertadam_optax import transforms
    >>> opt = optax.chain(transforms.add_scheduled_decayed_weights(0.1),
    ...                   transforms.scale_by_learning_rate(1e-3))
    >>> float(transforms.get_weight_decay(opt.init(jnp.zeros(3))))
    0.1...
  """
  return stage_field(
    opt_state,
    AddScheduledDecayedWeightsState,
    "weight_decay",
    what="scheduled weight decay",
    hint="get_weight_decay works on states of chains containing "
    "bertadam_optax.transforms.add_scheduled_decayed_weights.",
  )
