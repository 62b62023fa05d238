"""Tests for bertadam_optax/interop/deepspeed_config.py.

End to end against DeepSpeed's own pieces on CPU: the scheduler classes of
``deepspeed.runtime.lr_schedules`` driving a torch optimizer with DeepSpeed's
math (``torch.optim.Adam``/``AdamW``, which the engine picks for
``torch_adam`` and whose math FusedAdam shares; pytorch-pretrained-bert's
``BertAdam`` for ``bias_correction: false``, the math of FusedAdam without
bias correction in AdamW mode; ``torch.optim.Adagrad``), the engine's
clipping (``torch.nn.utils.clip_grad_norm_``, the same rule as DeepSpeed's
``clip_grad_norm_`` on one rank) and its accumulation (the loss divided by
the accumulation steps, so the mean of the micro-batch gradients). Lamb,
whose FusedLamb needs CUDA, against a float64 evaluation of its kernel driven
by DeepSpeed's own schedulers.
"""

from __future__ import annotations

import json
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax import _validation
from bertadam_optax import masks
from bertadam_optax import transforms
from bertadam_optax.interop import deepspeed_config as dc
from bertadam_optax.interop import specs
from bertadam_optax.interop import training_arguments
from tests.references import require

SHAPES = {
  "encoder.dense.weight": (4, 3),
  "encoder.dense.bias": (4,),
  "encoder.LayerNorm.weight": (4,),
}
NUM_STEPS = 12


def _gradients(num_micro, seed=0):
  """Micro-batch gradients whose global norms range around 1."""
  rng = np.random.default_rng(seed)
  grads = []
  for i in range(num_micro):
    scale = 3.0 if i % 3 == 0 else 0.1
    grads.append(
      {
        k: (scale * rng.standard_normal(s)).astype(np.float32)
        for k, s in SHAPES.items()
      }
    )
  return grads


def _initial_params():
  rng = np.random.default_rng(1)
  return {
    k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()
  }


def _torch_run(config, make_optimizer, grads, decay_mask=None):
  """Params and learning rates after every optimizer step, DeepSpeed's way.

  ``make_optimizer(param_groups)`` builds the torch optimizer.
  """
  torch = require("torch")
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  params = {
    k: torch.nn.Parameter(torch.tensor(v)) for k, v in _initial_params().items()
  }
  if decay_mask is None:
    groups = [{"params": list(params.values())}]
  else:
    groups = [
      {"params": [p for k, p in params.items() if decay_mask[k]]},
      {
        "params": [p for k, p in params.items() if not decay_mask[k]],
        "weight_decay": 0.0,
      },
    ]
  optimizer = make_optimizer(groups)
  scheduler = None
  if "scheduler" in config:
    section = config["scheduler"]
    scheduler = getattr(lr_schedules, section["type"])(
      optimizer, **section["params"]
    )
  steps = dc.accumulation_steps(config)
  clip = config.get("gradient_clipping", 0.0)
  history, lrs = [], []
  for start in range(0, len(grads), steps):
    micro = grads[start : start + steps]
    for k, p in params.items():
      p.grad = torch.tensor(sum(g[k] for g in micro) / steps)
    if clip > 0:
      torch.nn.utils.clip_grad_norm_(list(params.values()), clip)
    optimizer.step()
    if scheduler is not None:
      scheduler.step()
    history.append({k: p.detach().numpy().copy() for k, p in params.items()})
    lrs.append(optimizer.param_groups[0]["lr"])
  return history, lrs


def _optax_run(tx, grads, steps, initial=None):
  if initial is None:
    initial = _initial_params()
  params = {k: jnp.asarray(v) for k, v in initial.items()}
  state = tx.init(params)
  update = jax.jit(tx.update)
  history, lrs = [], []
  for i, g in enumerate(grads):
    updates, state = update(
      {k: jnp.asarray(v) for k, v in g.items()}, state, params
    )
    params = optax.apply_updates(params, updates)
    if (i + 1) % steps == 0:
      history.append({k: np.asarray(v) for k, v in params.items()})
      lrs.append(float(bertadam_optax.get_lr(state)))
  return history, lrs


def _compare(config, make_optimizer, decay_mask=None, **kwargs):
  steps = dc.accumulation_steps(config)
  grads = _gradients(NUM_STEPS * steps)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    tx = dc.from_deepspeed_config(config, **kwargs)
  reference, ref_lrs = _torch_run(config, make_optimizer, grads, decay_mask)
  ours, our_lrs = _optax_run(tx, grads, steps)
  assert len(ours) == len(reference) == NUM_STEPS
  for step, (a, b) in enumerate(zip(ours, reference)):
    for k in SHAPES:
      np.testing.assert_allclose(
        a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=f"step {step}, {k}"
      )
  np.testing.assert_allclose(our_lrs, ref_lrs, rtol=1e-6)


SCHEDULERS = [
  {
    "type": "WarmupLR",
    "params": {"warmup_num_steps": 4, "warmup_type": "linear"},
  },
  {
    "type": "WarmupDecayLR",
    "params": {
      "total_num_steps": 10,
      "warmup_max_lr": 2e-3,
      "warmup_num_steps": 3,
    },
  },
  {
    "type": "WarmupCosineLR",
    "params": {"total_num_steps": 9, "warmup_num_steps": 2},
  },
]


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize(
  "name,w_mode", [("AdamW", None), ("Adam", None), ("Adam", False)]
)
def test_torch_adam_matches(name, w_mode, scheduler):
  torch = require("torch")
  engine = require("deepspeed.runtime.engine")
  params = {
    "lr": 1e-3,
    "betas": [0.8, 0.99],
    "eps": 1e-7,
    "weight_decay": 0.05,
    "torch_adam": True,
  }
  if w_mode is not None:
    params["adam_w_mode"] = w_mode
  config = {
    "train_batch_size": 8,
    "train_micro_batch_size_per_gpu": 4,
    "gradient_clipping": 1.0,
    "optimizer": {"type": name, "params": params},
    "scheduler": scheduler,
  }
  effective = name == "AdamW" or w_mode is not False
  torch_params = {
    k: v for k, v in params.items() if k not in ("torch_adam", "adam_w_mode")
  }
  # DeepSpeed's own choice of torch optimizer for this section.
  cls, extra = engine.DeepSpeedEngine.get_optimizer_configuration(
    None, dict(params), effective
  )
  assert cls is (torch.optim.AdamW if effective else torch.optim.Adam)
  _compare(config, lambda groups: cls(groups, **torch_params, **extra))


