"""Tests of ``bertadam_optax.masks``: the BERT weight-decay mask.

The reference is DeepSpeed bing_bert's rule on torch parameter names,
``no_decay = ['bias', 'LayerNorm.bias', 'LayerNorm.weight']`` (substrings),
evaluated in ``tests/bertadam_reference.py``. Flax names are mapped to the
torch names HF's converters give them (``kernel``, ``scale`` and
``embedding`` are torch's ``weight``) before the rule is applied.
"""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax import bert_weight_decay_mask
from bertadam_optax import masks
from bertadam_optax import path_to_name
from bertadam_optax.examples import tiny_bert
from tests.bertadam_reference import deepspeed_decays
from tests.references import require

_FLAX_TO_TORCH = {"kernel": "weight", "scale": "weight", "embedding": "weight"}


def _torch_name(flax_name):
  *modules, leaf = flax_name.split(".")
  return ".".join(modules + [_FLAX_TO_TORCH.get(leaf, leaf)])


def _names_and_mask(tree):
  mask = bert_weight_decay_mask(tree)
  return {
    path_to_name(path): decayed
    for path, decayed in jax.tree_util.tree_flatten_with_path(mask)[0]
  }


def _tiny_bert_params():
  config = tiny_bert.TinyBertConfig(
    vocab_size=32,
    hidden_size=8,
    num_layers=2,
    num_heads=2,
    intermediate_size=16,
    max_len=8,
  )
  model = tiny_bert.TinyBertMLM(config)
  return jax.eval_shape(
    model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8), jnp.int32)
  )


def test_linen_tiny_bert_matches_deepspeed_rule():
  mask = _names_and_mask(_tiny_bert_params())
  assert mask == {n: deepspeed_decays(_torch_name(n)) for n in mask}
  assert mask["params.layer_1.attention_LayerNorm.scale"] is False
  assert mask["params.layer_1.attention_LayerNorm.bias"] is False
  assert mask["params.layer_0.query.bias"] is False
  assert mask["params.layer_0.query.kernel"] is True
  assert mask["params.word_embeddings.embedding"] is True
  assert sum(mask.values()) == 16  # 2 embeddings + 2 x 6 kernels + 2 head


