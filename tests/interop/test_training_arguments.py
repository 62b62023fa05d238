"""Tests for bertadam_optax/interop/training_arguments.py.

The reference is transformers' own ``Trainer``:
``create_optimizer_and_scheduler`` on a small torch model gives the real param
groups, optimizer and scheduler, stepped as the Trainer's loop does (mean of
the micro-batch gradients, ``clip_grad_norm_``, ``optimizer.step()``,
``lr_scheduler.step()``).
"""

from __future__ import annotations

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax.interop import training_arguments as ta
from tests.references import require

NUM_STEPS = 10


def _model():
  torch = require("torch")
  nn = torch.nn

  class RMSNorm(nn.Module):
    def __init__(self, n):
      super().__init__()
      self.weight = nn.Parameter(torch.ones(n))

  class Tiny(nn.Module):
    def __init__(self):
      super().__init__()
      torch.manual_seed(0)
      self.embed = nn.Embedding(5, 4)
      self.LayerNorm = nn.LayerNorm(4)
      self.dense = nn.Linear(4, 3)
      self.ln_f = nn.LayerNorm(3)
      self.rms_norm = RMSNorm(3)
      self.norm = RMSNorm(3)
      self.head = nn.Linear(3, 2, bias=False)

  return Tiny()


def _trainer(model, tmp_path, eval_dataset=None, **fields):
  transformers = require("transformers")
  require("accelerate")
  args = transformers.TrainingArguments(
    output_dir=str(tmp_path), report_to=[], use_cpu=True, **fields
  )
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    trainer = transformers.Trainer(
      model=model, args=args, eval_dataset=eval_dataset
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=NUM_STEPS)
  return trainer, args


def _gradients(shapes, num_micro):
  rng = np.random.default_rng(3)
  return [
    {
      k: ((3.0 if i % 4 == 0 else 0.2) * rng.standard_normal(s)).astype(
        np.float32
      )
      for k, s in shapes.items()
    }
    for i in range(num_micro)
  ]


def test_mask_is_the_trainers_decay_rule(tmp_path):
  model = _model()
  trainer, _ = _trainer(model, tmp_path)
  decayed = set(trainer.get_decay_parameter_names(model))
  names = {n: p.detach().numpy() for n, p in model.named_parameters()}
  # ln_f is an nn.LayerNorm whose name no pattern catches: the Trainer
  # excludes it by type, which a dict of names cannot show.
  mask = ta.trainer_weight_decay_mask(names, norm_modules=["ln_f"])
  assert {n for n, d in mask.items() if d} == decayed
  without = ta.trainer_weight_decay_mask(names)
  assert {n for n, d in without.items() if d} == decayed | {"ln_f.weight"}


def test_mask_on_a_flax_tree():
  params = {
    "params": {
      "Dense_0": {"kernel": 1, "bias": 1},
      "LayerNorm_0": {"scale": 1, "bias": 1},
      "ln_f": {"scale": 1},
      "attention": {"query": {"kernel": 1}},
    }
  }
  mask = ta.trainer_weight_decay_mask(params)
  assert jax.tree.leaves(mask) == jax.tree.leaves(
    {
      "params": {
        "Dense_0": {"kernel": True, "bias": False},
        "LayerNorm_0": {"scale": False, "bias": False},
        "ln_f": {"scale": False},
        "attention": {"query": {"kernel": True}},
      }
    }
  )


def test_defaults_are_training_arguments_defaults():
  transformers = require("transformers")
  fields = {
    f.name: f for f in dataclasses.fields(transformers.TrainingArguments)
  }
  for key, value in ta.TRAINING_ARGUMENTS_DEFAULTS.items():
    if key == "warmup_ratio":
      assert key not in fields  # transformers 4's field, read from mappings
      continue
    assert (
      getattr(fields[key].default, "value", fields[key].default) == value
    ), key