@pytest.fixture(scope="module")
def deepspeed_cpu_adam():
  """DeepSpeed's own Adam kernel on CPU (built with ninja on first use)."""
  require("deepspeed")
  adam = require("deepspeed.ops.adam")
  return adam.DeepSpeedCPUAdam


@pytest.mark.parametrize("scheduler", [None, SCHEDULERS[1]])
@pytest.mark.parametrize("bias_correction", [True, False])
@pytest.mark.parametrize("adam_w_mode", [True, False])
def test_adam_matches_deepspeed_cpu_adam(
  deepspeed_cpu_adam, scheduler, bias_correction, adam_w_mode
):
  # The same Adam section through DeepSpeed's C++ CPU Adam (its own math, not
  # torch's), with the BERT no-decay groups, clipping engaged on some steps
  # and 2 micro-batches per step.
  params = {
    "lr": 2e-3,
    "betas": [0.9, 0.98],
    "eps": 1e-6,
    "weight_decay": 0.01,
    "bias_correction": bias_correction,
    "adam_w_mode": adam_w_mode,
  }
  config = {
    "train_batch_size": 4,
    "train_micro_batch_size_per_gpu": 2,
    "gradient_clipping": 1.0,
    "optimizer": {"type": "Adam", "params": params},
  }
  if scheduler is not None:
    config["scheduler"] = scheduler
  decay = {k: not ("bias" in k or "LayerNorm" in k) for k in SHAPES}

  def make_optimizer(groups):
    return deepspeed_cpu_adam(
      groups,
      lr=2e-3,
      bias_correction=bias_correction,
      betas=(0.9, 0.98),
      eps=1e-6,
      weight_decay=0.01,
      adamw_mode=adam_w_mode,
    )

  _compare(config, make_optimizer, decay_mask=decay, weight_decay_mask=decay)


@pytest.mark.parametrize(
  "scheduler",
  SCHEDULERS
  + [
    {
      "type": "OneCycle",
      "params": {
        "cycle_min_lr": 1e-4,
        "cycle_max_lr": 1e-3,
        "cycle_first_step_size": 4,
        "cycle_second_step_size": 3,
      },
    }
  ],
)
def test_torch_adamw_default_decay_and_one_cycle_momentum(scheduler):
  torch = require("torch")
  config = {
    "gradient_accumulation_steps": 3,
    "gradient_clipping": 0.5,
    "optimizer": {"type": "AdamW", "params": {"lr": 2e-3, "torch_adam": True}},
    "scheduler": scheduler,
  }
  # torch.optim.AdamW's own default weight decay (0.01) applies.
  _compare(config, lambda groups: torch.optim.AdamW(groups, lr=2e-3))


def _bing_bert_config(scheduler=None):
  """In the shape of DeepSpeedExamples bing_bert/deepspeed_bsz*.json."""
  config = {
    "train_batch_size": 16,
    "train_micro_batch_size_per_gpu": 8,
    "steps_per_print": 1000,
    "prescale_gradients": False,
    "optimizer": {
      "type": "Adam",
      "params": {"lr": 2e-3, "weight_decay": 0.01, "bias_correction": False},
    },
    "gradient_clipping": 1.0,
    "wall_clock_breakdown": False,
    "fp16": {"enabled": True, "loss_scale": 0},
  }
  if scheduler is not None:
    config["scheduler"] = scheduler
  return config


@pytest.mark.parametrize("scheduler", [None] + SCHEDULERS)
def test_bing_bert_config_is_bertadam_with_global_clipping(scheduler):
  bert = require("pytorch_pretrained_bert")
  config = _bing_bert_config(scheduler)
  mask = masks.bert_weight_decay_mask(_initial_params())
  # bing_bert's no-decay groups; BertAdam without its per-tensor clipping or
  # schedule is FusedAdam's bias_correction=False, adam_w_mode math.
  make = lambda groups: bert.BertAdam(
    groups, lr=2e-3, max_grad_norm=-1, e=1e-8, weight_decay=0.01, schedule=None
  )
  _compare(
    config,
    make,
    decay_mask=mask,
    weight_decay_mask=masks.bert_weight_decay_mask,
  )


def test_adagrad_matches_torch():
  torch = require("torch")
  config = {
    "train_micro_batch_size_per_gpu": 2,
    "gradient_clipping": 2.0,
    "optimizer": {
      "type": "adagrad",
      "params": {
        "lr": 0.05,
        "weight_decay": 0.1,
        "initial_accumulator_value": 0.2,
      },
    },
    "scheduler": {
      "type": "LRRangeTest",
      "params": {
        "lr_range_test_min_lr": 0.01,
        "lr_range_test_step_size": 3,
        "lr_range_test_staircase": True,
      },
    },
  }
  _compare(
    config,
    lambda groups: torch.optim.Adagrad(
      groups, lr=0.05, weight_decay=0.1, initial_accumulator_value=0.2
    ),
  )


