r"""Weight-decay masks: which parameters BERT training decays.

BERT pretraining decays every weight matrix and embedding but no bias and no
LayerNorm parameter. DeepSpeed's bing_bert and the original fine-tuning
scripts express this with substrings of torch parameter names,
``no_decay = ['bias', 'LayerNorm.bias', 'LayerNorm.weight']``.
:func:`bert_weight_decay_mask` applies the same convention to any pytree:
Flax Linen and NNX parameter trees (where norm layers hold ``scale`` and
``bias``, and HF's Flax BERT names its modules ``LayerNorm``) and flat
``name -> array`` dicts keyed by torch-style dotted names.
:func:`trainer_weight_decay_mask` is the transformers ``Trainer``'s rule, built
on the same name test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Any

import jax

from bertadam_optax import _validation

__all__ = [
  "BERT_NO_DECAY_PATTERNS",
  "TRAINER_NO_DECAY_PATTERNS",
  "bert_weight_decay_mask",
  "bing_bert_weight_decay_mask",
  "megatron_weight_decay_mask",
  "path_to_name",
  "trainer_weight_decay_mask",
]

BERT_NO_DECAY_PATTERNS: tuple[str, ...] = (
  r"(^|\.)bias$",  # every bias
  r"(^|\.)scale$",  # Flax norm layers (LayerNorm, RMSNorm, ...) hold `scale`
  r"(?i)norm[^.]*\.(weight|gamma|beta)$",  # torch/TF-style norm parameters
)
"""Regular expressions (``re.search``) on a leaf's dotted path that exclude it
from weight decay."""

TRAINER_NO_DECAY_PATTERNS: tuple[str, ...] = (
  r"bias",
  r"layernorm",
  r"rmsnorm",
  r"(?:^|\.)norm(?:$|\.)",
  r"_norm(?:$|\.)",
)
"""The Trainer's ``forbidden_name_patterns`` (``re.search`` on the lower-cased
dotted name) of ``Trainer.get_decay_parameter_names``."""


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _is_variable_wrapper(key: Any) -> bool:
  # NNX states hold each array in a Variable whose pytree path ends in
  # `.value`; it names the wrapper, not the parameter.
  return isinstance(key, jax.tree_util.GetAttrKey) and key.name in (
    "value",
    "raw_value",
  )


def path_to_name(path: Sequence[Any]) -> str:
  """A pytree key path as a dotted name.

  ``('encoder', 'LayerNorm_0', 'scale')`` becomes
  ``'encoder.LayerNorm_0.scale'``; a flat dict's keys stay as they are, and
  the ``.value`` of an NNX ``Variable`` is left out.

  Args:
    path: a key path, as ``jax.tree_util.tree_flatten_with_path`` gives it.

  Returns:
    The dotted name the masks match their patterns against.

  Examples:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from bertadam_optax.masks import path_to_name
    >>> tree = {"encoder": {"LayerNorm_0": {"scale": jnp.ones(2)}}}
    >>> leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    >>> [path_to_name(p) for p, _ in leaves]
    ['encoder.LayerNorm_0.scale']
  """
  return ".".join(_key_name(k) for k in path if not _is_variable_wrapper(k))


def bert_weight_decay_mask(
  params: Any = None,
  *,
  no_decay: Sequence[str] = BERT_NO_DECAY_PATTERNS,
) -> Any:
  r"""The BERT weight-decay mask: ``True`` where a leaf is decayed.

  A leaf is decayed unless one of the ``no_decay`` regular expressions is
  found (``re.search``) in its dotted path (:func:`path_to_name`). The default
  patterns exclude every ``bias``, every Flax norm ``scale``, and torch-style
  ``*Norm*.weight`` (and TF-style ``gamma``/``beta``), which reproduces
  DeepSpeed's ``['bias', 'LayerNorm.bias', 'LayerNorm.weight']`` on torch names
  and the same split on Flax Linen, NNX and HF Flax BERT trees.

  Args:
    params: a parameter pytree; if ``None``, a function ``params -> mask`` is
      returned instead, which is what ``optax.masked`` and
      ``optax.add_decayed_weights(mask=...)`` accept.
    no_decay: the patterns; pass your own to change the convention (plain
      substrings such as ``'LayerNorm.weight'`` work as patterns too).

  Returns:
    A pytree of bools with the structure of ``params``, or a function that
    builds one.

  Example:
    >>> import jax.numpy as jnp
    >>> bert_weight_decay_mask({'dense': {'kernel': jnp.ones(2),
    ...                                   'bias': jnp.ones(2)}})
    {'dense': {'bias': False, 'kernel': True}}
  """
  patterns = _compile("no_decay", no_decay)
  return _by_name(lambda name: any(p.search(name) for p in patterns), params)


def _compile(name: str, patterns: Sequence[str]) -> list[re.Pattern]:
  """The regular expressions, refusing a bare string (a sequence of chars)."""
  if (
    isinstance(patterns, (str, bytes))
    or not isinstance(patterns, Iterable)
    or not all(isinstance(p, str) for p in patterns)
  ):
    raise ValueError(
      f"{name}={patterns!r} is not a sequence of regular "
      "expressions; expected e.g. ['bias', 'LayerNorm']."
    )
  try:
    return [re.compile(p) for p in patterns]
  except re.error as e:
    raise ValueError(
      f"{name}={patterns!r} holds an invalid regular expression: {e}."
    ) from None


def _by_name(excluded: Callable[[str], bool], params: Any) -> Any:
  """The mask ``not excluded(dotted path)``, or the function building it."""

  def build(tree: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
      lambda path, leaf: not excluded(path_to_name(path)), tree
    )

  return build if params is None else build(params)


def trainer_weight_decay_mask(
  params: Any = None,
  *,
  norm_modules: Sequence[str] = (),
) -> Any:
  r"""The transformers ``Trainer``'s weight-decay mask: ``True`` where decayed.

  A leaf is not decayed when one of :data:`TRAINER_NO_DECAY_PATTERNS` is
  found in its lower-cased dotted path (as the Trainer's name test), or when
  it sits in a LayerNorm module, which the Trainer tests by type
  (``nn.LayerNorm``): here a leaf named ``scale`` (what Flax norm layers
  hold) or one inside a module whose dotted name matches a ``norm_modules``
  regular expression (for torch-style names of norm layers the patterns miss,
  such as GPT-2's ``ln_f``).

  Args:
    params: a parameter pytree (Flax trees, or flat dicts keyed by torch-style
      dotted names); if ``None``, a function ``params -> mask``.
    norm_modules: regular expressions (``re.fullmatch``) for the dotted names
      of further LayerNorm modules.

  Returns:
    A pytree of bools like ``params``, or a function that builds one.

  Examples:
    >>> trainer_weight_decay_mask({'h.0.attn.weight': 1, 'h.0.attn.bias': 1,
    ...                            'ln_f.weight': 1}, norm_modules=['ln_f'])
    {'h.0.attn.bias': False, 'h.0.attn.weight': True, 'ln_f.weight': False}

  References:
    transformers, ``trainer.py``: ``Trainer.get_decay_parameter_names``;
    ``trainer_pt_utils.py``: ``get_parameter_names``.
  """
  patterns = _compile("TRAINER_NO_DECAY_PATTERNS", TRAINER_NO_DECAY_PATTERNS)
  modules = _compile("norm_modules", norm_modules)

  def excluded(name: str) -> bool:
    parts = name.split(".")
    if parts[-1] == "scale":
      return True
    if any(p.search(name.lower()) for p in patterns):
      return True
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
    return any(m.fullmatch(prefix) for prefix in prefixes for m in modules)

  return _by_name(excluded, params)


def megatron_weight_decay_mask(
  params: Any, *, apply_wd_to_qk_layernorm: bool = False
) -> Any:
  """Megatron's default no-decay rule as a mask.

  True where weight decay applies.

  A parameter gets ``wd_mult = 0`` (no decay) when it is 1-D or its name ends
  in ``.bias``. The name is the leaf's path joined with dots, so both a Flax
  tree (``{"Dense_0": {"bias": ...}}`` -> ``Dense_0.bias``) and a flat dict of
  torch names (``{"decoder.layers.0.mlp.linear_fc1.bias": ...}``) work. With
  ``apply_wd_to_qk_layernorm`` (``--apply-wd-to-qk-layernorm``), parameters
  whose name contains ``q_layernorm.`` or ``k_layernorm.`` decay even so.

  Args:
    params: the parameter pytree.
    apply_wd_to_qk_layernorm: Megatron's Qwen3-Next exception.

  Returns:
    A pytree of Python booleans with the structure of ``params``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax.masks import megatron_weight_decay_mask
    >>> megatron_weight_decay_mask({"Dense_0": {"kernel": jnp.ones((2, 2)),
    ...                                         "bias": jnp.ones(2)},
    ...                             "final_norm.weight": jnp.ones(2)})
    {'Dense_0': {'bias': False, 'kernel': True}, 'final_norm.weight': False}

  References:
    megatron-core 0.16.1 ``megatron/core/optimizer/__init__.py``
    (``get_standard_config_overrides``).
  """
  # A string such as "false" would be truthy: only a real boolean is taken.
  apply_wd_to_qk_layernorm = _validation.check_bool(
    "apply_wd_to_qk_layernorm", apply_wd_to_qk_layernorm
  )

  def decays(path, leaf):
    name = path_to_name(path)
    no_wd = (
      len(getattr(leaf, "shape", ())) == 1
      or name.endswith(".bias")
      or (name == "bias")
    )
    if apply_wd_to_qk_layernorm and (
      "q_layernorm." in name or "k_layernorm." in name
    ):
      no_wd = False
    return not no_wd

  return jax.tree_util.tree_map_with_path(decays, params)


def bing_bert_weight_decay_mask(
  params: Any = None,
  *,
  deepspeed_transformer_kernel: bool = False,
) -> Any:
  r"""bing_bert's weight-decay groups: ``True`` where a leaf is decayed.

  DeepSpeedExamples' ``prepare_optimizer_parameters`` puts a parameter in the
  no-decay group when one of

  .. math::
    \text{no\_decay} = [\texttt{bias}, \texttt{LayerNorm.bias},
      \texttt{LayerNorm.weight}]
      \;(+\; [\texttt{attn\_nw}, \texttt{attn\_nb}, \texttt{norm\_w},
      \texttt{norm\_b}, \texttt{attn\_qkvb}, \texttt{attn\_ob},
      \texttt{inter\_b}, \texttt{output\_b}]
      \text{ with --deepspeed\_transformer\_kernel})

  is a *substring* of its torch name (so ``my_bias_free.weight`` is not
  decayed either, as in the original). Torch names (flat ``name -> array``
  dicts) are tested as they are; Flax trees are first named as torch names
  them: leaves ``kernel``, ``scale`` and ``embedding`` are torch's ``weight``,
  and Linen's auto-named ``LayerNorm_<n>`` module is a ``LayerNorm``.

  The pooler, which bing_bert does not optimize at all, is not this mask's
  business: :func:`bertadam_optax.interop.from_bing_bert` freezes it with
  ``optax.multi_transform``.

  Args:
    params: a parameter pytree; if ``None``, a function ``params -> mask``.
    deepspeed_transformer_kernel: add the fused
      ``DeepSpeedTransformerLayer``'s bias and norm names.

  Returns:
    A pytree of bools shaped like ``params``, or a function building one.

  Examples:
    >>> bing_bert_weight_decay_mask({'attn_qkvw': 0., 'attn_nw': 0.},
    ...                             deepspeed_transformer_kernel=True)
    {'attn_nw': False, 'attn_qkvw': True}
    >>> import jax.numpy as jnp
    >>> mask = bing_bert_weight_decay_mask(
    ...     {'LayerNorm_0': {'scale': jnp.ones(2), 'bias': jnp.ones(2)},
    ...      'Dense_0': {'kernel': jnp.ones(2)}})
    >>> mask['Dense_0'], mask['LayerNorm_0']
    ({'kernel': True}, {'bias': False, 'scale': False})

  References:
    DeepSpeedExamples, ``training/bing_bert/deepspeed_train.py``
    (``prepare_optimizer_parameters``).
  """
  _validation.check_bool(
    "deepspeed_transformer_kernel", deepspeed_transformer_kernel
  )
  no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight"]
  if deepspeed_transformer_kernel:
    no_decay += [
      "attn_nw",
      "attn_nb",
      "norm_w",
      "norm_b",
      "attn_qkvb",
      "attn_ob",
      "inter_b",
      "output_b",
    ]
  flax_leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}

  def torch_name(path) -> str:
    name = path_to_name(path)
    if len(path) == 1 and isinstance(path[0], jax.tree_util.DictKey):
      return name  # a flat dict keyed by torch names
    *modules, leaf = name.split(".")
    modules = [re.sub(r"^LayerNorm_\d+$", "LayerNorm", m) for m in modules]
    return ".".join([*modules, flax_leaf.get(leaf, leaf)])

  def build(tree: Any) -> Any:
    return jax.tree_util.tree_map_with_path(
      lambda path, _: not any(nd in torch_name(path) for nd in no_decay), tree
    )

  return build if params is None else build(params)
