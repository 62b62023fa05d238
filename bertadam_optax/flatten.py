r"""BertAdam on a few contiguous buffers instead of one tensor at a time.

XLA:CPU compiles and launches a handful of kernels per parameter tensor, so on
a model of thousands of small tensors the step is dominated by per-tensor
overhead, and compiling it takes minutes. Here the parameters *live* packed
in one flat buffer per (dtype, weight decay) group (:func:`pack`); the model
reads them through :func:`unpack`, whose slices XLA fuses into their
consumers, and :func:`flat_bertadam` updates the buffers with a fixed, small
number of kernels whatever the number of tensors. Packing a tree inside every
step instead would not help: each of the thousands of leaves would still be
read and written by a kernel of its own.

``optax.flatten(bertadam(...))`` would be wrong: flattening erases the tensor
boundaries, so the per-tensor clipping of the original BertAdam would become a
global one, and a weight-decay mask could no longer tell tensors apart. Here
each tensor starts at a multiple of a block size, so the per-tensor norms are
a per-block reduction followed by a segment sum over blocks, and the decay
mask selects whole groups.

It reproduces :func:`bertadam_optax.bertadam` (pytorch-pretrained-bert 0.6.2
``BertAdam``) up to the summation order of the norms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax import alias
from bertadam_optax import transforms

__all__ = [
  "Layout",
  "clip_by_norm_per_tensor_flat",
  "flat_bertadam",
  "layout_of",
  "pack",
  "unpack",
]

# Each tensor is padded to a multiple of this many elements, so a block never
# straddles two tensors: 128 float32 elements are eight 64-byte cache lines.
_BLOCK = 128


class Layout(NamedTuple):
  """Where every leaf of a parameter tree lives in the flat buffers.

  ``slots[i]`` is ``(group, offset, size, shape)`` of the ``i``-th leaf;
  ``sizes`` the length of each group's buffer (a multiple of the block).
  Build it with :func:`layout_of`.
  """

  treedef: Any
  slots: tuple[tuple[str, int, int, tuple[int, ...]], ...]
  sizes: dict[str, int]


def _group_name(dtype, decay: bool) -> str:
  return f"{jnp.dtype(dtype).name}/{'decay' if decay else 'no_decay'}"


def layout_of(params: optax.Params, weight_decay_mask: Any = None) -> Layout:
  """The flat layout of ``params``: one group per (dtype, decayed or not).

  Args:
    params: the parameter tree (arrays or ``jax.ShapeDtypeStruct``).
    weight_decay_mask: which leaves are decayed, a pytree of Python bools or
      a function of ``params`` returning one; ``None`` decays every leaf.

  Returns:
    A :class:`Layout`, static (hashable parts only) and cheap to rebuild.

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import flatten
    >>> params = {"b": jnp.zeros(3), "w": jnp.ones((2, 2))}
    >>> layout = flatten.layout_of(params, {"b": False, "w": True})
    >>> sorted(layout.sizes.items())  # each tensor padded to 128 elements
    [('float32/decay', 128), ('float32/no_decay', 128)]
  """
  leaves, treedef = jax.tree.flatten(params)
  if weight_decay_mask is None:
    decays = [True] * len(leaves)
  else:
    # Checked, not cast: bool('no') is True and would decay the leaf.
    mask = _validation.check_mask_structure(
      "weight_decay_mask", weight_decay_mask, params
    )
    decays = [bool(d) for d in treedef.flatten_up_to(mask)]
  sizes: dict[str, int] = {}
  slots = []
  for leaf, decay in zip(leaves, decays):
    group = _group_name(leaf.dtype, decay)
    offset = sizes.get(group, 0)
    size = math.prod(jnp.shape(leaf))
    slots.append((group, offset, size, tuple(jnp.shape(leaf))))
    sizes[group] = offset + -(-size // _BLOCK) * _BLOCK
  return Layout(treedef, tuple(slots), sizes)


def pack(layout: Layout, tree: Any) -> dict[str, chex.Array]:
  """The leaves of ``tree`` packed into the flat, zero-padded buffers.

  Args:
    layout: the :class:`Layout` of the tree (from :func:`layout_of`).
    tree: a tree with the parameters' structure (params, grads, moments).

  Returns:
    One ``(blocks, 128)`` buffer per group of ``layout``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import flatten
    >>> params = {"b": jnp.arange(3.0), "w": jnp.ones((2, 2))}
    >>> flat = flatten.pack(flatten.layout_of(params), params)
    >>> flat["float32/decay"].shape, float(flat["float32/decay"].sum())
    ((2, 128), 7.0)
  """
  pieces: dict[str, list[chex.Array]] = {g: [] for g in layout.sizes}
  for (group, _, size, _), leaf in zip(
    layout.slots, layout.treedef.flatten_up_to(tree)
  ):
    pieces[group].append(jnp.pad(jnp.ravel(leaf), (0, -size % _BLOCK)))
  # Rows of one block each: the clip coefficient then broadcasts along the
  # minor dimension, which XLA vectorizes; on a 1-D buffer it would need an
  # index division per element.
  return {g: jnp.concatenate(p).reshape(-1, _BLOCK) for g, p in pieces.items()}


def unpack(layout: Layout, flat: dict[str, chex.Array]) -> Any:
  """The parameter tree viewed from the flat buffers (slices, no copies).

  Args:
    layout: the :class:`Layout` the buffers were packed with.
    flat: the buffers, as :func:`pack` returns them.

  Returns:
    The tree, :func:`pack`'s inverse.

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import flatten
    >>> params = {"b": jnp.arange(3.0), "w": jnp.ones((2, 2))}
    >>> layout = flatten.layout_of(params)
    >>> flatten.unpack(layout, flatten.pack(layout, params))["b"]
    Array([0., 1., 2.], dtype=float32)
  """
  leaves = [
    flat[group].reshape(-1)[offset : offset + size].reshape(shape)
    for group, offset, size, shape in layout.slots
  ]
  return layout.treedef.unflatten(leaves)


def _block_owner(layout: Layout) -> dict[str, np.ndarray]:
  """For each group, the index of the tensor each block belongs to."""
  owners: dict[str, list[np.ndarray]] = {g: [] for g in layout.sizes}
  for i, (group, _, size, _) in enumerate(layout.slots):
    owners[group].append(np.full(-(-size // _BLOCK), i, np.int32))
  return {g: np.concatenate(o) for g, o in owners.items()}


def clip_by_norm_per_tensor_flat(
  layout: Layout, max_norm: float
) -> optax.GradientTransformation:
  r""":func:`~bertadam_optax.clip_by_norm_per_tensor` on packed buffers.

  .. math::
    g_i \leftarrow g_i \cdot \min\left(1, \frac{c}{\sqrt{\sum_{b \in i}
    s_b} + 10^{-6}}\right), \qquad s_b = \sum_{j \in b} g_j^2

  for every tensor ``i`` of ``layout``, where the blocks ``b`` never straddle
  two tensors and the padding is zero: one reduction per block, then one
  segment sum over blocks (not elements) gives every tensor's norm. The
  factor is :func:`~bertadam_optax.transforms.torch_clip_coefficient`, the
  one the tree-wise clips use.

  Args:
    layout: the :class:`Layout` the updates are packed with.
    max_norm: the largest norm kept per tensor; <= 0 disables clipping, also
      when it is traced (``optax.inject_hyperparams``).

  Returns:
    An ``optax.GradientTransformation`` with an empty state.

  Examples:
    >>> import jax.numpy as jnp
    >>> tree = {'a': jnp.array([3.0, 4.0]), 'b': jnp.array([0.3, 0.4])}
    >>> layout = layout_of(tree)
    >>> tx = clip_by_norm_per_tensor_flat(layout, 1.0)
    >>> clipped, _ = tx.update(pack(layout, tree), tx.init(None))
    >>> [round(float(x), 4) for x in unpack(layout, clipped)['a']]
    [0.6, 0.8]
  """
  if not isinstance(layout, Layout):
    raise ValueError(
      f"layout={layout!r} is not a Layout; build it with "
      "layout_of(params, weight_decay_mask)."
    )
  _validation.check_number("max_norm", max_norm, finite=False)
  if _validation.is_number(max_norm) and max_norm <= 0:
    return optax.identity()
  owners = _block_owner(layout)
  count = len(layout.slots)

  def update_fn(updates, state, params=None):
    del params
    squares = jnp.zeros([count], jnp.float32)
    for group, g in updates.items():
      per_block = jnp.sum(jnp.square(g.astype(jnp.float32)), axis=1)
      squares = squares + jax.ops.segment_sum(
        per_block, owners[group], num_segments=count, indices_are_sorted=True
      )
    coef = transforms.torch_clip_coefficient(jnp.sqrt(squares), max_norm)
    clipped = {}
    for group, g in updates.items():
      block_coef = coef[owners[group]].astype(g.dtype)
      clipped[group] = g * block_coef[:, None]
    return clipped, state

  return optax.GradientTransformation(
    lambda params: optax.EmptyState(), update_fn
  )


def _decayed_groups(flat: Mapping[str, Any]) -> dict[str, bool]:
  return {group: group.endswith("/decay") for group in flat}


def flat_bertadam(
  layout: Layout,
  lr: optax.ScalarOrSchedule,
  warmup: float = -1,
  t_total: int = -1,
  schedule: str | Callable | None = "warmup_linear",
  b1: float = 0.9,
  b2: float = 0.999,
  e: float = 1e-6,
  weight_decay: float = 0.01,
  max_grad_norm: float = 1.0,
  *,
  clip: str = "per_tensor",
  bias_correction: bool = False,
  mu_dtype: Any = None,
  schedule_kwargs: Mapping[str, Any] | None = None,
  weight_decay_mask: None = None,
) -> optax.GradientTransformation:
  r""":func:`~bertadam_optax.bertadam` on packed parameters.

  The same chain as :func:`~bertadam_optax.bertadam`, with the same
  arguments, on the buffers of :func:`pack`:

  .. math::
    \text{clip} \to m, v \to u = \frac{m}{\sqrt{v} + \epsilon}
    + \lambda p \to -\eta_k u

  where the per-tensor clip is :func:`clip_by_norm_per_tensor_flat` (the
  global one :func:`~bertadam_optax.transforms.clip_by_global_norm_torch`
  with ``eps=0``, as bertadam's), and the weight decay applies to the
  ``'.../decay'`` groups (the mask was given to :func:`layout_of`). The
  optimizer state is bertadam's, on the flat buffers;
  :func:`~bertadam_optax.get_lr` reads it as usual.

  Args:
    layout: the :class:`Layout` of the parameters, from :func:`layout_of`.
    lr, warmup, t_total, schedule, b1, b2, e, weight_decay, max_grad_norm,
      clip, bias_correction, mu_dtype, schedule_kwargs: as in
      :func:`~bertadam_optax.bertadam`.
    weight_decay_mask: refused: the mask belongs to :func:`layout_of`.

  Returns:
    An ``optax.GradientTransformation`` over the packed buffers.

  Raises:
    ValueError: on any hyperparameter :func:`~bertadam_optax.bertadam` rejects,
      or a ``weight_decay_mask`` (it belongs to :func:`layout_of`).

  Examples:
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from bertadam_optax import flatten, get_lr
    >>> params = {'w': jnp.ones((4, 3)), 'b': jnp.zeros(3)}
    >>> layout = flatten.layout_of(params, {'w': True, 'b': False})
    >>> flat = flatten.pack(layout, params)
    >>> tx = flatten.flat_bertadam(layout, 1e-3, warmup=0.1, t_total=100)
    >>> state = tx.init(flat)
    >>> updates, state = tx.update(flat, state, flat)
    >>> sorted(updates), round(float(get_lr(state)), 8)
    (['float32/decay', 'float32/no_decay'], 0.0001)

  References:
    pytorch-pretrained-bert 0.6.2 ``BertAdam``.
  """
  if weight_decay_mask is not None:
    raise ValueError(
      f"flat_bertadam(weight_decay_mask={weight_decay_mask!r})"
      ": the mask is part of the layout; pass it to "
      "layout_of(params, mask)."
    )
  if not isinstance(layout, Layout):
    raise ValueError(
      f"layout={layout!r} is not a Layout; build it with "
      "layout_of(params, weight_decay_mask)."
    )
  _validation.check_choice("clip", clip, ("per_tensor", "global", "none"))
  _validation.check_number("max_grad_norm", max_grad_norm, finite=False)
  # bertadam without its clip validates and builds everything after it.
  inner = alias.bertadam(
    lr,
    warmup,
    t_total,
    schedule,
    b1,
    b2,
    e,
    weight_decay,
    max_grad_norm,
    clip="none",
    bias_correction=bias_correction,
    mu_dtype=mu_dtype,
    schedule_kwargs=schedule_kwargs,
    weight_decay_mask=_decayed_groups,
  )
  if clip == "per_tensor":
    clipping = clip_by_norm_per_tensor_flat(layout, max_grad_norm)
  elif clip == "global":
    clipping = transforms.clip_by_global_norm_torch(max_grad_norm, eps=0.0)
  else:
    return inner
  return optax.chain(clipping, inner)