def test_lion_matches_float64_formula():
  config = {
    "gradient_accumulation_steps": 2,
    "gradient_clipping": 1.0,
    "optimizer": {
      "type": "Lion",
      "params": {"lr": 1e-3, "betas": [0.9, 0.98], "weight_decay": 0.1},
    },
  }
  grads = _gradients(2 * NUM_STEPS)
  ours, _ = _optax_run(dc.from_deepspeed_config(config), grads, 2)
  # FusedLion: p *= 1 - lr wd; p -= lr sign(b1 m + (1 - b1) g);
  # m = b2 m + (1 - b2) g, on the clipped mean gradient.
  p = {k: v.astype(np.float64) for k, v in _initial_params().items()}
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  for step in range(NUM_STEPS):
    g = {k: (grads[2 * step][k] + grads[2 * step + 1][k]) / 2.0 for k in SHAPES}
    norm = np.sqrt(
      sum(np.sum(np.square(v.astype(np.float64))) for v in g.values())
    )
    coef = min(1.0, 1.0 / (norm + 1e-6))
    for k in SHAPES:
      gk = g[k] * coef
      p[k] = p[k] * (1 - 1e-3 * 0.1) - 1e-3 * np.sign(0.9 * m[k] + 0.1 * gk)
      m[k] = 0.98 * m[k] + 0.02 * gk
      np.testing.assert_allclose(ours[step][k], p[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
  "scheduler",
  [
    None,
    {
      "type": "OneCycle",
      "params": {"cycle_min_lr": 1e-4, "cycle_max_lr": 1e-3},
    },
  ],
)
def test_lion_keeps_float32_momentum_for_bfloat16_params(scheduler):
  # Every port keeps float32 moments; optax.scale_by_lion alone would keep
  # the momentum in the parameters' bfloat16.
  config = {"optimizer": {"type": "Lion", "params": {"lr": 1e-3}}}
  if scheduler is not None:
    config["scheduler"] = scheduler
  plan = dc.plan_deepspeed_config(config)
  namespace = {}
  exec(plan.to_source(), namespace)  # the code under test
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  for tx in (plan.build(), namespace["optimizer"]):
    state = tx.init(params)
    moments = [
      x for x in jax.tree.leaves(state) if getattr(x, "shape", ()) == (3, 2)
    ]
    assert moments
    assert all(x.dtype == jnp.float32 for x in moments), moments
    _, state = tx.update(params, state, params)
    moments = [
      x for x in jax.tree.leaves(state) if getattr(x, "shape", ()) == (3, 2)
    ]
    assert all(x.dtype == jnp.float32 for x in moments), moments


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adagrad_matches_deepspeed_cpu_adagrad(weight_decay):
  # DeepSpeed's own C++ Adagrad, which the engine runs with CPU offload.
  adagrad = require("deepspeed.ops.adagrad")
  config = {
    "train_micro_batch_size_per_gpu": 2,
    "gradient_clipping": 2.0,
    "optimizer": {
      "type": "adagrad",
      "params": {"lr": 0.05, "eps": 1e-8, "weight_decay": weight_decay},
    },
  }
  _compare(
    config,
    lambda groups: adagrad.DeepSpeedCPUAdagrad(
      groups, lr=0.05, eps=1e-8, weight_decay=weight_decay
    ),
  )


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_lion_matches_deepspeed_cpu_lion(weight_decay):
  # DeepSpeed's own C++ Lion, which the engine runs with CPU offload.
  lion = require("deepspeed.ops.lion")
  config = {
    "gradient_accumulation_steps": 2,
    "gradient_clipping": 1.0,
    "optimizer": {
      "type": "Lion",
      "params": {
        "lr": 1e-3,
        "betas": [0.9, 0.98],
        "weight_decay": weight_decay,
      },
    },
  }
  _compare(
    config,
    lambda groups: lion.DeepSpeedCPULion(
      groups, lr=1e-3, betas=(0.9, 0.98), weight_decay=weight_decay
    ),
  )


def test_one_bit_adam_runs_the_one_worker_variance_freeze():
  # OnebitAdam on one worker (tests/transforms/test_onebit.py checks the
  # transform against a float64 transcription of OnebitAdam.step): the
  # variance stops after freeze_step, so the run leaves plain BertAdam math.
  def config(freeze_step):
    return {
      "train_batch_size": 4,
      "gradient_clipping": 1.0,
      "optimizer": {
        "type": "OneBitAdam",
        "params": {
          "lr": 1e-3,
          "freeze_step": freeze_step,
          "weight_decay": 0.01,
          "comm_backend_name": "nccl",
        },
      },
    }

  plan = dc.plan_deepspeed_config(config(3))
  assert plan.optimizer == specs.OneBitAdamSpec(
    0.9, 0.999, 1e-8, 0.01, freeze_step=3
  )
  assert any("comm_backend_name" in n for n in plan.notes)
  by_hand = optax.chain(
    transforms.clip_by_global_norm_torch(1.0),
    transforms.scale_by_onebit_adam(freeze_step=3, weight_decay=0.01),
    transforms.scale_by_learning_rate(1e-3),
  )
  grads = _gradients(8)
  ours, _ = _optax_run(plan.build(), grads, 1)
  want, _ = _optax_run(by_hand, grads, 1)
  never, _ = _optax_run(dc.from_deepspeed_config(config(10**6)), grads, 1)
  for step, (a, b, c) in enumerate(zip(ours, want, never, strict=True)):
    for k in SHAPES:
      np.testing.assert_array_equal(a[k], b[k])
      if step < 3:  # the same until the freeze
        np.testing.assert_array_equal(a[k], c[k])
  assert max(np.max(np.abs(ours[-1][k] - never[-1][k])) for k in SHAPES) > 0


def test_zero_one_adam_and_one_bit_lamb_specs_and_sources():
  zero_one = dc.plan_deepspeed_config(
    {
      "train_batch_size": 2,
      "optimizer": {
        "type": "ZeroOneAdam",
        "params": {"lr": 4e-4, "var_freeze_step": 5, "local_step_scaler": 3},
      },
      "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 4}},
    }
  )
  assert zero_one.optimizer == specs.ZeroOneAdamSpec(
    var_freeze_step=5, local_step_scaler=3
  )
  source = zero_one.to_source()
  assert "learning_rate = schedules.deepspeed_schedule(" in source
  assert "transforms.scale_by_zero_one_adam(learning_rate" in source
  namespace = {}
  exec(source, namespace)
  grads = _gradients(10)
  a, _ = _optax_run(zero_one.build(), grads, 1)
  b, _ = _optax_run(namespace["optimizer"], grads, 1)
  for x, y in zip(a, b, strict=True):
    for k in SHAPES:
      np.testing.assert_array_equal(x[k], y[k])
  lamb = dc.plan_deepspeed_config(
    {
      "optimizer": {
        "type": "OneBitLamb",
        "params": {
          "freeze_step": 7,
          "eps_inside_sqrt": True,
          "coeff_beta": 0.8,
        },
      }
    }
  )
  assert lamb.optimizer == specs.OneBitLambSpec(freeze_step=7, coeff_beta=0.8)
  assert any("eps_inside_sqrt" in n and "no effect" in n for n in lamb.notes)
  with pytest.raises(ValueError, match="OneCycle"):
    dc.plan_deepspeed_config(
      {
        "optimizer": {"type": "OneBitAdam"},
        "scheduler": {
          "type": "OneCycle",
          "params": {
            "cycle_min_lr": 1e-4,
            "cycle_max_lr": 1e-3,
            "cycle_first_step_size": 4,
          },
        },
      }
    )
  with pytest.raises(ValueError, match="var_update_scaler"):
    dc.plan_deepspeed_config(
      {"optimizer": {"type": "ZeroOneAdam", "params": {"var_update_scaler": 0}}}
    )


def test_total_steps_fills_the_schedulers_total_and_reads_a_file(tmp_path):
  path = tmp_path / "ds_config.json"
  path.write_text(
    json.dumps(
      {
        "train_batch_size": 2,
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3}},
        "scheduler": {
          "type": "WarmupDecayLR",
          "params": {"warmup_num_steps": 2},
        },
      }
    )
  )
  with pytest.raises(ValueError, match="total_num_steps"):
    dc.from_deepspeed_config(path)
  tx = dc.from_deepspeed_config(str(path), total_steps=6)
  expected = bertadam_optax.schedules.warmup_decay_lr(6, warmup_num_steps=2)
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  for k in range(8):
    assert float(bertadam_optax.get_lr(state)) == pytest.approx(
      float(expected(k)), rel=1e-6
    )
    _, state = tx.update({"w": jnp.ones(2)}, state, params)