def test_nnx_state_paths_drop_the_variable_wrapper():
  nnx = require("flax.nnx")

  class Block(nnx.Module):
    def __init__(self, rngs):
      self.dense = nnx.Linear(3, 4, rngs=rngs)
      self.LayerNorm = nnx.LayerNorm(4, rngs=rngs)
      self.norm = nnx.RMSNorm(4, rngs=rngs)
      self.embed = nnx.Embed(5, 3, rngs=rngs)

  model = Block(nnx.Rngs(0))
  state = nnx.state(model, nnx.Param)
  paths = [p for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
  assert all(p[-1] == jax.tree_util.GetAttrKey("value") for p in paths)
  mask = _names_and_mask(state)
  assert mask == {
    "LayerNorm.bias": False,
    "LayerNorm.scale": False,
    "dense.bias": False,
    "dense.kernel": True,
    "embed.embedding": True,
    "norm.scale": False,
  }


def test_nnx_optimizer_decays_only_the_masked_in_parameters():
  nnx = require("flax.nnx")

  class Block(nnx.Module):
    def __init__(self, rngs):
      self.dense = nnx.Linear(3, 4, rngs=rngs)
      self.LayerNorm = nnx.LayerNorm(4, rngs=rngs)

  model = Block(nnx.Rngs(0))
  before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
  tx = bertadam_optax.bertadam(
    0.1, weight_decay=0.5, weight_decay_mask=bert_weight_decay_mask()
  )
  optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
  zeros = jax.tree.map(jnp.zeros_like, nnx.state(model, nnx.Param))
  optimizer.update(model, zeros)  # zero gradients: only the decay acts
  after = nnx.state(model, nnx.Param)
  np.testing.assert_allclose(
    after["dense"]["kernel"].value,
    before["dense"]["kernel"].value * (1 - 0.1 * 0.5),
    rtol=1e-6,
  )
  for name in ("scale", "bias"):
    np.testing.assert_array_equal(
      after["LayerNorm"][name].value, before["LayerNorm"][name].value
    )


def _hf_flax_bert_names():
  """The parameter names of HF's FlaxBertForMaskedLM (one layer)."""
  layer = "bert.encoder.layer.0."
  names = [
    "bert.embeddings.word_embeddings.embedding",
    "bert.embeddings.position_embeddings.embedding",
    "bert.embeddings.token_type_embeddings.embedding",
    "bert.embeddings.LayerNorm.scale",
    "bert.embeddings.LayerNorm.bias",
    "cls.predictions.bias",
    "cls.predictions.transform.dense.kernel",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.scale",
    "cls.predictions.transform.LayerNorm.bias",
  ]
  for module in (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
  ):
    names += [layer + module + ".kernel", layer + module + ".bias"]
  for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
    names += [layer + norm + ".scale", layer + norm + ".bias"]
  return names


def _nest(names):
  tree = {}
  for name in names:
    node = tree
    *modules, leaf = name.split(".")
    for m in modules:
      node = node.setdefault(m, {})
    node[leaf] = jnp.zeros(2)
  return tree


def test_hf_flax_bert_names_match_deepspeed_rule():
  names = _hf_flax_bert_names()
  mask = _names_and_mask(_nest(names))
  assert set(mask) == set(names)
  assert mask == {n: deepspeed_decays(_torch_name(n)) for n in names}
  assert sum(mask.values()) == 10


def test_flat_torch_names_of_pytorch_pretrained_bert_match_deepspeed_rule():
  ppb = require("pytorch_pretrained_bert")
  config = ppb.BertConfig(
    vocab_size_or_config_json_file=40,
    hidden_size=8,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=16,
  )
  model = ppb.BertForMaskedLM(config)
  params = {n: p.detach().numpy() for n, p in model.named_parameters()}
  mask = bert_weight_decay_mask(params)
  assert set(mask) == set(params)  # a flat dict stays a flat dict
  assert mask == {n: deepspeed_decays(n) for n in params}
  assert not all(mask.values()) and any(mask.values())


def test_plain_substring_patterns_reproduce_deepspeed_on_torch_names():
  names = [
    "bert.embeddings.LayerNorm.weight",
    "bert.pooler.dense.bias",
    "bert.pooler.dense.weight",
    "cls.predictions.bias",
    "my_bias_free.weight",
  ]
  mask = bert_weight_decay_mask(
    dict.fromkeys(names, 0.0),
    no_decay=[
      re.escape(s) for s in ("bias", "LayerNorm.bias", "LayerNorm.weight")
    ],
  )
  assert mask == {n: deepspeed_decays(n) for n in names}
  assert mask["my_bias_free.weight"] is False  # the substring rule's reach


def test_custom_patterns():
  params = {
    "encoder": {"dense": {"kernel": 0.0, "bias": 0.0}},
    "embeddings": {"embedding": 0.0},
  }
  mask = bert_weight_decay_mask(params, no_decay=[r"^embeddings\.", r"bias$"])
  assert mask == {
    "encoder": {"dense": {"kernel": True, "bias": False}},
    "embeddings": {"embedding": False},
  }
  everything = bert_weight_decay_mask(params, no_decay=())
  assert all(jax.tree.leaves(everything))


def test_default_patterns_are_exported():
  assert bertadam_optax.BERT_NO_DECAY_PATTERNS == (
    bertadam_optax.masks.BERT_NO_DECAY_PATTERNS
  )
  assert bert_weight_decay_mask({"x": 0.0}) == bert_weight_decay_mask(
    {"x": 0.0}, no_decay=bertadam_optax.BERT_NO_DECAY_PATTERNS
  )


@pytest.mark.parametrize(
  "path,name",
  [
    ((jax.tree_util.DictKey("a"), jax.tree_util.DictKey("b")), "a.b"),
    (
      (
        jax.tree_util.DictKey("layers"),
        jax.tree_util.SequenceKey(3),
        jax.tree_util.GetAttrKey("kernel"),
      ),
      "layers.3.kernel",
    ),
    ((jax.tree_util.DictKey("w"), jax.tree_util.GetAttrKey("value")), "w"),
    (
      (jax.tree_util.DictKey("bert.pooler.dense.bias"),),
      "bert.pooler.dense.bias",
    ),
  ],
)
def test_path_to_name(path, name):
  assert path_to_name(path) == name


def test_as_the_mask_of_optax_add_decayed_weights():
  params = jax.tree.map(
    lambda s: jnp.ones(s.shape, s.dtype), _tiny_bert_params()
  )
  tx = optax.add_decayed_weights(0.1, mask=bert_weight_decay_mask())
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
  expected = jax.tree.map(
    lambda decayed, p: 0.1 * p if decayed else 0 * p,
    bert_weight_decay_mask(params),
    params,
  )
  chex.assert_trees_all_close(updates, expected)


def test_the_mask_builder_works_on_shape_structs():
  params = _tiny_bert_params()
  build = bert_weight_decay_mask()
  assert build(params) == bert_weight_decay_mask(params)


def test_docstring_examples_run():
  import doctest  # pylint: disable=import-outside-toplevel

  from bertadam_optax import masks as module  # pylint: disable=import-outside-toplevel

  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0
  assert result.failed == 0


@pytest.mark.parametrize(
  "make,name",
  [
    (lambda: masks.bert_weight_decay_mask(no_decay="bias"), "no_decay"),
    (lambda: masks.bert_weight_decay_mask(no_decay=["("]), "no_decay"),
    (
      lambda: masks.trainer_weight_decay_mask(norm_modules="ln_f"),
      "norm_modules",
    ),
    (lambda: masks.trainer_weight_decay_mask(norm_modules=[3]), "norm_modules"),
  ],
)
def test_bad_patterns_are_refused_by_name(make, name):
  with pytest.raises(ValueError, match=name):
    make()


def test_trainer_mask_on_torch_and_flax_names():
  names = {
    "encoder.dense.weight": 1,
    "encoder.dense.bias": 1,
    "encoder.LayerNorm.weight": 1,
    "h.0.rmsnorm.weight": 1,
    "final_norm.weight": 1,
    "Dense_0.kernel": 1,
    "LayerNorm_0.scale": 1,
    "ln_f.weight": 1,
    "normalizer.weight": 1,
  }
  assert masks.trainer_weight_decay_mask(names) == {
    "encoder.dense.weight": True,
    "encoder.dense.bias": False,
    "encoder.LayerNorm.weight": False,
    "h.0.rmsnorm.weight": False,
    "final_norm.weight": False,
    "Dense_0.kernel": True,
    "LayerNorm_0.scale": False,
    "ln_f.weight": True,
    "normalizer.weight": True,
  }
  # As a function, with a norm module the patterns miss.
  build = masks.trainer_weight_decay_mask(norm_modules=["ln_f"])
  assert build(names)["ln_f.weight"] is False