CASES = [
  dict(
    optim="adamw_torch",
    learning_rate=1e-3,
    weight_decay=0.05,
    adam_beta1=0.8,
    adam_beta2=0.95,
    adam_epsilon=1e-7,
    warmup_steps=3,
    gradient_accumulation_steps=2,
  ),
  dict(
    learning_rate=2e-3,
    weight_decay=0.01,
    warmup_steps=0.25,
    lr_scheduler_type="cosine",
    max_grad_norm=0.5,
  ),
  dict(
    optim="sgd",
    optim_args="momentum=0.9,nesterov=True",
    learning_rate=0.05,
    weight_decay=0.1,
    lr_scheduler_type="cosine_with_restarts",
    lr_scheduler_kwargs={"num_cycles": 2},
    warmup_steps=2,
  ),
  dict(
    optim="sgd",
    learning_rate=0.1,
    max_grad_norm=0.0,
    lr_scheduler_type="constant_with_warmup",
    warmup_steps=4,
    gradient_accumulation_steps=3,
  ),
  dict(
    optim="adagrad",
    optim_args="lr_decay=0.05,eps=1e-8",
    learning_rate=0.05,
    weight_decay=0.02,
    lr_scheduler_type="polynomial",
    lr_scheduler_kwargs={"power": 2.0, "lr_end": 1e-4},
    warmup_steps=2,
  ),
]


@pytest.mark.parametrize("fields", CASES)
def test_matches_the_trainer(fields, tmp_path):
  torch = require("torch")
  model = _model()
  trainer, args = _trainer(model, tmp_path, **fields)
  named = dict(model.named_parameters())
  shapes = {n: tuple(p.shape) for n, p in named.items()}
  params = {n: jnp.asarray(p.detach().numpy()) for n, p in named.items()}
  steps = args.gradient_accumulation_steps
  grads = _gradients(shapes, NUM_STEPS * steps)
  tx = ta.from_training_arguments(
    args,
    num_training_steps=NUM_STEPS,
    weight_decay_mask=ta.trainer_weight_decay_mask(norm_modules=["ln_f"]),
  )
  # The same optimizer from a plain mapping of the fields.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from_mapping = ta.from_training_arguments(
      dict(fields, output_dir="unused"),
      num_training_steps=NUM_STEPS,
      weight_decay_mask=ta.trainer_weight_decay_mask(norm_modules=["ln_f"]),
    )
  states = [tx.init(params), from_mapping.init(params)]
  ours = [params, params]
  update = [jax.jit(tx.update), jax.jit(from_mapping.update)]
  for step in range(NUM_STEPS):
    micro = grads[step * steps : (step + 1) * steps]
    for n, p in named.items():
      p.grad = torch.tensor(sum(g[n] for g in micro) / steps)
    if args.max_grad_norm:
      torch.nn.utils.clip_grad_norm_(list(named.values()), args.max_grad_norm)
    trainer.optimizer.step()
    trainer.lr_scheduler.step()
    for i in range(2):
      for g in micro:
        u, states[i] = update[i](
          {n: jnp.asarray(v) for n, v in g.items()}, states[i], ours[i]
        )
        ours[i] = optax.apply_updates(ours[i], u)
      for n, p in named.items():
        np.testing.assert_allclose(
          ours[i][n],
          p.detach().numpy(),
          rtol=1e-5,
          atol=1e-6,
          err_msg=f"step {step}, {n}",
        )
      lr = trainer.optimizer.param_groups[0]["lr"]
      if fields.get("optim") == "adagrad":
        lr /= 1 + (step + 1) * 0.05  # torch applies lr_decay inside step()
      assert float(bertadam_optax.get_lr(states[i])) == pytest.approx(
        lr, rel=1e-5
      )


def _losses(n=120):
  rng = np.random.default_rng(0)
  base = np.concatenate(
    [
      np.linspace(2.0, 1.0, 30),
      np.full(30, 1.0),
      np.linspace(1.0, 0.5, 20),
      np.full(40, 0.5),
    ]
  )[:n]
  return (base + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _metric_lrs(transform, losses):
  params = {"w": jnp.zeros(2)}
  state = transform.init(params)
  update = jax.jit(transform.update)
  lrs = []
  for loss in losses:
    _, state = update({"w": jnp.ones(2)}, state, params, value=loss)
    lrs.append(float(bertadam_optax.get_lr(state)))
  return np.asarray(lrs)


@pytest.mark.parametrize(
  "kwargs",
  [
    {},
    {"patience": 3, "factor": 0.5},
    {"patience": 2, "cooldown": 3, "min_lr": 2e-4, "threshold": 0.05},
    {"patience": 4, "threshold_mode": "abs", "threshold": 0.02},
    {"mode": "max", "patience": 2, "factor": 0.3},
  ],
)
def test_reduce_lr_on_plateau_matches_torch(kwargs):
  torch = require("torch")
  optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
  scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **kwargs)
  losses = _losses()
  reference = []
  for loss in losses:
    optimizer.step()
    scheduler.step(float(loss))
    reference.append(optimizer.param_groups[0]["lr"])
  ours = _metric_lrs(ta.reduce_lr_on_plateau(1e-3, **kwargs), losses)
  np.testing.assert_allclose(ours, reference, rtol=1e-6)
  assert len(set(reference)) > 1