def test_ignored_keys_named_in_one_warning():
  with pytest.warns(UserWarning) as record:
    dc.from_deepspeed_config(_bing_bert_config())
  assert len(record) == 1
  message = str(record[0].message)
  for key in (
    "fp16",
    "steps_per_print",
    "wall_clock_breakdown",
    "prescale_gradients",
  ):
    assert repr(key) in message


@pytest.mark.parametrize(
  "batch,micro,steps,dp,expected",
  [
    (32, 4, None, 2, 4),
    (32, None, 2, 4, 2),
    (None, 4, 3, 2, 3),
    (8, None, None, 1, 1),
    (None, 8, None, 4, 1),
    (12, 3, 4, 1, 4),
  ],
)
def test_accumulation_steps_as_deepspeed_derives_them(
  batch, micro, steps, dp, expected
):
  config = {
    "train_batch_size": batch,
    "train_micro_batch_size_per_gpu": micro,
    "gradient_accumulation_steps": steps,
  }
  assert dc.accumulation_steps(config, dp) == expected


@pytest.mark.parametrize(
  "config,match",
  [
    (
      {
        "train_batch_size": 32,
        "train_micro_batch_size_per_gpu": 4,
        "gradient_accumulation_steps": 3,
      },
      "inconsistent batch sizes",
    ),
    (
      {"train_batch_size": 30, "train_micro_batch_size_per_gpu": 4},
      "inconsistent batch sizes",
    ),
    ({"optimizer": {"type": "Adamw"}}, None),
    ({"optimizer": {"type": "SGD"}}, r"optimizer\.type='SGD'.*expected one of"),
    (
      {"optimizer": {"type": "Adam", "params": {"lr": -1e-3}}},
      r"optimizer\.params\.lr=-0.001",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"max_grad_norm": 1.0}}},
      "gradient_clipping",
    ),
    ({"optimizer": {"type": "Adam", "params": {"betas": [0.9]}}}, "betas"),
    (
      {"optimizer": {"type": "Adam", "params": {"weight_decy": 0.1}}},
      "Did you mean 'weight_decay'",
    ),
    (
      {
        "optimizer": {
          "type": "Adam",
          "params": {"torch_adam": True, "bias_correction": False},
        }
      },
      "bias_correction",
    ),
    (
      {
        "optimizer": {"type": "Adam"},
        "scheduler": {"type": "WarmupDecay", "params": {}},
      },
      "Did you mean 'WarmupDecayLR'",
    ),
    (
      {
        "optimizer": {"type": "Adam"},
        "scheduler": {"type": "OneCycle", "params": {"cycle_max_lr": 1e-3}},
      },
      "requires 'cycle_min_lr'",
    ),
    (
      {"optimizer": {"type": "Adam"}, "gradient_cliping": 1.0},
      "Did you mean 'gradient_clipping'",
    ),
    ({"scheduler": {"type": "WarmupLR", "params": {}}}, "'optimizer'"),
  ],
)
def test_bad_configs_raise_value_error(config, match):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if match is None:
      dc.from_deepspeed_config(config)  # type names match in any case
      return
    with pytest.raises(ValueError, match=match):
      dc.from_deepspeed_config(config)


def test_bad_file_raises_value_error(tmp_path):
  path = tmp_path / "broken.json"
  path.write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    dc.from_deepspeed_config(path)
  with pytest.raises(ValueError, match="cannot be read"):
    dc.from_deepspeed_config(tmp_path / "missing.json")


def test_readme_snippet(capsys):
  import jax
  import jax.numpy as jnp

  import bertadam_optax
  from bertadam_optax.interop import from_deepspeed_config

  ds_config = {
    "train_batch_size": 32,
    "train_micro_batch_size_per_gpu": 16,
    "gradient_clipping": 1.0,
    "optimizer": {
      "type": "Adam",
      "params": {"lr": 2e-3, "weight_decay": 0.01, "bias_correction": False},
    },
    "scheduler": {
      "type": "WarmupDecayLR",
      "params": {"warmup_num_steps": 10, "warmup_max_lr": 2e-3},
    },
  }
  optimizer = from_deepspeed_config(
    ds_config,
    total_steps=1000,
    weight_decay_mask=bertadam_optax.bert_weight_decay_mask,
  )
  params = {"dense": {"kernel": jnp.ones((4, 4)), "bias": jnp.zeros(4)}}
  opt_state = optimizer.init(params)
  update = jax.jit(optimizer.update)
  for _ in range(2 * 15):  # 15 optimizer steps of 2 micro-batches
    grads = jax.tree.map(jnp.ones_like, params)
    updates, opt_state = update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
  print(bertadam_optax.get_lr(opt_state))  # the rate of step 15

  printed = float(capsys.readouterr().out)
  reference = _torch_run_schedule_only(ds_config, 1000, 16)
  assert printed == pytest.approx(reference[15], rel=1e-6)


def _torch_run_schedule_only(config, total_steps, num_steps):
  torch = require("torch")
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-3)
  params = dict(config["scheduler"]["params"], total_num_steps=total_steps)
  scheduler = getattr(lr_schedules, config["scheduler"]["type"])(
    optimizer, **params
  )
  lrs = []
  for _ in range(num_steps):
    lrs.append(optimizer.param_groups[0]["lr"])
    optimizer.step()
    scheduler.step()
  return lrs


