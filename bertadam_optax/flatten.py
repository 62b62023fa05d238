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
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import alias

__all__ = ["Layout", "clip_by_norm_per_tensor_flat", "flat_bertadam", "layout_of",
           "pack", "unpack"]

# Each tensor is padded to a multiple of this many elements, so a block never
# straddles two tensors: 128 float32 elements are eight 64-byte cache lines.
_BLOCK = 128
# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
_TORCH_CLIP_EPS = 1e-6


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
  """
  leaves, treedef = jax.tree.flatten(params)
  if weight_decay_mask is None:
    decays = [True] * len(leaves)
  else:
    mask = (weight_decay_mask(params) if callable(weight_decay_mask)
            else weight_decay_mask)
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
  """The leaves of ``tree`` packed into the flat, zero-padded buffers."""
  pieces: dict[str, list[chex.Array]] = {g: [] for g in layout.sizes}
  for (group, _, size, _), leaf in zip(layout.slots,
                                       layout.treedef.flatten_up_to(tree)):
    pieces[group].append(jnp.pad(jnp.ravel(leaf), (0, -size % _BLOCK)))
  # Rows of one block each: the clip coefficient then broadcasts along the
  # minor dimension, which XLA vectorizes; on a 1-D buffer it would need an
  # index division per element.
  return {g: jnp.concatenate(p).reshape(-1, _BLOCK) for g, p in pieces.items()}


def unpack(layout: Layout, flat: dict[str, chex.Array]) -> Any:
  """The parameter tree viewed from the flat buffers (slices, no copies)."""
  leaves = [flat[group].reshape(-1)[offset:offset + size].reshape(shape)
            for group, offset, size, shape in layout.slots]
  return layout.treedef.unflatten(leaves)


def _block_owner(layout: Layout) -> dict[str, np.ndarray]:
  """For each group, the index of the tensor each block belongs to."""
  owners: dict[str, list[np.ndarray]] = {g: [] for g in layout.sizes}
  for i, (group, _, size, _) in enumerate(layout.slots):
    owners[group].append(np.full(-(-size // _BLOCK), i, np.int32))
  return {g: np.concatenate(o) for g, o in owners.items()}


def clip_by_norm_per_tensor_flat(layout: Layout,
                                 max_norm: float) -> optax.GradientTransformation:
  r""":func:`~bertadam_optax.clip_by_norm_per_tensor` on packed buffers.

  .. math::
    g_i \leftarrow g_i \cdot \min\left(1, \frac{c}{\sqrt{\sum_{b \in i}
    s_b} + 10^{-6}}\right), \qquad s_b = \sum_{j \in b} g_j^2

  for every tensor ``i`` of ``layout``, where the blocks ``b`` never straddle
  two tensors and the padding is zero: one reduction per block, then one
  segment sum over blocks (not elements) gives every tensor's norm.

  Args:
    layout: the :class:`Layout` the updates are packed with.
    max_norm: the largest norm kept per tensor; <= 0 disables clipping.

  Returns:
    An ``optax.GradientTransformation`` with an empty state.
  """
  if isinstance(max_norm, (int, float)) and max_norm <= 0:
    return optax.identity()
  owners = _block_owner(layout)
  count = len(layout.slots)

  def update_fn(updates, state, params=None):
    del params
    squares = jnp.zeros([count], jnp.float32)
    for group, g in updates.items():
      per_block = jnp.sum(jnp.square(g.astype(jnp.float32)), axis=1)
      squares = squares + jax.ops.segment_sum(
          per_block, owners[group], num_segments=count,
          indices_are_sorted=True)
    coef = jnp.minimum(max_norm / (jnp.sqrt(squares) + _TORCH_CLIP_EPS), 1.0)
    clipped = {}
    for group, g in updates.items():
      block_coef = coef[owners[group]].astype(g.dtype)
      clipped[group] = g * block_coef[:, None]
    return clipped, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update_fn)


def flat_bertadam(
    layout: Layout,
    lr: optax.ScalarOrSchedule,
    *args: Any,
    max_grad_norm: float = 1.0,
    clip: str = "per_tensor",
    **kwargs: Any,
) -> optax.GradientTransformation:
  r""":func:`~bertadam_optax.bertadam` on packed parameters.

  The same update as :func:`~bertadam_optax.bertadam` with the same
  arguments, on the buffers of :func:`pack`: the per-tensor clipping is
  :func:`clip_by_norm_per_tensor_flat`, the weight decay applies to the
  ``'.../decay'`` groups (the mask was given to :func:`layout_of`). The
  optimizer state is bertadam's, on the flat buffers;
  :func:`~bertadam_optax.get_lr` reads it as usual.

  Args:
    layout: the :class:`Layout` of the parameters, from :func:`layout_of`.
    lr: as in :func:`~bertadam_optax.bertadam`.
    *args: positional arguments of :func:`~bertadam_optax.bertadam` after
      ``lr`` (``warmup``, ``t_total``, ``schedule``, ``b1``, ``b2``, ``e``,
      ``weight_decay``).
    max_grad_norm: clipping norm; <= 0 disables clipping.
    clip: ``'per_tensor'``, ``'global'`` or ``'none'``.
    **kwargs: the other keyword arguments of :func:`~bertadam_optax.bertadam`
      except ``weight_decay_mask``.

  Returns:
    An ``optax.GradientTransformation`` over the packed buffers.

  Raises:
    ValueError: on any hyperparameter :func:`~bertadam_optax.bertadam` rejects,
      or a ``weight_decay_mask`` (it belongs to :func:`layout_of`).
  """
  if "weight_decay_mask" in kwargs:
    raise ValueError("flat_bertadam(weight_decay_mask=...): the mask is part "
                     "of the layout; pass it to layout_of(params, mask).")
  inner = alias.bertadam(
      lr, *args, max_grad_norm=max_grad_norm,
      clip="none" if clip == "per_tensor" else clip,
      weight_decay_mask=lambda flat: {g: g.endswith("/decay") for g in flat},
      **kwargs)
  # bertadam validated clip and max_grad_norm above, with clip='none' only
  # standing in for 'per_tensor'.
  if clip not in ("per_tensor", "global", "none"):
    alias.bertadam(lr, *args, clip=clip, **kwargs)
  if clip != "per_tensor":
    return inner
  return optax.chain(clip_by_norm_per_tensor_flat(layout, max_grad_norm),
                     inner)