@pytest.mark.parametrize(
  "kwargs",
  [
    {"min_lr": 1e-5, "patience": 3},
    {
      "min_lr": 1e-5,
      "max_lr": 5e-3,
      "patience": 2,
      "factor": 0.8,
      "warmup": 2,
      "cooldown": 3,
      "threshold": 1e-3,
    },
    {"min_lr": 5e-4, "patience": 1, "factor": 0.5, "reset_start": 3},
    {"min_lr": 1e-5, "patience": 2, "smooth": True, "window_size": 5},
    {},  # transformers' default min_lr (1e-3) is above the rate
    {"mode": "max", "min_lr": 1e-5, "patience": 2, "threshold_mode": "rel"},
  ],
)
def test_greedy_matches_transformers(kwargs):
  torch = require("torch")
  optimization = require("transformers.optimization")
  optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
  scheduler = optimization.GreedyLR(optimizer, **kwargs)
  losses = _losses()
  reference = []
  for loss in losses:
    optimizer.step()
    scheduler.step(float(loss))
    reference.append(optimizer.param_groups[0]["lr"])
  ours = _metric_lrs(ta.greedy(1e-3, **kwargs), losses)
  np.testing.assert_allclose(ours, reference, rtol=1e-5)
  assert len(set(reference)) > 1


def test_plateau_in_multisteps_matches_the_trainers_pieces(tmp_path):
  torch = require("torch")
  fields = dict(
    learning_rate=1e-2,
    weight_decay=0.01,
    gradient_accumulation_steps=2,
    lr_scheduler_type="reduce_lr_on_plateau",
    lr_scheduler_kwargs={"patience": 1, "factor": 0.5},
    eval_strategy="steps",
  )
  model = _model()
  # Never evaluated: the Trainer only requires an eval set for this scheduler.
  trainer, args = _trainer(model, tmp_path, eval_dataset=[{}], **fields)
  named = dict(model.named_parameters())
  params = {n: jnp.asarray(p.detach().numpy()) for n, p in named.items()}
  grads = _gradients(
    {n: tuple(p.shape) for n, p in named.items()}, 2 * NUM_STEPS
  )
  losses = _losses(2 * NUM_STEPS)
  tx = ta.from_training_arguments(
    args,
    num_training_steps=NUM_STEPS,
    weight_decay_mask=ta.trainer_weight_decay_mask(norm_modules=["ln_f"]),
  )
  state = tx.init(params)
  update = jax.jit(tx.update)
  for step in range(NUM_STEPS):
    for n, p in named.items():
      p.grad = torch.tensor((grads[2 * step][n] + grads[2 * step + 1][n]) / 2)
    torch.nn.utils.clip_grad_norm_(list(named.values()), args.max_grad_norm)
    trainer.optimizer.step()
    # The update reads the loss of its last micro-batch.
    trainer.lr_scheduler.step(float(losses[2 * step + 1]))
    for i in (2 * step, 2 * step + 1):
      u, state = update(
        {n: jnp.asarray(v) for n, v in grads[i].items()},
        state,
        params,
        value=losses[i],
      )
      params = optax.apply_updates(params, u)
    for n, p in named.items():
      np.testing.assert_allclose(
        params[n], p.detach().numpy(), rtol=1e-5, atol=1e-6
      )
    assert float(bertadam_optax.get_lr(state)) == pytest.approx(
      trainer.optimizer.param_groups[0]["lr"], rel=1e-6
    )