# Lamb -------------------------------------------------------------------------
#
# FusedLamb runs only on CUDA, so the reference below is an independent
# float64 NumPy evaluation of its kernel,
# deepspeed/ops/csrc/lamb/fused_lamb_cuda_kernel.cu (DeepSpeed 0.19.8):
# * fused_lamb_cuda, lines 363-370: step_size = lr sqrt(1 - b2^t) / (1 - b1^t)
#   with bias_correction, else lr; lr and the betas arrive as C floats.
# * lamb_cuda_kernel_part1, lines 223-235: g / grad_scale; m and v; denom
#   sqrt(v + eps) (eps_inside_sqrt, mode 0) or sqrt(v) + eps (mode 1);
#   update = m / denom + decay w; the squared norms of w and of the update.
# * lamb_cuda_kernel_part3, lines 288-297: coeff = ||w|| / ||update||, bounded
#   by max_coeff then by min_coeff, 1 when either norm is 0; line 315:
#   w -= step_size coeff update. All per parameter tensor.
# grad_scale is what the engine's fp16 wrapper passes to FusedLamb.step
# (deepspeed/runtime/fp16/unfused_optimizer.py, step_fused_lamb and
# unscale_and_clip_grads): the loss scale (1 here) times
# (norm / scale + 1e-6) / gradient_clipping where that exceeds 1.


def _fused_lamb_reference(
  initial,
  grads,
  lrs,
  betas,
  *,
  eps=1e-8,
  eps_inside_sqrt=False,
  bias_correction=True,
  weight_decay=0.0,
  max_coeff=10.0,
  min_coeff=0.01,
  clip=0.0,
  decay_mask=None,
):
  """Params after every step and the trust ratios applied, per step and leaf.

  ``lrs`` and ``betas`` hold each step's learning rate and (beta1, beta2).
  """
  as_c_float = lambda x: float(np.float32(x))
  w = {k: np.asarray(v, np.float64) for k, v in initial.items()}
  m = {k: np.zeros_like(v) for k, v in w.items()}
  v = {k: np.zeros_like(x) for k, x in w.items()}
  history, coeffs = [], []
  for t, (g, lr, (b1, b2)) in enumerate(zip(grads, lrs, betas), start=1):
    lr, b1, b2 = as_c_float(lr), as_c_float(b1), as_c_float(b2)
    g = {k: np.asarray(x, np.float64) for k, x in g.items()}
    grad_scale = 1.0
    if clip > 0:
      norm = np.sqrt(sum(np.sum(x * x) for x in g.values()))
      if (norm + 1e-6) / clip > 1:
        grad_scale = (norm + 1e-6) / clip
    step_size = lr
    if bias_correction:
      step_size = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
    applied = {}
    for k in w:
      decay = weight_decay if decay_mask is None or decay_mask[k] else 0.0
      scaled = g[k] / grad_scale
      m[k] = b1 * m[k] + (1 - b1) * scaled
      v[k] = b2 * v[k] + (1 - b2) * scaled * scaled
      denom = np.sqrt(v[k] + eps) if eps_inside_sqrt else np.sqrt(v[k]) + eps
      update = m[k] / denom + decay * w[k]
      w_norm = np.sqrt(np.sum(w[k] * w[k]))
      u_norm = np.sqrt(np.sum(update * update))
      coeff = 1.0
      if w_norm != 0 and u_norm != 0:
        coeff = w_norm / u_norm
        if coeff > max_coeff:
          coeff = max_coeff
        if coeff < min_coeff:
          coeff = min_coeff
      applied[k] = coeff
      w[k] = w[k] - step_size * coeff * update
    history.append({k: x.copy() for k, x in w.items()})
    coeffs.append(applied)
  return history, coeffs


# Leaves whose trust ratio sits above the bounds, inside, below, and at the
# zero-norm cases: zero weights (ratio 0, yet coefficient 1), zero weights and
# gradients (0 / 0), and an update of zero (no gradient, no decay).
LAMB_SCALES = {
  "big": 1e3,
  "mid": 1.0,
  "small": 1e-5,
  "zero_w": 0.0,
  "zero_both": 0.0,
  "zero_u": 1.0,
}
LAMB_NO_GRAD = ("zero_both", "zero_u")
LAMB_STEPS = 6


def _lamb_data(seed=2):
  rng = np.random.default_rng(seed)
  initial = {
    k: (s * rng.standard_normal((3, 4))).astype(np.float32)
    for k, s in LAMB_SCALES.items()
  }
  grads = [
    {
      k: (
        np.zeros((3, 4)) if k in LAMB_NO_GRAD else rng.standard_normal((3, 4))
      ).astype(np.float32)
      for k in LAMB_SCALES
    }
    for _ in range(LAMB_STEPS)
  ]
  return initial, grads


def _assert_lamb_steps_match(initial, deltas, params, reference):
  """Each step's update, and the params after it, equal the reference's."""
  previous = {k: np.asarray(x, np.float64) for k, x in initial.items()}
  for step, (delta, ours, ref) in enumerate(zip(deltas, params, reference)):
    for k in ref:
      ref_delta = ref[k] - previous[k]
      np.testing.assert_allclose(
        delta[k],
        ref_delta,
        rtol=1e-5,
        atol=1e-6 * np.abs(ref_delta).max() + 1e-30,
        err_msg=f"update of step {step}, {k}",
      )
      np.testing.assert_allclose(
        ours[k], ref[k], rtol=1e-5, atol=1e-7, err_msg=f"step {step}, {k}"
      )
    previous = ref


