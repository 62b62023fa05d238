"""Tests for bertadam_optax/interop/megatron.py.

The port is compared with a torch run built as Megatron-LM builds it: torch
``AdamW`` (or ``SGD``) over two param groups (``wd_mult`` 0 for biases and 1-D
parameters), megatron-core's own ``OptimizerParamScheduler`` set up as
``get_optimizer_param_scheduler`` does and stepped by the global batch size
after every update, the mean of the micro-batch gradients, and
``torch.nn.utils.clip_grad_norm_``.
"""

from __future__ import annotations

import doctest
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import get_lr
from bertadam_optax import transforms
from bertadam_optax.interop import megatron
from tests.references import require

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "megatron"
ITERS = (FIXTURES / "pretrain_gpt_iters.sh").read_text()
SAMPLES = (FIXTURES / "pretrain_gpt_samples.sh").read_text()

# A flat dict of Megatron GPT parameter names, as torch's named_parameters().
SHAPES = {
  "embedding.word_embeddings.weight": (10, 4),
  "decoder.layers.0.self_attention.linear_qkv.weight": (12, 4),
  "decoder.layers.0.self_attention.linear_qkv.bias": (12,),
  "decoder.layers.0.mlp.linear_fc1.weight": (8, 4),
  "decoder.layers.0.mlp.linear_fc1.bias": (8,),
  "decoder.final_layernorm.weight": (4,),
  "output_layer.weight": (10, 4),
}


def _megatron_scheduler(optimizer, args):
  """megatron-core's scheduler, set up as Megatron-LM's training.py does."""
  module = require("megatron.core.optimizer_param_scheduler")
  get = lambda key, default=None, cast=float: (
    cast(args[key]) if key in args else default
  )
  gbs = get("global_batch_size", cast=int)
  fraction = get("lr_warmup_fraction")
  if get("train_iters", cast=int):
    train_iters = get("train_iters", cast=int)
    decay = get("lr_decay_iters", train_iters, int) * gbs
    wd_steps = train_iters * gbs
    wsd = get("lr_wsd_decay_iters", None, int)
    wsd = None if wsd is None else wsd * gbs
    warmup = (
      fraction * decay
      if fraction is not None
      else get("lr_warmup_iters", 0, int) * gbs
    )
  else:
    samples = get("train_samples", cast=int)
    decay = get("lr_decay_samples", samples, int)
    wd_steps = samples
    wsd = get("lr_wsd_decay_samples", None, int)
    warmup = (
      fraction * decay
      if fraction is not None
      else get("lr_warmup_samples", 0, int)
    )
  style = args.get("weight_decay_incr_style", "constant")
  if style == "constant":
    start_wd = end_wd = get("weight_decay", 0.01)
  else:
    start_wd, end_wd = get("start_weight_decay"), get("end_weight_decay")
  return module.OptimizerParamScheduler(
    optimizer,
    init_lr=get("lr_warmup_init", 0.0),
    max_lr=get("lr"),
    min_lr=get("min_lr", 0.0),
    lr_warmup_steps=warmup,
    lr_decay_steps=decay,
    lr_decay_style=args.get("lr_decay_style", "linear"),
    start_wd=start_wd,
    end_wd=end_wd,
    wd_incr_steps=wd_steps,
    wd_incr_style=style,
    wsd_decay_steps=wsd,
    lr_wsd_decay_style=args.get("lr_wsd_decay_style", "exponential"),
  )


def _init_params(seed=0):
  rng = np.random.default_rng(seed)
  return {
    name: (0.5 * rng.standard_normal(shape)).astype(np.float32)
    for name, shape in SHAPES.items()
  }


def _micro_grads(num, seed=1):
  rng = np.random.default_rng(seed)
  # Norms around the clip bound: some updates clip, some do not.
  return [
    {
      name: (rng.standard_normal(shape) * rng.uniform(0.02, 0.4)).astype(
        np.float32
      )
      for name, shape in SHAPES.items()
    }
    for _ in range(num)
  ]