@pytest.mark.parametrize(
  "num_training_steps,fields,expected",
  [
    (100, {"warmup_steps": 7}, 7),
    (100, {"warmup_steps": 0.25}, 25),
    (90, {"warmup_steps": 0.05}, 5),
    (90, {"warmup_ratio": 0.05}, 5),
    (90, {"warmup_steps": 3, "warmup_ratio": 0.5}, 3),
  ],
)
def test_warmup_steps_as_transformers_reads_them(
  num_training_steps, fields, expected
):
  assert ta.warmup_steps(fields, num_training_steps) == expected
  if "warmup_ratio" not in fields:
    transformers = require("transformers")
    args = transformers.TrainingArguments(
      output_dir="unused", report_to=[], **fields
    )
    assert args.get_warmup_steps(num_training_steps) == expected


@pytest.mark.parametrize(
  "fields,match",
  [
    ({"optim": "adafactor"}, r"optim='adafactor'.*'adamw_torch'.*'sgd'"),
    ({"optim": "adamw_torh"}, "Did you mean 'adamw_torch'"),
    ({"lr_scheduler_type": "cosin"}, "Did you mean 'cosine'"),
    ({"learning_rate": -1.0}, "learning_rate=-1.0"),
    ({"learning_rat": 1e-3}, "Did you mean 'learning_rate'"),
    (
      {"lr_scheduler_type": "cosine", "lr_scheduler_kwargs": {"cycles": 2}},
      "cycles",
    ),
    (
      {
        "lr_scheduler_type": "reduce_lr_on_plateau",
        "lr_scheduler_kwargs": {"factor": 1.5},
      },
      "factor=1.5",
    ),
    (
      {"lr_scheduler_type": "greedy", "lr_scheduler_kwargs": {"modes": "min"}},
      "modes",
    ),
    ({"optim": "sgd", "optim_args": "dampening=0.1"}, "dampening"),
    ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps=0"),
  ],
)
def test_bad_arguments_raise_value_error(fields, match):
  with pytest.raises(ValueError, match=match):
    ta.from_training_arguments(fields, num_training_steps=10)


@pytest.mark.parametrize(
  "fields,match",
  [
    ({"learning_rate": "auto"}, r"learning_rate='auto'.*TrainingArguments"),
    ({"learning_rate": "1e-3"}, r"learning_rate='1e-3' is a string"),
    ({"learning_rate": np.float32(-1e-3)}, r"learning_rate=.*out of range"),
    ({"weight_decay": float("nan")}, r"weight_decay=nan"),
    ({"max_grad_norm": float("nan")}, r"max_grad_norm=nan"),
    (
      {"gradient_accumulation_steps": "2"},
      r"gradient_accumulation_steps='2' is a string",
    ),
    (
      {"gradient_accumulation_steps": 2.5},
      r"gradient_accumulation_steps=2.5 is not an integer",
    ),
    ({"adam_beta1": True}, r"adam_beta1=True is a boolean"),
    ({"warmup_steps": "10"}, r"warmup_steps='10' is a string"),
    (
      {
        "lr_scheduler_kwargs": {"num_cycles": "auto"},
        "lr_scheduler_type": "cosine",
      },
      r"lr_scheduler_kwargs\.num_cycles='auto'",
    ),
    ({"optim": "sgd", "optim_args": "momentum=fast"}, r"momentum='fast'"),
    ({"optim": 3}, r"optim=3"),
  ],
)
def test_fields_of_the_wrong_kind_are_refused_by_name(fields, match):
  with pytest.raises(ValueError, match=match):
    ta.from_training_arguments(fields, num_training_steps=10)


@pytest.mark.parametrize("args", [None, "training_args.json", 3])
def test_not_training_arguments_is_refused(args):
  with pytest.raises(ValueError, match=r"args=.*TrainingArguments"):
    ta.from_training_arguments(args, num_training_steps=10)


@pytest.mark.parametrize("steps", [0, 100.5, "100", np.int64(-1)])
def test_bad_num_training_steps_is_refused(steps):
  with pytest.raises(ValueError, match="num_training_steps"):
    ta.from_training_arguments({}, num_training_steps=steps)