@pytest.mark.parametrize(
  "bias_correction,weight_decay,eps,eps_inside_sqrt,max_coeff,min_coeff",
  [
    (True, 0.0, 1e-8, False, 10.0, 0.01),
    (True, 0.01, 1e-8, False, 10.0, 0.01),
    (False, 0.01, 1e-8, False, 10.0, 0.01),
    (False, 0.0, 1e-4, True, 0.3, 0.05),
    (True, 0.01, 1e-4, True, 0.3, 0.05),
    (True, 0.01, 1e-4, False, 0.05, 0.3),  # crossed: min_coeff wins
  ],
)
def test_scale_by_fused_lamb_matches_the_kernel_formula(
  bias_correction, weight_decay, eps, eps_inside_sqrt, max_coeff, min_coeff
):
  initial, grads = _lamb_data()
  lr, betas = 2e-3, (0.8, 0.99)
  no_decay = {"mid": False, "zero_u": False}
  mask = {k: no_decay.get(k, True) for k in LAMB_SCALES}
  hyper = dict(
    eps=eps,
    eps_inside_sqrt=eps_inside_sqrt,
    bias_correction=bias_correction,
    weight_decay=weight_decay,
    max_coeff=max_coeff,
    min_coeff=min_coeff,
  )
  tx = optax.chain(
    dc.scale_by_fused_lamb(*betas, weight_decay_mask=mask, **hyper),
    transforms.scale_by_learning_rate(lr),
  )
  reference, coeffs = _fused_lamb_reference(
    initial,
    grads,
    [lr] * LAMB_STEPS,
    [betas] * LAMB_STEPS,
    decay_mask=mask,
    **hyper,
  )

  params = {k: jnp.asarray(v) for k, v in initial.items()}
  state = tx.init(params)
  chex.clear_trace_counter()
  update = jax.jit(chex.assert_max_traces(tx.update, n=1))
  deltas, history = [], []
  for g in grads:
    updates, state = update(
      {k: jnp.asarray(x) for k, x in g.items()}, state, params
    )
    params = optax.apply_updates(params, updates)
    deltas.append({k: np.asarray(u) for k, u in updates.items()})
    history.append({k: np.asarray(p) for k, p in params.items()})
  _assert_lamb_steps_match(initial, deltas, history, reference)

  # The data reaches both bounds, the inside and the zero-norm cases.
  applied = {k: {c[k] for c in coeffs} for k in LAMB_SCALES}
  if min_coeff < max_coeff:
    assert applied["big"] == {max_coeff}
    assert any(min_coeff < c < max_coeff for c in applied["mid"])
  else:
    assert applied["big"] == {min_coeff}
  assert applied["small"] == {min_coeff}
  assert coeffs[0]["zero_w"] == 1.0 and coeffs[1]["zero_w"] == min_coeff
  assert applied["zero_both"] == applied["zero_u"] == {1.0}
  np.testing.assert_array_equal(history[-1]["zero_both"], 0.0)
  np.testing.assert_array_equal(history[-1]["zero_u"], initial["zero_u"])


def _deepspeed_lrs_and_betas(config, num_steps):
  """The lr and betas each optimizer step reads from its param group.

  DeepSpeed's scheduler class drives a torch Adam whose group, like
  FusedLamb's, holds ``lr`` and ``betas`` (OneCycle cycles the betas only of
  optimizers that have them).
  """
  torch = require("torch")
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  params = config["optimizer"]["params"]
  optimizer = torch.optim.Adam(
    [torch.nn.Parameter(torch.zeros(1))],
    lr=params["lr"],
    betas=tuple(params.get("betas", (0.9, 0.999))),
  )
  section = config.get("scheduler")
  scheduler = (
    None
    if section is None
    else getattr(lr_schedules, section["type"])(optimizer, **section["params"])
  )
  lrs, betas = [], []
  for _ in range(num_steps):
    lrs.append(optimizer.param_groups[0]["lr"])
    betas.append(tuple(optimizer.param_groups[0]["betas"]))
    optimizer.step()
    if scheduler is not None:
      scheduler.step()
  return lrs, betas


def _bing_bert_lamb_config(scheduler=None, **params):
  """DeepSpeedExamples bing_bert's deepspeed_bsz64k_lamb_config_seq128.json,
  with small batch sizes."""
  config = {
    "train_batch_size": 8,
    "train_micro_batch_size_per_gpu": 4,
    "optimizer": {
      "type": "Lamb",
      "params": dict(
        {
          "lr": 11e-3,
          "weight_decay": 0.01,
          "bias_correction": False,
          "max_coeff": 0.3,
          "min_coeff": 0.01,
        },
        **params,
      ),
    },
    "gradient_clipping": 1.0,
  }
  if scheduler is not None:
    config["scheduler"] = scheduler
  return config


def _lamb_initial_params():
  """Leaves whose trust ratios fall above, inside and below [0.01, 0.3]."""
  scales = {
    "encoder.dense.weight": 10.0,
    "encoder.dense.bias": 0.3,
    "encoder.LayerNorm.weight": 1e-3,
  }
  return {k: scales[k] * v for k, v in _initial_params().items()}


@pytest.mark.parametrize(
  "scheduler,params",
  [
    (None, {}),
    (
      SCHEDULERS[1],
      {"bias_correction": True, "betas": [0.8, 0.99], "eps": 1e-6},
    ),
    (
      {
        "type": "OneCycle",
        "params": {
          "cycle_min_lr": 1e-3,
          "cycle_max_lr": 1e-2,
          "cycle_first_step_size": 4,
          "cycle_second_step_size": 3,
        },
      },
      {"bias_correction": True, "eps_inside_sqrt": True},
    ),
  ],
)
def test_lamb_config_matches_the_kernel_formula(scheduler, params):
  config = _bing_bert_lamb_config(scheduler, **params)
  tx = dc.from_deepspeed_config(
    config, weight_decay_mask=masks.bert_weight_decay_mask
  )
  initial = _lamb_initial_params()
  grads = _gradients(2 * NUM_STEPS)
  means = [
    {
      k: (grads[2 * i][k].astype(np.float64) + grads[2 * i + 1][k]) / 2
      for k in SHAPES
    }
    for i in range(NUM_STEPS)
  ]
  lrs, betas = _deepspeed_lrs_and_betas(config, NUM_STEPS)
  section = config["optimizer"]["params"]
  reference, coeffs = _fused_lamb_reference(
    initial,
    means,
    lrs,
    betas,
    eps=section.get("eps", 1e-8),
    eps_inside_sqrt=section.get("eps_inside_sqrt", False),
    bias_correction=section["bias_correction"],
    weight_decay=0.01,
    max_coeff=0.3,
    min_coeff=0.01,
    clip=1.0,
    decay_mask=masks.bert_weight_decay_mask(initial),
  )

  ours, our_lrs = _optax_run(tx, grads, 2, initial)
  for step, (a, b) in enumerate(zip(ours, reference)):
    for k in SHAPES:
      np.testing.assert_allclose(
        a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=f"step {step}, {k}"
      )
  np.testing.assert_allclose(our_lrs[:-1], lrs[1:], rtol=1e-6)
  applied = {c for step in coeffs for c in step.values()}
  assert {0.3, 0.01} <= applied and any(0.01 < c < 0.3 for c in applied)
  # the clip engages on some steps and not on others
  norms = [np.sqrt(sum(np.sum(g[k] ** 2) for k in SHAPES)) for g in means]
  assert min(norms) < 1.0 < max(norms)


