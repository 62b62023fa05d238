"""Tests of ``bertadam_optax.interop.torch`` against real PyTorch BertAdam runs.

The reference is pytorch-pretrained-bert 0.6.2's ``BertAdam`` training a torch
model in torch: a run interrupted after N steps, moved to JAX (or from JAX to
torch) and continued M steps must end where the uninterrupted run of N + M
steps ends. The JAX side trains the Flax ``TinyBertMLM`` with ``bertadam``,
the torch side its twin ``TinyBertMLMTorch`` on the same batches. The shipped
BERT mapping is checked against pytorch-pretrained-bert's own BERT models.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import alias
from bertadam_optax import transforms
from bertadam_optax.schedules import pretrained_bert
from tests.references import require

torch = require("torch")
pytorch_pretrained_bert = require("pytorch_pretrained_bert")
require("flax")

# pylint: disable=g-import-not-at-top,wrong-import-position
from bertadam_optax.examples import tiny_bert
from bertadam_optax.examples import tiny_bert_torch
from bertadam_optax.interop import torch as interop

pytestmark = pytest.mark.filterwarnings(
  "ignore:This overload of add_:UserWarning"
)

CONFIG = tiny_bert.TinyBertConfig(
  vocab_size=64,
  hidden_size=16,
  num_layers=1,
  num_heads=2,
  intermediate_size=32,
  max_len=8,
)
TOTAL = 5
# t_total = 5 and warmup = 0.3: steps 0 and 1 warm up, steps 2..4 decay, so
# interruptions after 1 and 3 steps fall on both sides of the warmup edge.
# e = 1e-4 rather than 1e-6: the attention key bias has an exactly zero
# gradient in exact arithmetic (softmax is shift invariant), so its float32
# gradient is rounding noise, different in torch and XLA, which a tiny epsilon
# would let Adam normalise into steps as large as the real ones.
HPARAMS = dict(
  lr=1e-2,
  warmup=0.3,
  t_total=TOTAL,
  schedule="warmup_linear",
  b1=0.9,
  b2=0.999,
  e=1e-4,
  weight_decay=0.01,
  max_grad_norm=1.0,
)
RTOL, ATOL = 1e-4, 1e-6


def bertadam_like(lr, warmup, t_total, schedule, **hparams):
  """``bertadam`` with the schedule of pytorch-pretrained-bert 0.6.2's
  ``BertAdam`` (whose ``warmup_linear`` is not DeepSpeed's)."""
  return alias.bertadam(
    pretrained_bert.pretrained_bert_schedule(schedule, lr, t_total, warmup),
    schedule=None,
    **hparams,
  )


def make_batches(n, seed=0):
  rng = np.random.default_rng(seed)
  batches = []
  for _ in range(n):
    targets = rng.integers(2, CONFIG.vocab_size, (4, CONFIG.max_len))
    weights = (rng.random(targets.shape) < 0.3).astype(np.float32)
    tokens = np.where(weights > 0, 1, targets)
    batches.append((tokens, targets, weights))
  return batches


BATCHES = make_batches(TOTAL)


def torch_model_and_optimizer(
  model_state_dict=None, optimizer_state_dict=None, **hparams
):
  model = tiny_bert_torch.TinyBertMLMTorch(CONFIG)
  if model_state_dict is not None:
    model.load_state_dict(model_state_dict)
  optimizer = pytorch_pretrained_bert.BertAdam(
    model.parameters(), **(hparams or HPARAMS)
  )
  if optimizer_state_dict is not None:
    optimizer.load_state_dict(optimizer_state_dict)
  return model, optimizer


def torch_train(model, optimizer, batches):
  for tokens, targets, weights in batches:
    logits = model(torch.as_tensor(tokens))
    loss = tiny_bert_torch.mlm_loss_torch(
      logits, torch.as_tensor(targets), torch.as_tensor(weights)
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def param_names(model):
  return [name for name, _ in model.named_parameters()]


@pytest.fixture(scope="module")
def flax_params():
  return jax.jit(tiny_bert.TinyBertMLM(CONFIG).init)(
    jax.random.key(0), jnp.zeros((1, CONFIG.max_len), jnp.int32)
  )["params"]


@pytest.fixture(scope="module")
def mapping(flax_params):
  return interop.match_by_name(
    tiny_bert_torch.TinyBertMLMTorch(CONFIG).state_dict(), flax_params
  )


@pytest.fixture(scope="module")
def tx():
  return bertadam_like(**HPARAMS)


@pytest.fixture(scope="module")
def jax_train(tx):
  model = tiny_bert.TinyBertMLM(CONFIG)

  @jax.jit
  def step(params, opt_state, tokens, targets, weights):
    def loss_fn(p):
      return tiny_bert.mlm_loss(
        model.apply({"params": p}, tokens), targets, weights
      )

    grads = jax.grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  def train(params, opt_state, batches):
    for batch in batches:
      params, opt_state = step(params, opt_state, *batch)
    return params, opt_state

  return train


def assert_state_dicts_close(actual, expected, rtol=RTOL, atol=ATOL):
  assert list(actual) == list(expected)
  for name in expected:
    np.testing.assert_allclose(
      np.asarray(actual[name]),
      np.asarray(expected[name]),
      rtol=rtol,
      atol=atol,
      err_msg=name,
    )


def assert_optimizer_states_close(actual, expected, rtol=RTOL, atol=ATOL):
  assert sorted(actual["state"]) == sorted(expected["state"])
  for pid, entry in expected["state"].items():
    assert actual["state"][pid]["step"] == entry["step"]
    for key in ("next_m", "next_v"):
      np.testing.assert_allclose(
        np.asarray(actual["state"][pid][key]),
        np.asarray(entry[key]),
        rtol=rtol,
        atol=atol,
        err_msg=f"{pid} {key}",
      )


# --- torch -> JAX -> torch, continuing the run -------------------------------


@pytest.mark.parametrize("n", [1, 3])
def test_torch_run_continues_in_jax(n, flax_params, mapping, tx, jax_train):
  torch.manual_seed(0)
  model, optimizer = torch_model_and_optimizer()
  start = copy.deepcopy(model.state_dict())
  torch_train(model, optimizer, BATCHES[:n])
  names = param_names(model)

  params, opt_state = interop.from_torch(
    model.state_dict(),
    optimizer.state_dict(),
    params=flax_params,
    optimizer=tx,
    mapping=mapping,
    param_names=names,
  )
  np.testing.assert_allclose(
    alias.get_lr(opt_state), optimizer.get_lr()[0], rtol=1e-6
  )
  params, opt_state = jax_train(params, opt_state, BATCHES[n:])

  reference, reference_optimizer = torch_model_and_optimizer(start)
  torch_train(reference, reference_optimizer, BATCHES)
  model_state_dict, optimizer_state_dict = interop.to_torch(
    params,
    opt_state,
    mapping=mapping,
    param_names=names,
    param_groups=reference_optimizer.state_dict()["param_groups"],
  )
  assert_state_dicts_close(model_state_dict, reference.state_dict())
  assert_optimizer_states_close(
    optimizer_state_dict, reference_optimizer.state_dict()
  )


@pytest.mark.parametrize("n", [1, 3])
def test_jax_run_continues_in_torch(n, flax_params, mapping, tx, jax_train):
  params, opt_state = jax_train(flax_params, tx.init(flax_params), BATCHES[:n])
  model, optimizer = torch_model_and_optimizer()
  model_state_dict, optimizer_state_dict = interop.to_torch(
    params,
    opt_state,
    mapping=mapping,
    param_names=param_names(model),
    param_groups=optimizer.state_dict()["param_groups"],
  )
  model.load_state_dict(model_state_dict)
  optimizer.load_state_dict(optimizer_state_dict)
  np.testing.assert_allclose(
    optimizer.get_lr()[0], alias.get_lr(opt_state), rtol=1e-6
  )
  torch_train(model, optimizer, BATCHES[n:])

  reference = jax_train(flax_params, tx.init(flax_params), BATCHES)
  expected_model, expected_optimizer = interop.to_torch(
    *reference,
    mapping=mapping,
    param_names=param_names(model),
    param_groups=optimizer.state_dict()["param_groups"],
  )
  assert_state_dicts_close(model.state_dict(), expected_model)
  assert_optimizer_states_close(optimizer.state_dict(), expected_optimizer)


def test_round_trip_is_exact(flax_params, mapping, tx):
  torch.manual_seed(1)
  model, optimizer = torch_model_and_optimizer()
  torch_train(model, optimizer, BATCHES[:2])
  names = param_names(model)
  params, opt_state = interop.from_torch(
    model.state_dict(),
    optimizer.state_dict(),
    params=flax_params,
    optimizer=tx,
    mapping=mapping,
    param_names=names,
  )

  model_state_dict, optimizer_state_dict = interop.to_torch(
    params,
    opt_state,
    mapping=mapping,
    param_names=names,
    param_groups=optimizer.state_dict()["param_groups"],
  )
  assert_state_dicts_close(model_state_dict, model.state_dict(), 0, 0)
  assert_optimizer_states_close(
    optimizer_state_dict, optimizer.state_dict(), 0, 0
  )

  params_again, opt_state_again = interop.from_torch(
    model_state_dict,
    optimizer_state_dict,
    params=flax_params,
    optimizer=tx,
    mapping=mapping,
    param_names=names,
  )
  jax.tree.map(
    np.testing.assert_array_equal,
    (params, opt_state),
    (params_again, opt_state_again),
  )


def test_moments_and_counts_land_in_the_optax_state(flax_params, mapping, tx):
  torch.manual_seed(2)
  model, optimizer = torch_model_and_optimizer()
  torch_train(model, optimizer, BATCHES[:2])
  _, opt_state = interop.from_torch(
    model.state_dict(),
    optimizer.state_dict(),
    params=flax_params,
    optimizer=tx,
    mapping=mapping,
    param_names=param_names(model),
  )
  (moments,) = [
    s for s in opt_state if isinstance(s, transforms.ScaleByBertAdamState)
  ]
  (lr_state,) = [
    s for s in opt_state if isinstance(s, transforms.ScaleByLearningRateState)
  ]
  assert int(moments.count) == int(lr_state.count) == 2
  entry = optimizer.state[model.layer[0].intermediate.weight]
  # torch's Linear weight is [out, in]; the Flax kernel and its moments are
  # [in, out].
  np.testing.assert_array_equal(
    moments.mu["layer_0"]["intermediate"]["kernel"], entry["next_m"].numpy().T
  )
  np.testing.assert_array_equal(
    moments.nu["layer_0"]["intermediate"]["kernel"], entry["next_v"].numpy().T
  )
  assert moments.count.dtype == lr_state.count.dtype == jnp.int32
  assert lr_state.learning_rate.dtype == jnp.float32


@pytest.mark.parametrize("committed", [False, True])
def test_placement_follows_the_template(
  committed, trained_torch, flax_params, mapping, tx
):
  # jit compiles once per committedness, so a tree that mixes committed and
  # uncommitted leaves would compile the train step twice.
  model, optimizer = trained_torch
  template = (
    jax.device_put(flax_params, jax.devices()[0]) if committed else flax_params
  )
  params, opt_state = interop.from_torch(
    model.state_dict(),
    optimizer.state_dict(),
    params=template,
    optimizer=tx,
    mapping=mapping,
    param_names=param_names(model),
  )
  assert {leaf.committed for leaf in jax.tree.leaves(params)} == {committed}
  (moments,) = [
    s for s in opt_state if isinstance(s, transforms.ScaleByBertAdamState)
  ]
  assert {leaf.committed for leaf in jax.tree.leaves(moments.mu)} == {committed}


def test_fresh_torch_optimizer_gives_the_initial_state(
  flax_params, mapping, tx
):
  model, optimizer = torch_model_and_optimizer()
  params, opt_state = interop.from_torch(
    model.state_dict(),
    optimizer.state_dict(),
    params=flax_params,
    optimizer=tx,
    mapping=mapping,
    param_names=param_names(model),
  )
  jax.tree.map(np.testing.assert_array_equal, opt_state, tx.init(params))
  _, optimizer_state_dict = interop.to_torch(
    params,
    opt_state,
    mapping=mapping,
    param_names=param_names(model),
    param_groups=optimizer.state_dict()["param_groups"],
  )
  assert optimizer_state_dict["state"] == {}


def test_template_of_shapes_dtypes_is_enough(flax_params, mapping):
  model = tiny_bert_torch.TinyBertMLMTorch(CONFIG)
  template = jax.tree.map(
    lambda p: jax.ShapeDtypeStruct(p.shape, jnp.bfloat16), flax_params
  )
  params = interop.params_from_torch(model.state_dict(), template, mapping)
  assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {
    jnp.dtype(jnp.bfloat16)
  }
  back = interop.params_to_torch(params, mapping)
  assert {t.dtype for t in back.values()} == {torch.bfloat16}
  for name, tensor in model.state_dict().items():
    np.testing.assert_array_equal(
      back[name].float().numpy(), tensor.to(torch.bfloat16).float().numpy()
    )


# --- the BERT mapping, on pytorch-pretrained-bert's own models ---------------

BERT = dict(
  vocab_size_or_config_json_file=40,
  hidden_size=8,
  num_hidden_layers=2,
  num_attention_heads=2,
  intermediate_size=12,
  max_position_embeddings=10,
  type_vocab_size=2,
  hidden_dropout_prob=0.0,
  attention_probs_dropout_prob=0.0,
)


def hf_flax_bert_params(pooler=True, next_sentence=False):
  """The ``params`` layout of transformers' FlaxBertForMaskedLM/PreTraining."""
  h, i, v = BERT["hidden_size"], BERT["intermediate_size"], 40
  shape = lambda *s: jax.ShapeDtypeStruct(s, jnp.float32)
  dense = lambda n_in, n_out: {
    "kernel": shape(n_in, n_out),
    "bias": shape(n_out),
  }
  norm = lambda: {"scale": shape(h), "bias": shape(h)}
  layer = lambda: {
    "attention": {
      "self": {"query": dense(h, h), "key": dense(h, h), "value": dense(h, h)},
      "output": {"dense": dense(h, h), "LayerNorm": norm()},
    },
    "intermediate": {"dense": dense(h, i)},
    "output": {"dense": dense(i, h), "LayerNorm": norm()},
  }
  bert = {
    "embeddings": {
      "word_embeddings": {"embedding": shape(v, h)},
      "position_embeddings": {"embedding": shape(10, h)},
      "token_type_embeddings": {"embedding": shape(2, h)},
      "LayerNorm": norm(),
    },
    "encoder": {"layer": {"0": layer(), "1": layer()}},
  }
  if pooler:
    bert["pooler"] = {"dense": dense(h, h)}
  cls = {
    "predictions": {
      "transform": {"dense": dense(h, h), "LayerNorm": norm()},
      "bias": shape(v),
    }
  }
  if next_sentence:
    cls["seq_relationship"] = dense(h, 2)
  return {"bert": bert, "cls": cls}


TIED = {
  "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"
}


@pytest.mark.parametrize(
  "model_name,next_sentence",
  [("BertForMaskedLM", False), ("BertForPreTraining", True)],
)
def test_bert_mapping_matches_pytorch_pretrained_bert(
  model_name, next_sentence
):
  config = pytorch_pretrained_bert.BertConfig(**BERT)
  model = getattr(pytorch_pretrained_bert, model_name)(config)
  mapping = interop.bert_mapping(2, next_sentence=next_sentence)
  assert set(mapping) == set(model.state_dict())
  assert mapping == interop.match_by_name(
    model.state_dict(),
    hf_flax_bert_params(next_sentence=next_sentence),
    tied=TIED,
  )


@pytest.mark.parametrize("num_layers", [0, -1, 2.0, True])
def test_bert_mapping_refuses_a_bad_layer_count(num_layers):
  with pytest.raises(ValueError, match=f"num_layers={num_layers!r}"):
    interop.bert_mapping(num_layers)


def test_bert_checkpoint_round_trip_continues_identically():
  config = pytorch_pretrained_bert.BertConfig(**BERT)
  hparams = dict(lr=1e-2, warmup=0.2, t_total=4, schedule="warmup_linear")
  tokens = torch.as_tensor(np.random.default_rng(3).integers(0, 40, (2, 6)))

  def step(model, optimizer):
    loss = model(tokens, masked_lm_labels=tokens)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

  torch.manual_seed(0)
  model = pytorch_pretrained_bert.BertForMaskedLM(config)
  optimizer = pytorch_pretrained_bert.BertAdam(model.parameters(), **hparams)
  step(model, optimizer)
  step(model, optimizer)
  mapping = interop.bert_mapping(2)
  names = param_names(model)
  params, opt_state = interop.from_torch(
    model.state_dict(),
    optimizer.state_dict(),
    params=hf_flax_bert_params(),
    optimizer=bertadam_like(**hparams),
    mapping=mapping,
    param_names=names,
  )
  # get_lr() answers [0] while any parameter (the pooler) has no state.
  torch_lr = 1e-2 * optimizer.param_groups[0]["schedule"].get_lr(2)
  np.testing.assert_allclose(alias.get_lr(opt_state), torch_lr, rtol=1e-6)

  restored = pytorch_pretrained_bert.BertForMaskedLM(config)
  restored_optimizer = pytorch_pretrained_bert.BertAdam(
    restored.parameters(), **hparams
  )
  model_state_dict, optimizer_state_dict = interop.to_torch(
    params,
    opt_state,
    mapping=mapping,
    param_names=names,
    param_groups=restored_optimizer.state_dict()["param_groups"],
  )
  restored.load_state_dict(model_state_dict)
  restored_optimizer.load_state_dict(optimizer_state_dict)
  # The MLM never uses the pooler: torch keeps no state for it, the optax
  # state holds zero moments, which restore as zeros.
  pooler = {names.index(n) for n in names if n.startswith("bert.pooler.")}
  for pid, entry in restored_optimizer.state_dict()["state"].items():
    if pid in pooler:
      assert not entry["next_m"].any() and not entry["next_v"].any()
    else:
      original = optimizer.state_dict()["state"][pid]
      assert entry["step"] == original["step"]
      assert torch.equal(entry["next_m"], original["next_m"])
      assert torch.equal(entry["next_v"], original["next_v"])

  step(model, optimizer)
  step(restored, restored_optimizer)
  for name, tensor in model.state_dict().items():
    assert torch.equal(restored.state_dict()[name], tensor), name
  assert restored.cls.predictions.decoder.weight is (
    restored.bert.embeddings.word_embeddings.weight
  )


# --- errors list what is wrong ------------------------------------------------


def test_mismatched_missing_and_extra_names_are_listed(flax_params, mapping):
  state_dict = dict(tiny_bert_torch.TinyBertMLMTorch(CONFIG).state_dict())
  del state_dict["layer.0.key.bias"]
  state_dict["pooler.weight"] = torch.zeros(3, 3)
  state_dict["layer.0.query.weight"] = torch.zeros(16, 8)
  with pytest.raises(ValueError) as error:
    interop.params_from_torch(state_dict, flax_params, mapping)
  message = str(error.value)
  assert "extra torch names" in message and "pooler.weight" in message
  assert "missing torch names" in message and "layer.0.key.bias" in message
  assert (
    "shapes that do not match" in message
    and "layer.0.query.weight (16, 8) -> layer_0.query.kernel (16, 16)"
    in message
  )


def test_mapping_to_paths_not_in_the_tree_is_listed(flax_params, mapping):
  state_dict = tiny_bert_torch.TinyBertMLMTorch(CONFIG).state_dict()
  wrong = dict(mapping, **{"decoder.bias": "decoder.b"})
  with pytest.raises(
    ValueError,
    match=r"(?s)missing tree paths.*decoder\.b\n"
    r".*extra tree paths.*decoder\.bias",
  ):
    interop.params_from_torch(state_dict, flax_params, wrong)
  with pytest.raises(ValueError, match=r"(?s)missing tree paths.*decoder\.b"):
    interop.params_to_torch(flax_params, wrong)


def test_match_by_name_lists_unmatched_names(flax_params):
  state_dict = dict(tiny_bert_torch.TinyBertMLMTorch(CONFIG).state_dict())
  state_dict["head.weight"] = state_dict.pop("head_transform.weight")
  with pytest.raises(ValueError) as error:
    interop.match_by_name(state_dict, flax_params)
  assert "extra torch names" in str(error.value)
  assert "  head.weight" in str(error.value)
  assert "  head_transform.kernel" in str(error.value)


def test_match_by_name_refuses_ambiguous_names():
  state_dict = {
    "dense.weight": torch.zeros(2, 2),
    "dense.gamma": torch.zeros(2, 2),
  }
  params = {"dense": {"kernel": jnp.zeros((2, 2))}}
  with pytest.raises(ValueError, match="dense.weight and dense.gamma"):
    interop.match_by_name(state_dict, params)
  with pytest.raises(ValueError, match="layer.0.w and layer_0.w"):
    interop.match_by_name(
      {}, {"layer_0": {"w": 1.0}, "layer": {"0": {"w": 1.0}}}
    )


def test_match_by_name_renames_before_matching(flax_params, mapping):
  state_dict = {
    f"module.{n}": t
    for n, t in tiny_bert_torch.TinyBertMLMTorch(CONFIG).state_dict().items()
  }
  renamed = interop.match_by_name(
    state_dict, flax_params, rename=lambda n: n.removeprefix("module.")
  )
  assert renamed == {f"module.{n}": p for n, p in mapping.items()}


def test_tied_names_must_hold_equal_values():
  mapping = interop.bert_mapping(2)
  state_dict = dict(
    pytorch_pretrained_bert.BertForMaskedLM(
      pytorch_pretrained_bert.BertConfig(**BERT)
    ).state_dict()
  )
  state_dict["cls.predictions.decoder.weight"] = torch.zeros(40, 8)
  with pytest.raises(
    ValueError,
    match="cls.predictions.decoder.weight -> "
    "bert.embeddings.word_embeddings.embedding",
  ):
    interop.params_from_torch(state_dict, hf_flax_bert_params(), mapping)


@pytest.fixture(scope="module")
def trained_torch():
  torch.manual_seed(4)
  model, optimizer = torch_model_and_optimizer()
  torch_train(model, optimizer, BATCHES[:1])
  return model, optimizer


def test_parameters_at_different_steps_are_listed(
  trained_torch, flax_params, mapping, tx
):
  model, optimizer = trained_torch
  optimizer_state_dict = optimizer.state_dict()
  optimizer_state_dict["state"][4] = dict(
    optimizer_state_dict["state"][4], step=7
  )
  with pytest.raises(
    ValueError,
    match=r"(?s)different steps.*step 1: "
    r"word_embeddings.weight.*step 7: layer.0.query.weight",
  ):
    interop.from_torch(
      model.state_dict(),
      optimizer_state_dict,
      params=flax_params,
      optimizer=tx,
      mapping=mapping,
      param_names=param_names(model),
    )


def test_param_names_must_cover_the_optimizer(
  trained_torch, flax_params, mapping, tx
):
  model, optimizer = trained_torch
  names = param_names(model)
  with pytest.raises(
    ValueError, match="hold 26 parameters but param_names lists 25"
  ):
    interop.from_torch(
      model.state_dict(),
      optimizer.state_dict(),
      params=flax_params,
      optimizer=tx,
      mapping=mapping,
      param_names=names[:-1],
    )
  with pytest.raises(
    ValueError,
    match=r"(?s)param_names missing from the "
    r"mapping.*\n  nope",
  ):
    interop.from_torch(
      model.state_dict(),
      optimizer.state_dict(),
      params=flax_params,
      optimizer=tx,
      mapping=mapping,
      param_names=names[:-1] + ["nope"],
    )
  with pytest.raises(ValueError, match=r"map to the same leaf"):
    interop.to_torch(
      flax_params,
      tx.init(flax_params),
      mapping=mapping,
      param_names=names[:-1] + [names[0]],
      param_groups=optimizer.state_dict()["param_groups"],
    )


def test_a_model_state_dict_as_optimizer_state_is_refused(
  trained_torch, flax_params, mapping, tx
):
  model, _ = trained_torch
  with pytest.raises(ValueError, match=r"has no \['state', 'param_groups'\]"):
    interop.from_torch(
      model.state_dict(),
      model.state_dict(),
      params=flax_params,
      optimizer=tx,
      mapping=mapping,
      param_names=param_names(model),
    )


def test_a_state_that_is_not_bertadams_is_refused(flax_params, mapping, tx):
  model = tiny_bert_torch.TinyBertMLMTorch(CONFIG)
  adam = torch.optim.Adam(model.parameters())
  torch_train(model, adam, BATCHES[:1])
  with pytest.raises(
    ValueError,
    match=r"not BertAdam's.*\n  word_embeddings"
    r".weight: \['exp_avg', 'exp_avg_sq', 'step'\]",
  ):
    interop.from_torch(
      model.state_dict(),
      adam.state_dict(),
      params=flax_params,
      optimizer=tx,
      mapping=mapping,
      param_names=param_names(model),
    )


def test_an_optimizer_without_bertadam_moments_is_refused(
  trained_torch, flax_params, mapping
):
  model, optimizer = trained_torch
  with pytest.raises(ValueError, match="holds no ScaleByBertAdamState"):
    interop.from_torch(
      model.state_dict(),
      optimizer.state_dict(),
      params=flax_params,
      optimizer=optax.adam(1e-3),
      mapping=mapping,
      param_names=param_names(model),
    )
  with pytest.raises(ValueError, match="holds no ScaleByBertAdamState"):
    interop.to_torch(
      flax_params,
      optax.adam(1e-3).init(flax_params),
      mapping=mapping,
      param_names=param_names(model),
      param_groups=optimizer.state_dict()["param_groups"],
    )


def test_string_state_keys_are_not_taken_as_no_step_yet(
  trained_torch, flax_params, mapping, tx
):
  # A JSON round trip turns the integer ids into strings; before, every
  # parameter then looked stateless and the run silently restarted at step 0.
  model, optimizer = trained_torch
  optimizer_state_dict = optimizer.state_dict()
  optimizer_state_dict["state"] = {
    str(k): v for k, v in optimizer_state_dict["state"].items()
  }
  with pytest.raises(
    ValueError,
    match=r"(?s)no id of param_groups \(26\)"
    r".*ids without a state \(26\)",
  ):
    interop.from_torch(
      model.state_dict(),
      optimizer_state_dict,
      params=flax_params,
      optimizer=tx,
      mapping=mapping,
      param_names=param_names(model),
    )


def test_docstring_examples_run():
  import doctest

  result = doctest.testmod(interop, optionflags=doctest.ELLIPSIS)
  assert result.attempted >= 20 and result.failed == 0, result


def test_importing_the_package_does_not_import_torch():
  import subprocess
  import sys

  code = (
    "import sys, bertadam_optax, bertadam_optax.interop; "
    "assert 'torch' not in sys.modules, 'torch imported'"
  )
  subprocess.run([sys.executable, "-c", code], check=True)


# --- the README section 'Migrating a PyTorch checkpoint', verbatim -----------


def test_readme_snippet():
  import jax
  import jax.numpy as jnp
  import torch
  from pytorch_pretrained_bert import BertAdam

  from bertadam_optax import bertadam
  from bertadam_optax import get_lr
  from bertadam_optax.examples.tiny_bert import TinyBertConfig
  from bertadam_optax.examples.tiny_bert import TinyBertMLM
  from bertadam_optax.examples.tiny_bert_torch import TinyBertMLMTorch
  from bertadam_optax.examples.tiny_bert_torch import mlm_loss_torch
  from bertadam_optax.interop.torch import from_torch
  from bertadam_optax.interop.torch import match_by_name
  from bertadam_optax.interop.torch import to_torch
  from bertadam_optax.schedules.pretrained_bert import pretrained_bert_schedule

  config = TinyBertConfig(
    vocab_size=64,
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    intermediate_size=32,
    max_len=8,
  )

  # A PyTorch run, stopped after 3 steps.
  model = TinyBertMLMTorch(config)
  optimizer = BertAdam(model.parameters(), lr=1e-3, warmup=0.1, t_total=100)
  for _ in range(3):
    tokens = torch.randint(0, 64, (4, 8))
    loss = mlm_loss_torch(model(tokens), tokens, torch.ones(4, 8))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
  model_sd, optimizer_sd = model.state_dict(), optimizer.state_dict()

  # The same optimizer in JAX (pytorch-pretrained-bert's warmup_linear).
  tx = bertadam(
    pretrained_bert_schedule("warmup_linear", 1e-3, t_total=100, warmup=0.1),
    schedule=None,
  )
  shapes = jax.eval_shape(
    TinyBertMLM(config).init, jax.random.key(0), jnp.zeros((1, 8), jnp.int32)
  )["params"]
  mapping = match_by_name(model_sd, shapes)  # {'layer.0.query.weight':
  #  'layer_0.query.kernel', ...}
  names = [name for name, _ in model.named_parameters()]
  params, opt_state = from_torch(
    model_sd,
    optimizer_sd,
    params=shapes,
    optimizer=tx,
    mapping=mapping,
    param_names=names,
  )
  assert jnp.allclose(get_lr(opt_state), optimizer.get_lr()[0])

  # ... train on in JAX, then back to PyTorch.
  model_sd, optimizer_sd = to_torch(
    params,
    opt_state,
    mapping=mapping,
    param_names=names,
    param_groups=optimizer.state_dict()["param_groups"],
  )
  model.load_state_dict(model_sd)
  optimizer.load_state_dict(optimizer_sd)