def _torch_run(args, params, micro_grads, accumulation, num_updates):
  torch = require("torch")
  get = lambda key, default: float(args.get(key, default))
  tensors = {n: torch.nn.Parameter(torch.tensor(v)) for n, v in params.items()}
  no_wd = [p for n, p in tensors.items() if n.endswith(".bias") or p.ndim == 1]
  wd = [
    p for n, p in tensors.items() if not (n.endswith(".bias") or p.ndim == 1)
  ]
  groups = [{"params": wd, "wd_mult": 1.0}, {"params": no_wd, "wd_mult": 0.0}]
  if args.get("optimizer", "adam") == "adam":
    optimizer = torch.optim.AdamW(
      groups,
      lr=get("lr", 0),
      weight_decay=0.0,
      betas=(get("adam_beta1", 0.9), get("adam_beta2", 0.999)),
      eps=get("adam_eps", 1e-8),
    )
  else:
    optimizer = torch.optim.SGD(
      groups,
      lr=get("lr", 0),
      weight_decay=0.0,
      momentum=get("sgd_momentum", 0.9),
    )
  scheduler = _megatron_scheduler(optimizer, args)
  gbs = int(args["global_batch_size"])
  lrs = []
  for k in range(num_updates):
    batch = micro_grads[k * accumulation : (k + 1) * accumulation]
    for name, tensor in tensors.items():
      # Megatron divides each micro-batch loss by the number of micro-batches.
      tensor.grad = torch.tensor(
        sum(g[name] for g in batch) / np.float32(accumulation)
      )
    if get("clip_grad", 1.0) > 0:
      torch.nn.utils.clip_grad_norm_(
        list(tensors.values()), get("clip_grad", 1.0)
      )
    lrs.append(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step(increment=gbs)
  return {n: t.detach().numpy() for n, t in tensors.items()}, lrs


def _jax_run(optimizer, params, micro_grads, accumulation, num_updates):
  params = jax.tree.map(jnp.asarray, params)
  state = optimizer.init(params)
  step = jax.jit(chex.assert_max_traces(optimizer.update, n=1))
  chex.clear_trace_counter()
  lrs = []
  for i in range(num_updates * accumulation):
    if i % accumulation == 0:
      lrs.append(float(get_lr(state)))
    updates, state = step(
      jax.tree.map(jnp.asarray, micro_grads[i]), state, params
    )
    params = optax.apply_updates(params, updates)
  return params, lrs, state


@pytest.mark.parametrize(
  "script, dp, accumulation",
  [(ITERS, 2, 2), (SAMPLES, 1, 2)],
  ids=["iterations", "samples"],
)
def test_matches_megatron_torch_run(script, dp, accumulation):
  plan = megatron.plan_megatron_args(script, data_parallel_size=dp)
  assert plan.accumulation_steps == accumulation
  assert plan.train_iters == 30
  args = megatron.parse_megatron_args(script)
  params, grads = _init_params(), _micro_grads(30 * accumulation)
  want, want_lrs = _torch_run(args, params, grads, accumulation, 30)
  got, got_lrs, _ = _jax_run(plan.build(), params, grads, accumulation, 30)
  np.testing.assert_allclose(got_lrs, want_lrs, rtol=1e-6)
  for name in SHAPES:
    np.testing.assert_allclose(
      got[name], want[name], rtol=1e-5, atol=1e-7, err_msg=name
    )


def test_sgd_with_momentum_matches_torch_sgd():
  args = {
    "optimizer": "sgd",
    "sgd_momentum": 0.8,
    "lr": 0.05,
    "min_lr": 0.001,
    "lr_decay_style": "linear",
    "lr_warmup_iters": 3,
    "train_iters": 20,
    "micro_batch_size": 2,
    "global_batch_size": 6,
    "weight_decay": 0.05,
    "clip_grad": 0.0,
  }
  plan = megatron.plan_megatron_args(args, data_parallel_size=3)
  assert plan.accumulation_steps == 1 and plan.clip == 0.0
  params, grads = _init_params(2), _micro_grads(20, seed=3)
  want, _ = _torch_run(args, params, grads, 1, 20)
  got, _, _ = _jax_run(plan.build(), params, grads, 1, 20)
  for name in SHAPES:
    np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("script, dp", [(ITERS, 2), (SAMPLES, 1)])
def test_to_source_builds_the_same_optimizer_bit_for_bit(script, dp):
  plan = megatron.plan_megatron_args(script, data_parallel_size=dp)
  namespace = {}
  exec(plan.to_source(), namespace)  # the code under test
  params, grads = _init_params(), _micro_grads(24)
  ours, _, _ = _jax_run(
    plan.build(), params, grads, plan.accumulation_steps, 12
  )
  theirs, _, _ = _jax_run(
    namespace["optimizer"], params, grads, plan.accumulation_steps, 12
  )
  chex.assert_trees_all_equal(ours, theirs)


def test_plan_members_and_describe():
  plan = megatron.plan_megatron_args(SAMPLES)
  assert plan.source == "megatron" and plan.optimizer == "adam"
  assert plan.clip == 0.5 and plan.betas == (0.9, 0.98) and plan.eps == 1e-6
  assert plan.lr_schedule["increment"] == 8
  assert plan.lr_schedule["lr_warmup_steps"] == 21
  assert plan.lr_schedule["wsd_decay_steps"] == 61
  assert plan.wd_schedule["wd_incr_steps"] == 240
  assert callable(plan.learning_rate) and callable(plan.weight_decay)
  mask = plan.weight_decay_mask(_init_params())
  assert mask["decoder.layers.0.mlp.linear_fc1.bias"] is False
  assert mask["decoder.final_layernorm.weight"] is False
  assert mask["output_layer.weight"] is True
  text = "\n".join(plan.describe())
  assert "WSD" in text and "minus_sqrt" in text and "--num-layers" in text
  assert any("--use-distributed-optimizer" in note for note in plan.notes)
  with pytest.raises(dataclasses_frozen_error()):
    plan.clip = 1.0  # type: ignore[misc]


def dataclasses_frozen_error():
  import dataclasses  # pylint: disable=import-outside-toplevel

  return dataclasses.FrozenInstanceError


def test_iteration_plan_converts_to_samples():
  plan = megatron.plan_megatron_args(ITERS, data_parallel_size=2)
  # --lr-warmup-fraction .1 of --lr-decay-iters 25 * global batch 8 samples.
  assert plan.lr_schedule["lr_decay_steps"] == 200
  assert plan.lr_schedule["lr_warmup_steps"] == pytest.approx(20.0)
  assert plan.wd_schedule["wd_incr_steps"] == 240
  assert any(note.startswith("--bf16") for note in plan.notes)
  state = plan.build().init(jax.tree.map(jnp.asarray, _init_params()))
  assert float(transforms.get_weight_decay(state)) == pytest.approx(0.01)


def test_parse_token_list_string_and_dict():
  tokens = [
    "--lr",
    "1e-4",
    "--rampup-batch-size",
    "16",
    "16",
    "100",
    "--fp16",
    "--min-lr=1e-5",
  ]
  assert megatron.parse_megatron_args(tokens) == {
    "lr": "1e-4",
    "rampup_batch_size": ["16", "16", "100"],
    "fp16": True,
    "min_lr": "1e-5",
  }
  assert megatron.parse_megatron_args(
    "torchrun --nproc_per_node 8 pretrain_bert.py \\\n  --lr 2e-4 # peak\n"
  ) == {"lr": "2e-4"}
  assert megatron.parse_megatron_args({"--lr-decay-style": "cosine"}) == {
    "lr_decay_style": "cosine"
  }
  parsed = megatron.parse_megatron_args(ITERS)
  assert parsed["global_batch_size"] == "8"
  assert parsed["lr_warmup_fraction"] == ".1"
  assert parsed["save"] == "$1"  # a positional parameter stays unexpanded
  assert "nproc_per_node" not in parsed


BASE = {"lr": 1e-3, "train_iters": 100, "micro_batch_size": 2}


@pytest.mark.parametrize(
  "extra, named",
  [
    ({"decoupled_lr": 1e-4}, "--decoupled-lr"),
    ({"rampup_batch_size": ["16", "16", "100"]}, "--rampup-batch-size"),
    ({"calculate_per_token_loss": True}, "--calculate-per-token-loss"),
    ({"optimizer": "muon"}, "--optimizer"),
    ({"lr": None}, "--lr"),
    ({"micro_batch_size": None}, "--micro-batch-size"),
    ({"global_batch_size": 5}, "--global-batch-size"),
    ({"train_iters": None}, "--train-iters"),
    ({"train_samples": 100}, "--train-samples"),
    ({"lr_warmup_samples": 10}, "--lr-warmup-samples"),
    ({"lr_warmup_fraction": 0.1, "lr_warmup_iters": 5}, "--lr-warmup-iters"),
    ({"lr_decay_style": "WSD"}, "--lr-wsd-decay-iters"),
    ({"lr_decay_style": "cosin"}, "lr_decay_style"),
    ({"start_weight_decay": 0.1}, "--start-weight-decay"),
    ({"weight_decay_incr_style": "linear"}, "--start-weight-decay"),
    ({"lr_warmup_iters": 100}, "--lr-warmup"),
    ({"min_lr": 1e-2}, "--lr"),
    ({"adam_beta2": 1.0}, "--adam-beta2"),
    ({"clip_grad": "x"}, "--clip-grad"),
    ({"lr_decay_iter": 10}, "lr_decay_iter"),  # a typo of --lr-decay-iters
  ],
)
def test_refusals_name_the_argument(extra, named):
  args = {k: v for k, v in {**BASE, **extra}.items() if v is not None}
  with pytest.raises(ValueError, match=named):
    megatron.plan_megatron_args(args)


def test_sample_based_refuses_iteration_arguments():
  with pytest.raises(ValueError, match="--lr-decay-iters"):
    megatron.plan_megatron_args(
      {
        "lr": 1e-3,
        "train_samples": 1000,
        "lr_decay_iters": 10,
        "micro_batch_size": 2,
      }
    )


def test_weight_decay_mask_flax_tree_and_qk_layernorm():
  params = {
    "Dense_0": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
    "attn": {"q_layernorm": {"weight": jnp.ones(2)}},
    "scalar": jnp.ones(()),
  }
  assert megatron.megatron_weight_decay_mask(params) == {
    "Dense_0": {"kernel": True, "bias": False},
    "attn": {"q_layernorm": {"weight": False}},
    "scalar": True,
  }
  assert (
    megatron.megatron_weight_decay_mask(params, apply_wd_to_qk_layernorm=True)[
      "attn"
    ]["q_layernorm"]["weight"]
    is True
  )


def test_docstring_examples_run():
  result = doctest.testmod(megatron, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("x64", [False, True])
def test_no_float64_in_the_update(x64):
  with jax.enable_x64(x64):
    for script, dp in ((ITERS, 2), (SAMPLES, 1)):
      optimizer = megatron.from_megatron_args(script, data_parallel_size=dp)
      params = jax.tree.map(jnp.asarray, _init_params())
      jaxpr = jax.make_jaxpr(optimizer.update)(
        params, optimizer.init(params), params
      )
      assert "f64" not in str(jaxpr)


def test_script_with_several_commands_reads_the_pretrain_one():
  script = """
python tools/preprocess_data.py --input data.json --workers 4
OPTS="--lr 1e-4"
torchrun --nproc_per_node 2 pretrain_gpt.py --train-iters 10 \\
    --micro-batch-size 1 $OPTS
python tools/checkpoint/convert.py --model-type GPT
"""
  assert megatron.parse_megatron_args(script) == {
    "train_iters": "10",
    "micro_batch_size": "1",
    "lr": "1e-4",
  }


def test_the_175b_example_is_refused_for_its_batch_ramp_up():
  tokens = [
    "--micro-batch-size",
    "1",
    "--global-batch-size",
    "1536",
    "--rampup-batch-size",
    "16",
    "16",
    "5859375",
    "--train-iters",
    "500000",
    "--lr",
    "6.0e-5",
    "--lr-decay-style",
    "cosine",
  ]
  with pytest.raises(ValueError, match="--rampup-batch-size"):
    megatron.from_megatron_args(tokens)


def test_wsd_length_in_the_other_unit_is_noted_not_read():
  plan = megatron.plan_megatron_args(
    {
      **BASE,
      "lr_decay_style": "WSD",
      "lr_wsd_decay_iters": 10,
      "lr_wsd_decay_samples": 7,
    }
  )
  assert plan.lr_schedule["wsd_decay_steps"] == 20  # iterations x batch 2
  assert any(note.startswith("--lr-wsd-decay-samples") for note in plan.notes)