def test_one_bit_lamb_warmup_stage_is_fused_lamb_after_a_no_op_step():
  # The optimizer section of DeepSpeedExamples bing_bert's
  # deepspeed_bsz64k_onebitlamb_config_seq128_nccl.json. Before freeze_step
  # OnebitLamb is FusedLamb's math without bias correction (it reads neither
  # bias_correction nor eps_inside_sqrt), after a first call that only
  # allocates buffers.
  section = {
    "type": "OneBitLamb",
    "params": {
      "lr": 11e-3,
      "weight_decay": 0.01,
      "bias_correction": True,
      "max_coeff": 0.3,
      "min_coeff": 0.01,
      "freeze_step": 1000,
      "cuda_aware": False,
      "comm_backend_name": "nccl",
      "coeff_beta": 0.9,
      "factor_max": 4.0,
      "factor_min": 0.5,
      "factor_threshold": 0.1,
    },
  }
  tx = dc.from_deepspeed_config(
    {"train_batch_size": 4, "gradient_clipping": 1.0, "optimizer": section}
  )
  grads = _gradients(NUM_STEPS)
  ours, _ = _optax_run(tx, grads, 1, _lamb_initial_params())
  for k, v in _lamb_initial_params().items():
    np.testing.assert_array_equal(ours[0][k], v)
  reference, _ = _fused_lamb_reference(
    _lamb_initial_params(),
    grads[1:],
    [11e-3] * (NUM_STEPS - 1),
    [(0.9, 0.999)] * (NUM_STEPS - 1),
    bias_correction=False,
    weight_decay=0.01,
    max_coeff=0.3,
    min_coeff=0.01,
    clip=1.0,
  )
  for step, (a, b) in enumerate(zip(ours[1:], reference, strict=True)):
    for k in SHAPES:
      np.testing.assert_allclose(
        a[k], b[k], rtol=1e-5, atol=1e-7, err_msg=f"step {step + 1}, {k}"
      )


@pytest.mark.parametrize(
  "section,match",
  [
    ({"type": "Lamp"}, "Did you mean 'Lamb'"),
    ({"type": "Lamb", "params": {"max_grad_norm": 1.0}}, "gradient_clipping"),
    (
      {"type": "OneBitLamb", "params": {"max_grad_norm": 1.0}},
      "gradient_clipping",
    ),
    (
      {"type": "Lamb", "params": {"min_coeff": -0.1}},
      r"optimizer\.params\.min_coeff=-0.1 is out of range",
    ),
    (
      {"type": "Lamb", "params": {"max_coeff": -1}},
      r"optimizer\.params\.max_coeff=-1 is out of range",
    ),
    ({"type": "Lamb", "params": {"max_coef": 1.0}}, "Did you mean 'max_coeff'"),
    (
      {"type": "Lamb", "params": {"amsgrad": True}},
      r"optimizer\.params\.amsgrad",
    ),
    (
      {"type": "Lamb", "params": {"eps_inside_sqrt": 1}},
      r"optimizer\.params\.eps_inside_sqrt=1 is not a boolean",
    ),
    (
      {"type": "Lamb", "params": {"betas": [0.9, 1.0]}},
      r"optimizer\.params\.betas\[1\]=1.0",
    ),
    (
      {"type": "OneBitLamb", "params": {"eps_inside_sqrt": 1}},
      r"optimizer\.params\.eps_inside_sqrt=1 is not a boolean",
    ),
  ],
)
def test_bad_lamb_sections_raise_value_error(section, match):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(ValueError, match=match):
      dc.from_deepspeed_config({"optimizer": section})


@pytest.mark.parametrize(
  "kwargs,match",
  [
    ({"b1": 1.0}, r"b1=1.0 is out of range"),
    ({"b2": -0.1}, r"b2=-0.1 is out of range"),
    ({"eps": -1e-8}, r"eps=-1e-08 is out of range"),
    ({"weight_decay": -0.01}, r"weight_decay=-0.01 is out of range"),
    ({"min_coeff": -1.0}, r"min_coeff=-1.0 is out of range"),
  ],
)
def test_scale_by_fused_lamb_rejects_bad_hyperparameters(kwargs, match):
  with pytest.raises(ValueError, match=match):
    dc.scale_by_fused_lamb(**kwargs)


def test_scale_by_fused_lamb_needs_params():
  tx = dc.scale_by_fused_lamb()
  grads = {"w": jnp.ones(3)}
  with pytest.raises(ValueError, match="params"):
    tx.update(grads, tx.init(grads))


@pytest.mark.parametrize("x64", [False, True])
def test_lamb_config_has_no_float64(x64):
  config = _bing_bert_lamb_config(
    {
      "type": "OneCycle",
      "params": {
        "cycle_min_lr": 1e-3,
        "cycle_max_lr": 1e-2,
        "cycle_first_step_size": 4,
      },
    },
    bias_correction=True,
  )
  params = {k: jnp.asarray(v) for k, v in _lamb_initial_params().items()}
  with jax.enable_x64(x64):
    tx = dc.from_deepspeed_config(config)
    state = tx.init(params)
    jaxpr = jax.make_jaxpr(
      lambda g, s, p: (tx.update(g, s, p), bertadam_optax.get_lr(s))
    )(params, state, params)
  assert "f64" not in str(jaxpr)


