r"""Moving a BertAdam training run between PyTorch and JAX, mid-run.

A PyTorch BERT run checkpoints two state dicts: the model's ``state_dict()``
(``name -> tensor``) and the optimizer's, whose ``state`` holds for every
parameter BertAdam's ``step``, ``next_m`` and ``next_v``, keyed by the
parameter's position in the optimizer's ``param_groups``. That is what
pytorch-pretrained-bert 0.6.2 and DeepSpeed's bing_bert ``BertAdam`` save.
:func:`from_torch` turns them into the ``(params, opt_state)`` of a Flax model
trained with :func:`~bertadam_optax.bertadam`, so the run continues in JAX
step for step; :func:`to_torch` goes back.

Which tensor is which leaf is given by a *mapping* ``{torch name: tree path}``,
the path being the leaf's dotted key path
(:func:`~bertadam_optax.path_to_name`, e.g. ``'layer_0.query.kernel'``).
Several torch names may map to one leaf: weights tied in PyTorch (BERT's MLM
decoder and its word embeddings) are one leaf in Flax. :func:`bert_mapping`
is the mapping of a pytorch-pretrained-bert BERT to the parameter tree of
Hugging Face's Flax BERT, and :func:`match_by_name` builds a mapping for
models whose names agree up to the frameworks' conventions.

Layouts follow the leaf's name: a Flax ``kernel`` is a torch ``weight`` with
the axes reordered (``nn.Linear``'s ``[out, in]`` is ``Dense``'s ``[in, out]``;
a convolution's ``[out, in, *window]`` is ``[*window, in, out]``), for the
parameters and for both moments; every other leaf (``embedding``, ``scale``,
``bias``) has torch's layout.

torch is imported only by the functions that create tensors; the package never
needs it otherwise.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax import masks
from bertadam_optax import transforms

__all__ = [
  "bert_mapping",
  "from_torch",
  "match_by_name",
  "params_from_torch",
  "params_to_torch",
  "to_torch",
]

_BERTADAM_KEYS = ("step", "next_m", "next_v")


# Layouts.


def _is_kernel(path: str) -> bool:
  return path.rsplit(".", 1)[-1] == "kernel"


def _flax_axes(ndim: int) -> tuple[int, ...]:
  """The permutation taking a torch weight to a Flax kernel.

  The weight is ``[out, in, *window]``, the kernel ``[*window, in, out]``.
  """
  return tuple(range(2, ndim)) + (1, 0)


def _to_flax_layout(path: str, array: np.ndarray) -> np.ndarray:
  if _is_kernel(path) and array.ndim >= 2:
    return np.transpose(array, _flax_axes(array.ndim))
  return array


def _to_torch_layout(path: str, array: np.ndarray) -> np.ndarray:
  if _is_kernel(path) and array.ndim >= 2:
    return np.transpose(array, np.argsort(_flax_axes(array.ndim)))
  return array


def _torch_shape(path: str, flax_shape: Sequence[int]) -> tuple[int, ...]:
  """The shape torch holds the leaf at ``path`` of shape ``flax_shape`` in."""
  if _is_kernel(path) and len(flax_shape) >= 2:
    return tuple(flax_shape[i] for i in np.argsort(_flax_axes(len(flax_shape))))
  return tuple(flax_shape)


def _numpy(value: Any) -> np.ndarray:
  """A torch tensor (any device, bfloat16 included) or array as NumPy."""
  if hasattr(value, "detach"):
    value = value.detach().cpu()
    if not value.dtype.is_floating_point or value.dtype.itemsize >= 4:
      return value.numpy()
    # NumPy has no bfloat16; float32 holds bfloat16 and float16 exactly.
    return value.float().numpy()
  return np.asarray(value)


def _tensor(array: Any):
  import torch

  array = np.asarray(array)
  if array.dtype == jnp.bfloat16:
    return torch.from_numpy(array.astype(np.float32)).to(torch.bfloat16)
  return torch.from_numpy(np.array(array))


def _put(value: np.ndarray, like: Any) -> jax.Array:
  """``value`` with the dtype and placement of ``like``.

  ``like`` is an array or a ``jax.ShapeDtypeStruct``.
  """
  value = np.asarray(value, dtype=like.dtype)
  sharding = getattr(like, "sharding", None)
  # An uncommitted array stays uncommitted: jit keys its cache on
  # committedness, so a mixed tree would compile the train step twice.
  if sharding is None or not getattr(like, "committed", True):
    return jnp.asarray(value)
  return jax.device_put(value, sharding)


# Trees and mappings.


def _leaves_by_path(tree: Any) -> dict[str, Any]:
  return {
    masks.path_to_name(path): leaf
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
  }


def _listing(title: str, items: Iterable[str]) -> list[str]:
  items = list(items)
  if not items:
    return []
  return [f"{title} ({len(items)}):"] + [f"  {item}" for item in items]


def _tree_problems(
  mapping: Mapping[str, str], leaves: Mapping[str, Any]
) -> list[str]:
  """Tree paths the mapping names but the tree lacks, and the reverse."""
  reached = set(mapping.values())
  return _listing(
    "missing tree paths (mapped, but not in the parameter tree)",
    sorted(p for p in reached if p not in leaves),
  ) + _listing(
    "extra tree paths (no torch name maps to them)",
    [p for p in leaves if p not in reached],
  )


def _raise_if(problems: list[str], what: str) -> None:
  if problems:
    raise ValueError(f"{what}:\n" + "\n".join(problems))


def _shapes(state_dict: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
  # Only shapes: a tensor's data is not copied.
  return {name: tuple(value.shape) for name, value in state_dict.items()}


def _check_mapping(
  mapping: Mapping[str, str],
  torch_shapes: Mapping[str, Any],
  leaves: Mapping[str, Any],
  what: str,
) -> None:
  """Raises a ValueError listing every way the three disagree."""
  problems = _listing(
    "extra torch names (in the state dict, mapped to no tree path)",
    [n for n in torch_shapes if n not in mapping],
  )
  problems += _listing(
    "missing torch names (mapped, but not in the state dict)",
    [n for n in mapping if n not in torch_shapes],
  )
  problems += _tree_problems(mapping, leaves)
  mismatched = []
  for name, path in mapping.items():
    if name in torch_shapes and path in leaves:
      expected = _torch_shape(path, np.shape(leaves[path]))
      got = tuple(torch_shapes[name])
      if got != expected:
        mismatched.append(
          f"{name} {got} -> {path} {tuple(np.shape(leaves[path]))} (torch "
          f"layout {expected})"
        )
  problems += _listing("shapes that do not match", mismatched)
  _raise_if(problems, what)


_NUMBERED = re.compile(r"_(\d+)(?=\.|$)")
_TORCH_LAST = {"gamma": "weight", "beta": "bias"}
_FLAX_LAST = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def _normalise(name: str, last_names: Mapping[str, str]) -> str:
  head, _, last = name.rpartition(".")
  head = _NUMBERED.sub(r".\1", head)
  last = last_names.get(last, last)
  return f"{head}.{last}" if head else last


def match_by_name(
  torch_state_dict: Mapping[str, Any],
  params: Any,
  *,
  tied: Mapping[str, str] | None = None,
  rename: Callable[[str], str] | None = None,
) -> dict[str, str]:
  r"""Builds the mapping ``{torch name: tree path}`` by matching names.

  A torch name and a tree path match when they agree after normalising both:

  * the last component: torch's ``weight`` is a Flax ``kernel`` (``nn.Linear``,
    convolutions; shape checked in the reordered layout), ``scale``
    (``LayerNorm``) or ``embedding`` (``nn.Embedding``); TF-style ``gamma`` and
    ``beta`` are ``weight`` and ``bias``;
  * numbered modules: Flax's ``layer_3`` is torch's ``layer.3``
    (``nn.ModuleList``).

  Args:
    torch_state_dict: the model's ``state_dict()``, or any ``name -> array``
      mapping (only shapes are read).
    params: the Flax parameter tree (arrays or ``jax.ShapeDtypeStruct``).
    tied: ``{torch name: torch name}`` of weights tied in PyTorch, mapped to
      the leaf of the name they are tied to, e.g.
      ``{'cls.predictions.decoder.weight':
      'bert.embeddings.word_embeddings.weight'}``.
    rename: applied to each torch name before matching, e.g.
      ``lambda n: n.removeprefix('module.')`` for a ``DistributedDataParallel``
      state dict; the mapping keeps the original names.

  Returns:
    The mapping, in the state dict's order.

  Examples:
    >>> import numpy as np
    >>> from bertadam_optax.interop import match_by_name
    >>> torch_state_dict = {"encoder.layer.0.weight": np.zeros((3, 2)),
    ...                     "encoder.layer.0.bias": np.zeros(3),
    ...                     "norm.gamma": np.ones(3), "norm.beta": np.zeros(3)}
    >>> params = {"encoder": {"layer_0": {"kernel": np.zeros((2, 3)),
    ...                                   "bias": np.zeros(3)}},
    ...           "norm": {"scale": np.ones(3), "bias": np.zeros(3)}}
    >>> for name, path in match_by_name(torch_state_dict, params).items():
    ...   print(name, "->", path)
    encoder.layer.0.weight -> encoder.layer_0.kernel
    encoder.layer.0.bias -> encoder.layer_0.bias
    norm.gamma -> norm.scale
    norm.beta -> norm.bias

  Raises:
    ValueError: listing the torch names that match no leaf, the leaves no name
      matches, names or leaves that match ambiguously, and shape mismatches.
  """
  tied = dict(tied or {})
  leaves = _leaves_by_path(params)
  by_key = collections.defaultdict(list)
  for path in leaves:
    by_key[_normalise(path, _FLAX_LAST)].append(path)
  problems = _listing(
    "tree paths that normalise to the same name",
    [" and ".join(paths) for paths in by_key.values() if len(paths) > 1],
  )
  problems += _listing(
    "tied names missing from the torch state dict",
    [n for n in list(tied) + list(tied.values()) if n not in torch_state_dict],
  )
  _raise_if(problems, "cannot match torch names to the parameter tree")

  mapping = {}
  for name in torch_state_dict:
    key = _normalise(rename(name) if rename else name, _TORCH_LAST)
    if name not in tied and len(by_key.get(key, ())) == 1:
      mapping[name] = by_key[key][0]
  claimed = collections.defaultdict(list)
  for name, path in mapping.items():
    claimed[path].append(name)
  problems = _listing(
    "torch names that match the same leaf (declare them in `tied`)",
    [
      f"{' and '.join(names)} -> {path}"
      for path, names in claimed.items()
      if len(names) > 1
    ],
  )
  _raise_if(problems, "cannot match torch names to the parameter tree")
  for alias, source in tied.items():
    if source in mapping:
      mapping[alias] = mapping[source]
  mapping = {n: mapping[n] for n in torch_state_dict if n in mapping}
  _check_mapping(
    mapping,
    _shapes(torch_state_dict),
    leaves,
    "cannot match torch names to the parameter tree",
  )
  return mapping


def bert_mapping(
  num_layers: int,
  *,
  pooler: bool = True,
  next_sentence: bool = False,
  tie_word_embeddings: bool = True,
) -> dict[str, str]:
  r"""The mapping of a pytorch-pretrained-bert BERT to Hugging Face's Flax BERT.

  Torch names are those of pytorch-pretrained-bert 0.6.2's (and DeepSpeed
  bing_bert's, and transformers') ``BertForMaskedLM`` and
  ``BertForPreTraining``; tree paths are those of transformers'
  ``FlaxBertForMaskedLM`` / ``FlaxBertForPreTraining`` ``params``
  (``bert.encoder.layer.0.attention.self.query.kernel``, ...).

  Args:
    num_layers: the number of encoder layers (``num_hidden_layers``).
    pooler: whether the torch model has ``bert.pooler`` (pytorch-pretrained-bert
      always builds it; Flax's ``FlaxBertForMaskedLM`` does not).
    next_sentence: whether the model has the next-sentence head
      ``cls.seq_relationship`` (``BertForPreTraining``).
    tie_word_embeddings: whether the MLM decoder is the word embedding, as in
      BERT; then ``cls.predictions.decoder.weight`` maps to
      ``bert.embeddings.word_embeddings.embedding``, otherwise to its own
      ``cls.predictions.decoder.kernel``.

  Returns:
    ``{torch name: tree path}`` in the torch ``state_dict()`` order.

  Examples:
    >>> from bertadam_optax.interop import bert_mapping
    >>> mapping = bert_mapping(num_layers=1)
    >>> mapping["bert.encoder.layer.0.attention.self.query.weight"]
    'bert.encoder.layer.0.attention.self.query.kernel'
    >>> mapping["cls.predictions.decoder.weight"]  # tied to the embedding
    'bert.embeddings.word_embeddings.embedding'
    >>> len(mapping)  # 5 embedding, 16 per layer, 2 pooler, 6 MLM head
    29

  Raises:
    ValueError: if ``num_layers`` is not an integer >= 1.
  """
  if (
    isinstance(num_layers, bool)
    or not isinstance(num_layers, int)
    or (num_layers < 1)
  ):
    raise ValueError(
      f"num_layers={num_layers!r} is out of range; expected an integer >= 1."
    )
  mapping: dict[str, str] = {}

  def linear(prefix):
    mapping[f"{prefix}.weight"] = f"{prefix}.kernel"
    mapping[f"{prefix}.bias"] = f"{prefix}.bias"

  def layer_norm(prefix):
    mapping[f"{prefix}.weight"] = f"{prefix}.scale"
    mapping[f"{prefix}.bias"] = f"{prefix}.bias"

  word_embeddings = "bert.embeddings.word_embeddings"
  mapping[f"{word_embeddings}.weight"] = f"{word_embeddings}.embedding"
  for table in ("position_embeddings", "token_type_embeddings"):
    mapping[f"bert.embeddings.{table}.weight"] = (
      f"bert.embeddings.{table}.embedding"
    )
  layer_norm("bert.embeddings.LayerNorm")
  for i in range(num_layers):
    layer = f"bert.encoder.layer.{i}"
    for part in ("query", "key", "value"):
      linear(f"{layer}.attention.self.{part}")
    linear(f"{layer}.attention.output.dense")
    layer_norm(f"{layer}.attention.output.LayerNorm")
    linear(f"{layer}.intermediate.dense")
    linear(f"{layer}.output.dense")
    layer_norm(f"{layer}.output.LayerNorm")
  if pooler:
    linear("bert.pooler.dense")
  mapping["cls.predictions.bias"] = "cls.predictions.bias"
  linear("cls.predictions.transform.dense")
  layer_norm("cls.predictions.transform.LayerNorm")
  mapping["cls.predictions.decoder.weight"] = (
    f"{word_embeddings}.embedding"
    if tie_word_embeddings
    else "cls.predictions.decoder.kernel"
  )
  if next_sentence:
    linear("cls.seq_relationship")
  return mapping


# Parameters.


def params_from_torch(
  model_state_dict: Mapping[str, Any],
  params: Any,
  mapping: Mapping[str, str],
) -> Any:
  """A torch model's weights as a Flax parameter tree.

  Args:
    model_state_dict: the model's ``state_dict()`` (tensors or arrays).
    params: a tree of the target structure, shapes, dtypes and shardings
      (arrays or ``jax.ShapeDtypeStruct``, e.g. ``jax.eval_shape`` of the
      model's ``init``); its values are not read.
    mapping: ``{torch name: tree path}`` covering every name and every leaf.

  Returns:
    A tree like ``params`` holding the torch weights, in the Flax layout.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import torch
    >>> from bertadam_optax.interop import params_from_torch
    >>> state_dict = {"dense.weight": torch.arange(6.0).reshape(3, 2),
    ...               "dense.bias": torch.zeros(3)}
    >>> params = {"dense": {"kernel": jax.ShapeDtypeStruct((2, 3), jnp.float32),
    ...                     "bias": jax.ShapeDtypeStruct((3,), jnp.float32)}}
    >>> mapping = {"dense.weight": "dense.kernel", "dense.bias": "dense.bias"}
    >>> params = params_from_torch(state_dict, params, mapping)
    >>> params["dense"]["kernel"].tolist()  # [out, in] becomes [in, out]
    [[0.0, 2.0, 4.0], [1.0, 3.0, 5.0]]

  Raises:
    ValueError: listing extra and missing names, uncovered leaves, shape
      mismatches and tied names whose tensors differ.
  """
  leaves = _leaves_by_path(params)
  _check_mapping(
    mapping,
    _shapes(model_state_dict),
    leaves,
    "the torch state dict does not fit the parameter tree",
  )
  values: dict[str, np.ndarray] = {}
  untied = []
  for name, path in mapping.items():
    value = _to_flax_layout(path, _numpy(model_state_dict[name]))
    if path in values and not np.array_equal(values[path], value):
      untied.append(f"{name} -> {path}")
    values.setdefault(path, value)
  _raise_if(
    _listing("torch names sharing a leaf but holding different values", untied),
    "the torch state dict does not fit the parameter tree",
  )
  return jax.tree_util.tree_map_with_path(
    lambda path, leaf: _put(values[masks.path_to_name(path)], leaf), params
  )


def params_to_torch(params: Any, mapping: Mapping[str, str]) -> dict[str, Any]:
  """A Flax parameter tree as a torch ``state_dict``.

  Args:
    params: the parameter tree.
    mapping: ``{torch name: tree path}`` covering every leaf.

  Returns:
    ``{torch name: torch.Tensor}`` in the torch layout, in the mapping's order,
    ready for ``model.load_state_dict``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import torch
    >>> from bertadam_optax.interop import params_to_torch
    >>> params = {"dense": {"kernel": jnp.arange(6.0).reshape(2, 3),
    ...                     "bias": jnp.zeros(3)}}
    >>> mapping = {"dense.weight": "dense.kernel", "dense.bias": "dense.bias"}
    >>> state_dict = params_to_torch(params, mapping)
    >>> state_dict["dense.weight"]  # [in, out] becomes [out, in]
    tensor([[0., 3.],
            [1., 4.],
            [2., 5.]])
    >>> isinstance(state_dict["dense.bias"], torch.Tensor)
    True

  Raises:
    ValueError: listing mapped paths missing from the tree and leaves the
      mapping does not cover.
  """
  leaves = _leaves_by_path(params)
  problems = _tree_problems(mapping, leaves)
  _raise_if(problems, "the mapping does not fit the parameter tree")
  return {
    name: _tensor(_to_torch_layout(path, np.asarray(leaves[path])))
    for name, path in mapping.items()
  }


# Optimizer state.


def _is_moments(node: Any) -> bool:
  return isinstance(node, transforms.ScaleByBertAdamState)


def _is_stage(node: Any) -> bool:
  return isinstance(
    node, (transforms.ScaleByBertAdamState, transforms.ScaleByLearningRateState)
  )


def _param_ids(
  param_groups: Sequence[Mapping[str, Any]],
  param_names: Sequence[str],
  mapping: Mapping[str, str],
  what: str,
) -> list[tuple[Any, str, str]]:
  """``(optimizer id, torch name, tree path)`` of every optimizer parameter."""
  if (
    isinstance(param_groups, (str, bytes, Mapping))
    or not isinstance(param_groups, Sequence)
    or not all(
      isinstance(g, Mapping)
      and isinstance(g.get("params"), Sequence)
      and not isinstance(g.get("params"), (str, bytes))
      for g in param_groups
    )
  ):
    raise ValueError(
      f"{what}: param_groups={param_groups!r:.200} is not a "
      "list of dicts with a 'params' list of ids, as torch's "
      "optimizer.state_dict()['param_groups']."
    )
  ids = [i for group in param_groups for i in group["params"]]
  repeated = sorted({repr(i) for i in ids if ids.count(i) > 1})
  if repeated:
    raise ValueError(
      f"{what}: param_groups list the ids {repeated} more than "
      "once; each parameter has one id."
    )
  if len(ids) != len(param_names):
    raise ValueError(
      f"{what}: the optimizer's param_groups hold {len(ids)} parameters but "
      f"param_names lists {len(param_names)}; param_names must name them in "
      "param_groups order (e.g. [n for n, _ in model.named_parameters()] for "
      "BertAdam(model.parameters()))."
    )
  problems = _listing(
    "param_names missing from the mapping",
    [n for n in param_names if n not in mapping],
  )
  seen = collections.defaultdict(list)
  for name in param_names:
    if name in mapping:
      seen[mapping[name]].append(name)
  problems += _listing(
    "param_names that map to the same leaf",
    [f"{' and '.join(n)} -> {p}" for p, n in seen.items() if len(n) > 1],
  )
  _raise_if(problems, what)
  return [(i, n, mapping[n]) for i, n in zip(ids, param_names)]


def _moment_leaves(opt_state: Any) -> dict[str, tuple[Any, Any]]:
  """``{tree path: (mu leaf, nu leaf)}`` over every BertAdam stage."""
  found = {}
  for node in jax.tree.leaves(opt_state, is_leaf=_is_moments):
    if _is_moments(node):
      nus = _leaves_by_path(node.nu)
      for path, mu in _leaves_by_path(node.mu).items():
        found[path] = (mu, nus[path])
  return found


def _with_counts(opt_state: Any, count: int) -> Any:
  def set_count(node):
    if _is_stage(node):
      return node._replace(count=jnp.asarray(count, jnp.int32))
    return node

  return jax.tree.map(set_count, opt_state, is_leaf=_is_stage)


def _with_moments(
  opt_state: Any, moments: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> Any:
  def fill(which):
    def leaf(path, like):
      found = moments.get(masks.path_to_name(path))
      return like if found is None else _put(found[which], like)

    return leaf

  def set_moments(node):
    if _is_moments(node):
      return node._replace(
        mu=jax.tree_util.tree_map_with_path(fill(0), node.mu),
        nu=jax.tree_util.tree_map_with_path(fill(1), node.nu),
      )
    return node

  return jax.tree.map(set_moments, opt_state, is_leaf=_is_moments)


def _learning_rates_at(
  optimizer: optax.GradientTransformation,
  params: Any,
  opt_state: Any,
  count: int,
) -> Any:
  """``opt_state`` with each learning-rate stage as after ``count`` updates.

  The schedule is closed over by the optimizer; one update from ``count - 1``
  (with zero gradients, its other results dropped) evaluates it at ``count``
  through the optimizer's public interface, whatever the schedule is.
  """
  if count == 0:
    return opt_state

  # One compilation instead of one per operation and shape when run eagerly.
  @jax.jit
  def advance(state, params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return optimizer.update(zeros, state, params)[1]

  after = advance(_with_counts(opt_state, count - 1), params)
  is_lr = lambda n: isinstance(n, transforms.ScaleByLearningRateState)
  leaves, treedef = jax.tree.flatten(opt_state, is_leaf=is_lr)
  updated = jax.tree.leaves(after, is_leaf=is_lr)
  return jax.tree.unflatten(
    treedef, [new if is_lr(old) else old for old, new in zip(leaves, updated)]
  )


def _state_keys(torch_state: Any, ids: Sequence[Any]) -> list[str]:
  """Problems with the keys of a torch ``state``.

  Every key must be an id of ``param_groups``. Ids without a state are
  parameters that got no gradient yet, unless keys that are not ids say the
  state belongs to other ids.
  """
  if not isinstance(torch_state, Mapping):
    return [
      f"optimizer_state_dict['state'] is a {type(torch_state).__name__};"
      " expected a dict {parameter id: state}"
    ]
  known = set(ids)
  extra = [k for k in torch_state if k not in known]
  if not extra:
    return []
  missing = [i for i in ids if i not in torch_state]
  problems = _listing(
    "state keys that are no id of param_groups",
    [f"{k!r} ({type(k).__name__})" for k in extra],
  )
  problems += _listing(
    "param_groups ids without a state", [repr(i) for i in missing]
  )
  if any(isinstance(k, str) for k in extra):
    problems.append(
      "  (torch keys the state by the integer ids of "
      "param_groups; string keys come from a JSON round trip)"
    )
  return problems


def _step(value: Any) -> int | str:
  """The step of a torch state as an ``int``, or why it is not one."""
  array = _numpy(value) if hasattr(value, "detach") else value
  try:
    return _validation.check_int("step", array, 0, None)
  except ValueError:
    return f"step={value!r}"


def _moment_problems(name: str, m: np.ndarray, v: np.ndarray) -> list[str]:
  problems = []
  for key, x in (("next_m", m), ("next_v", v)):
    if not np.issubdtype(x.dtype, np.floating):
      problems.append(f"{name}: {key} has dtype {x.dtype}; expected floating")
    elif not np.all(np.isfinite(x)):
      problems.append(
        f"{name}: {key} holds {int(np.sum(~np.isfinite(x)))} non-finite values"
      )
  if np.issubdtype(v.dtype, np.floating) and np.any(v < 0):
    problems.append(
      f"{name}: next_v holds {int(np.sum(v < 0))} negative "
      "values (a second moment is >= 0)"
    )
  return problems


def from_torch(
  model_state_dict: Mapping[str, Any],
  optimizer_state_dict: Mapping[str, Any],
  *,
  params: Any,
  optimizer: optax.GradientTransformation,
  mapping: Mapping[str, str],
  param_names: Sequence[str],
) -> tuple[Any, optax.OptState]:
  r"""A PyTorch BertAdam checkpoint as ``(params, opt_state)``.

  The optimizer state is ``optimizer.init`` of the converted parameters with,
  in every :class:`~bertadam_optax.ScaleByBertAdamState`, ``count = step`` and
  ``mu``, ``nu`` = ``next_m``, ``next_v`` (in the Flax layout), and in every
  :class:`~bertadam_optax.ScaleByLearningRateState`, ``count = step`` and the
  learning rate of that step, so :func:`~bertadam_optax.get_lr` returns what
  the torch optimizer's ``get_lr()`` did and the next update is the one torch
  would have made. Parameters that never received a gradient have no torch
  state; they get zero moments, as BertAdam would give them.

  Args:
    model_state_dict: the torch model's ``state_dict()``.
    optimizer_state_dict: the torch ``BertAdam``'s ``state_dict()``
      (pytorch-pretrained-bert, DeepSpeed bing_bert): ``state`` maps each
      parameter's id to ``{'step', 'next_m', 'next_v'}``, ``param_groups``
      lists the ids.
    params: a tree of the target structure, shapes, dtypes and shardings
      (arrays or ``jax.ShapeDtypeStruct``); its values are not read.
    optimizer: the optimizer the run continues with, e.g.
      :func:`~bertadam_optax.bertadam` with the torch run's hyperparameters.
    mapping: ``{torch name: tree path}``, e.g. from :func:`match_by_name` or
      :func:`bert_mapping`.
    param_names: the torch names of the optimizer's parameters in
      ``param_groups`` order, e.g. ``[n for n, _ in model.named_parameters()]``
      for ``BertAdam(model.parameters())``; optimizer state dicts hold only
      positions.

  Returns:
    ``(params, opt_state)``, with the dtypes and shardings of ``params`` and
    of ``optimizer.init``.

  Raises:
    ValueError: listing every mismatch: names, leaves, shapes, parameters
      without a BertAdam state, state keys that are no id of ``param_groups``
      (string keys, offset ids: listed with the ids left without a state),
      steps that are not integers >= 0 or that differ between parameters
      (the optax state has one count), moments that are not floating, not
      finite, or a negative ``next_v``.

  Examples:
    >>> import jax.numpy as jnp
    >>> import torch
    >>> from pytorch_pretrained_bert import BertAdam
    >>> from bertadam_optax import bertadam
    >>> model = torch.nn.Linear(3, 2)
    >>> torch_opt = BertAdam(model.parameters(), lr=1e-3)
    >>> model(torch.ones(1, 3)).sum().backward()
    >>> torch_opt.step()
    >>> template = {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)}
    >>> mapping = {"weight": "kernel", "bias": "bias"}
    >>> tx = bertadam(1e-3)
    >>> params, opt_state = from_torch(
    ...     model.state_dict(), torch_opt.state_dict(), params=template,
    ...     optimizer=tx, mapping=mapping, param_names=["weight", "bias"])
    >>> int(opt_state[1].count), params["kernel"].shape
    (1, (3, 2))
    >>> bad = torch_opt.state_dict()
    >>> bad["state"] = {str(k): v for k, v in bad["state"].items()}
    >>> from_torch(model.state_dict(), bad, params=template, optimizer=tx,
    ...            mapping=mapping, param_names=["weight", "bias"])
    Traceback (most recent call last):
    ...
    ValueError: the torch optimizer state does not fit the optimizer:
    state keys that are no id of param_groups (2):
      '0' (str)
      '1' (str)
    param_groups ids without a state (2):
      0
      1
      (torch keys the state by the integer ids of param_groups; string ...)

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.BertAdam``; PyTorch
    ``torch.optim.Optimizer.state_dict``.
  """
  what = "the torch optimizer state does not fit the optimizer"
  if not isinstance(optimizer_state_dict, Mapping):
    raise ValueError(
      f"{what}: optimizer_state_dict is a "
      f"{type(optimizer_state_dict).__name__}; expected a torch "
      "optimizer's state_dict()."
    )
  missing = [
    k for k in ("state", "param_groups") if k not in optimizer_state_dict
  ]
  if missing:
    raise ValueError(
      f"{what}: optimizer_state_dict has no {missing}; expected "
      "a torch optimizer's state_dict()."
    )
  new_params = params_from_torch(model_state_dict, params, mapping)
  opt_state = optimizer.init(new_params)
  moment_leaves = _moment_leaves(opt_state)
  if not moment_leaves:
    raise ValueError(
      f"{what}: optimizer.init holds no ScaleByBertAdamState; "
      "from_torch fills the state of bertadam_optax.bertadam "
      "or of a chain holding scale_by_bertadam."
    )
  params_by_id = _param_ids(
    optimizer_state_dict["param_groups"], param_names, mapping, what
  )
  torch_state = optimizer_state_dict["state"]
  leaves = _leaves_by_path(new_params)

  problems = _state_keys(torch_state, [pid for pid, _, _ in params_by_id])
  _raise_if(problems, what)

  moments: dict[str, tuple[np.ndarray, np.ndarray]] = {}
  steps = collections.defaultdict(list)
  not_bertadam, mismatched, bad_steps, bad_values = [], [], [], []
  for pid, name, path in params_by_id:
    entry = torch_state.get(pid)
    if entry is None or (isinstance(entry, Mapping) and not entry):
      continue
    if not isinstance(entry, Mapping) or any(
      key not in entry for key in _BERTADAM_KEYS
    ):
      keys = (
        sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
      )
      not_bertadam.append(f"{name}: {keys}")
      continue
    expected = _torch_shape(path, leaves[path].shape)
    m, v = _numpy(entry["next_m"]), _numpy(entry["next_v"])
    if m.shape != expected or v.shape != expected:
      mismatched.append(
        f"{name}: next_m {m.shape}, next_v {v.shape}, expected {expected}"
      )
      continue
    step = _step(entry["step"])
    if isinstance(step, str):
      bad_steps.append(f"{name}: {step}")
      continue
    bad_values += _moment_problems(name, m, v)
    steps[step].append(name)
    moments[path] = (_to_flax_layout(path, m), _to_flax_layout(path, v))
  problems = _listing(
    "parameters whose state is not BertAdam's (step, next_m, next_v)",
    not_bertadam,
  )
  problems += _listing("moments whose shapes do not match", mismatched)
  problems += _listing("steps that are not integers >= 0", bad_steps)
  problems += _listing("moments that are not valid", bad_values)
  if len(steps) > 1:
    problems += _listing(
      "parameters at different steps",
      [f"step {s}: {', '.join(names)}" for s, names in sorted(steps.items())],
    )
  reached = {path for _, _, path in params_by_id}
  problems += _listing(
    "optimizer leaves no entry of param_names maps to",
    [p for p in moment_leaves if p not in reached],
  )
  _raise_if(problems, what)

  count = next(iter(steps), 0)
  opt_state = _with_counts(_with_moments(opt_state, moments), count)
  return new_params, _learning_rates_at(optimizer, new_params, opt_state, count)


def to_torch(
  params: Any,
  opt_state: optax.OptState,
  *,
  mapping: Mapping[str, str],
  param_names: Sequence[str],
  param_groups: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any]]:
  r"""``(params, opt_state)`` as PyTorch model and BertAdam state dicts.

  The inverse of :func:`from_torch`: every parameter gets
  ``{'step': count, 'next_m': mu, 'next_v': nu}`` in the torch layout. Before
  the first update (``count == 0``) the state is empty, as a fresh torch
  optimizer's. Leaves the optimizer holds no moments for (masked out of a
  ``optax.multi_transform``) get no entry.

  Args:
    params: the parameter tree.
    opt_state: its :func:`~bertadam_optax.bertadam` state (or any state holding
      :class:`~bertadam_optax.ScaleByBertAdamState`).
    mapping: ``{torch name: tree path}`` covering every leaf.
    param_names: the torch names of the target optimizer's parameters in
      ``param_groups`` order.
    param_groups: ``optimizer.state_dict()['param_groups']`` of the target
      torch optimizer: the ids the state is keyed by, and the hyperparameters
      ``load_state_dict`` restores (including the schedule).

  Returns:
    ``(model_state_dict, optimizer_state_dict)``, for ``model.load_state_dict``
    and ``optimizer.load_state_dict``.

  Raises:
    ValueError: listing mapping problems, ids repeated in ``param_groups``,
      moments that are not finite or a negative ``nu``, and if the BertAdam
      stages disagree on the count or it is negative.

  Examples:
    >>> import jax.numpy as jnp
    >>> import torch
    >>> from pytorch_pretrained_bert import BertAdam
    >>> from bertadam_optax import bertadam
    >>> tx = bertadam(1e-3)
    >>> params = {"kernel": jnp.ones((3, 2)), "bias": jnp.zeros(2)}
    >>> opt_state = tx.update(params, tx.init(params), params)[1]
    >>> model = torch.nn.Linear(3, 2)
    >>> torch_opt = BertAdam(model.parameters(), lr=1e-3)
    >>> model_sd, opt_sd = to_torch(
    ...     params, opt_state, mapping={"weight": "kernel", "bias": "bias"},
    ...     param_names=["weight", "bias"],
    ...     param_groups=torch_opt.state_dict()["param_groups"])
    >>> model.load_state_dict(model_sd)
    <All keys matched successfully>
    >>> torch_opt.load_state_dict(opt_sd)
    >>> state = torch_opt.state_dict()["state"][0]
    >>> state["step"], tuple(opt_sd["state"][0]["next_m"].shape)
    (1, (2, 3))

  References:
    pytorch-pretrained-bert 0.6.2, ``optimization.BertAdam``.
  """
  what = "the optimizer state does not fit the torch optimizer"
  model_state_dict = params_to_torch(params, mapping)
  stages = [
    n for n in jax.tree.leaves(opt_state, is_leaf=_is_moments) if _is_moments(n)
  ]
  if not stages:
    raise ValueError(f"{what}: opt_state holds no ScaleByBertAdamState.")
  counts = sorted({int(s.count) for s in stages})
  if len(counts) > 1:
    raise ValueError(
      f"{what}: the BertAdam stages are at different counts "
      f"{counts}; a torch BertAdam state has one step."
    )
  count = counts[0]
  if count < 0:
    raise ValueError(
      f"{what}: the BertAdam count is {count}; expected an integer >= 0."
    )
  params_by_id = _param_ids(param_groups, param_names, mapping, what)
  moment_leaves = _moment_leaves(opt_state)
  if count:
    problems = []
    for _, name, path in params_by_id:
      if path in moment_leaves:
        mu, nu = moment_leaves[path]
        problems += _moment_problems(
          name, np.asarray(mu, np.float32), np.asarray(nu, np.float32)
        )
    _raise_if(_listing("moments that are not valid", problems), what)
  state = {}
  for pid, _, path in params_by_id:
    if count == 0 or path not in moment_leaves:
      continue
    mu, nu = moment_leaves[path]
    state[pid] = {
      "step": count,
      "next_m": _tensor(_to_torch_layout(path, np.asarray(mu))),
      "next_v": _tensor(_to_torch_layout(path, np.asarray(nu))),
    }
  groups = [dict(group, params=list(group["params"])) for group in param_groups]
  return model_state_dict, {"state": state, "param_groups": groups}