def test_lamb_readme_snippet(capsys):
  import jax
  import jax.numpy as jnp
  import optax

  import bertadam_optax
  from bertadam_optax.interop import from_deepspeed_config

  # DeepSpeedExamples bing_bert's LAMB config (batch sizes scaled down).
  ds_config = {
    "train_batch_size": 64,
    "train_micro_batch_size_per_gpu": 32,
    "gradient_clipping": 1.0,
    "optimizer": {
      "type": "Lamb",
      "params": {
        "lr": 11e-3,
        "weight_decay": 0.01,
        "bias_correction": False,
        "max_coeff": 0.3,
        "min_coeff": 0.01,
      },
    },
  }
  optimizer = from_deepspeed_config(
    ds_config, weight_decay_mask=bertadam_optax.bert_weight_decay_mask
  )
  params = {"dense": {"kernel": jnp.full((4, 4), 0.5), "bias": jnp.zeros(4)}}
  opt_state = optimizer.init(params)
  update = jax.jit(optimizer.update)
  for _ in range(2 * 3):  # 3 optimizer steps of 2 micro-batches
    grads = jax.tree.map(jnp.ones_like, params)
    updates, opt_state = update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
  print(params["dense"]["kernel"][0, 0], params["dense"]["bias"][0])

  printed = [float(x) for x in capsys.readouterr().out.split()]
  initial = {"kernel": np.full((4, 4), 0.5), "bias": np.zeros(4)}
  ones = {k: np.ones_like(v) for k, v in initial.items()}
  reference, _ = _fused_lamb_reference(
    initial,
    [ones] * 3,
    [11e-3] * 3,
    [(0.9, 0.999)] * 3,
    bias_correction=False,
    weight_decay=0.01,
    max_coeff=0.3,
    min_coeff=0.01,
    clip=1.0,
    decay_mask={"kernel": True, "bias": False},
  )
  np.testing.assert_allclose(
    printed,
    [reference[-1]["kernel"][0, 0], reference[-1]["bias"][0]],
    rtol=1e-5,
  )


@pytest.mark.parametrize(
  "config,match",
  [
    (
      {"optimizer": {"type": "Adam", "params": {"lr": "auto"}}},
      r"keys optimizer\.params\.lr are 'auto'.*TrainingArguments",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"betas": "auto"}}},
      r"keys optimizer\.params\.betas are 'auto'.*TrainingArguments",
    ),
    (
      {"gradient_clipping": "auto", "optimizer": {"type": "Adam"}},
      r"keys gradient_clipping are 'auto'.*TrainingArguments",
    ),
    (
      {"train_batch_size": "auto", "optimizer": {"type": "Adam"}},
      r"keys train_batch_size are 'auto'.*TrainingArguments",
    ),
    (
      {
        "optimizer": {"type": "Adam"},
        "scheduler": {"type": "WarmupLR", "params": {"warmup_max_lr": "auto"}},
      },
      r"keys scheduler\.params\.warmup_max_lr are 'auto'.*TrainingArguments",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"adam_w_mode": "false"}}},
      r"optimizer\.params\.adam_w_mode='false' is not a boolean",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"torch_adam": "true"}}},
      r"optimizer\.params\.torch_adam='true' is not a boolean",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"lr": "1e-3"}}},
      r"optimizer\.params\.lr='1e-3' is a string; numbers must be JSON",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"betas": ["0.9", 0.999]}}},
      r"optimizer\.params\.betas\[0\]='0.9' is a string",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"eps": float("nan")}}},
      r"optimizer\.params\.eps=nan",
    ),
    (
      {"optimizer": {"type": "Adam", "params": {"weight_decay": True}}},
      r"optimizer\.params\.weight_decay=True is a boolean",
    ),
    (
      {"train_batch_size": 8.5, "optimizer": {"type": "Adam"}},
      r"train_batch_size=8.5 is not an integer",
    ),
    (
      {"optimizer": {"type": "Adam"}, "scheduler": "WarmupLR"},
      r"scheduler='WarmupLR'",
    ),
    (
      {"optimizer": {"type": "Adam", "params": "x"}},
      r"optimizer\.params='x' is not an object",
    ),
    ({"optimizer": {"type": 3}}, r"optimizer\.type=3"),
  ],
)
def test_config_values_of_the_wrong_kind_name_their_key_path(config, match):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(ValueError, match=match):
      dc.from_deepspeed_config(config)


def test_load_config_refuses_deep_nesting_and_binary_files(tmp_path):
  deep = tmp_path / "deep.json"
  deep.write_text("[" * 100_000 + "]" * 100_000)
  with pytest.raises(ValueError, match=r"deep\.json.*too deeply"):
    dc.load_config(deep)
  binary = tmp_path / "binary.json"
  binary.write_bytes(b"\xff\xfe\x00\x01garbage")
  with pytest.raises(ValueError, match=r"binary\.json.*UTF-8"):
    dc.load_config(binary)


def test_old_import_paths_still_work():
  from bertadam_optax import interop  # pylint: disable=import-outside-toplevel

  assert dc.scale_by_fused_lamb is transforms.scale_by_fused_lamb
  assert dc.LAMB_STATIC_ARGS == transforms.FUSED_LAMB_STATIC_ARGS
  assert interop.reduce_lr_on_plateau is transforms.reduce_lr_on_plateau
  assert interop.greedy is transforms.greedy
  assert interop.trainer_weight_decay_mask is masks.trainer_weight_decay_mask


def _plan_ds(learning_rate):
  return dc.plan_deepspeed_config(
    {"optimizer": {"type": "Adam", "params": {"lr": 1e-3}}},
    learning_rate=learning_rate,
  )


def _plan_ta(learning_rate):
  return training_arguments.plan_training_arguments(
    {"learning_rate": 1e-3}, num_training_steps=10, learning_rate=learning_rate
  )


@pytest.mark.parametrize("plan", [_plan_ds, _plan_ta])
def test_learning_rate_override_is_bounded_at_plan_time(plan):
  # Refused by the planner itself, before any build (issue 12's 1e30).
  for value in (1e30, np.float32(1e30), -1.0, float("inf")):
    with pytest.raises(ValueError, match=r"learning_rate=.*\[0\.0, 1000\.0\]"):
      plan(value)
  # The bound is inclusive, and a schedule passes through to the plan.
  assert plan(_validation.MAX_RATE).learning_rate == _validation.MAX_RATE
  schedule = optax.constant_schedule(1e-4)
  assert plan(schedule).learning_rate is schedule


def test_plan_refuses_an_absurd_learning_rate():
  with pytest.raises(ValueError, match=r"learning_rate=1e\+30"):
    specs.Plan(source="by hand", optimizer=specs.AdamSpec(), learning_rate=1e30)
