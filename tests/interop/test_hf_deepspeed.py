"""Tests of ``bertadam_optax.interop.hf_deepspeed`` against transformers'
own ``HfTrainerDeepSpeedConfig`` (its ``trainer_config_process`` and
``trainer_config_finalize`` run on the same ds_config and arguments)."""

from __future__ import annotations

import copy
import json
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax.interop import from_training_arguments
from bertadam_optax.interop import hf_deepspeed
from bertadam_optax.interop import plan_training_arguments
from bertadam_optax.interop import specs
from tests.references import require

HF = os.path.join(os.path.dirname(__file__), "fixtures", "hf")


def _read(name):
  with open(os.path.join(HF, name), encoding="utf-8") as f:
    return json.load(f)


def _transformers_fill(
  ds, fields, num_training_steps, world_size=1, hidden_size=64
):
  """The ds_config after the Trainer's two fill stages, by transformers."""
  deepspeed_integration = require("transformers.integrations.deepspeed")
  transformers = require("transformers")
  # use_cpu: this machine has no GPU, which bf16 would otherwise require; the
  # fill does not read it.
  args = transformers.TrainingArguments(
    output_dir="unused", use_cpu=True, **fields
  )
  cls = type(args)
  if world_size != 1:
    # TrainingArguments.world_size comes from the launched processes; the
    # fill reads only the attribute, so give it on a plain object.
    plain = types.SimpleNamespace(
      **{
        k: getattr(args, k)
        for k in hf_deepspeed.HF_DEEPSPEED_FIELDS
        if hasattr(args, k)
      }
    )
    plain.world_size = world_size
    plain.get_warmup_steps = lambda n: cls.get_warmup_steps(plain, n)
    args = plain
  config = deepspeed_integration.HfTrainerDeepSpeedConfig(copy.deepcopy(ds))
  config.trainer_config_process(args)
  model = types.SimpleNamespace(
    config=types.SimpleNamespace(hidden_size=hidden_size)
  )
  config.trainer_config_finalize(args, model, num_training_steps)
  return config.config


_CASES = [
  (
    "ds_auto_zero2.json",
    dict(
      per_device_train_batch_size=4,
      gradient_accumulation_steps=2,
      learning_rate=3e-5,
      weight_decay=0.01,
      adam_epsilon=1e-6,
      warmup_steps=0.06,
      fp16=True,
      max_grad_norm=0.5,
    ),
    300,
    1,
  ),
  (
    "ds_auto_zero2.json",
    dict(per_device_train_batch_size=16, learning_rate=1e-4, warmup_steps=0),
    1000,
    8,
  ),
  (
    "ds_auto_lamb_no_scheduler.json",
    dict(bf16=True, learning_rate=1e-3, adam_beta2=0.98),
    50,
    2,
  ),
  ("ds_auto_zero3_no_optimizer.json", dict(bf16=True, warmup_steps=10), 200, 1),
  (
    "ds_autotune_fp16.json",
    dict(fp16=True, per_device_train_batch_size=2),
    10,
    1,
  ),
]


@pytest.mark.parametrize("name,fields,steps,world", _CASES)
def test_fill_equals_hf_trainer_deepspeed_config(name, fields, steps, world):
  ds = _read(name)
  want = _transformers_fill(ds, fields, steps, world)
  got = hf_deepspeed.fill_deepspeed_auto(
    ds, fields, num_training_steps=steps, world_size=world, hidden_size=64
  )
  assert got == want
  assert not hf_deepspeed.auto_keys(got)
  assert ds == _read(name)  # the input is left alone


def test_fill_from_a_training_arguments_instance():
  transformers = require("transformers")
  ds = _read("ds_auto_zero2.json")
  args = transformers.TrainingArguments(
    output_dir="unused", learning_rate=2e-4, warmup_steps=7, fp16=True
  )
  got = hf_deepspeed.fill_deepspeed_auto(
    ds, args, num_training_steps=70, hidden_size=32
  )
  assert got == _transformers_fill(
    ds, dict(learning_rate=2e-4, warmup_steps=7, fp16=True), 70, hidden_size=32
  )
  assert got["scheduler"]["params"]["warmup_num_steps"] == 7


def test_mismatches_are_refused_as_the_trainer_refuses_them():
  deepspeed_integration = require("transformers.integrations.deepspeed")
  ds = _read("ds_auto_zero2.json")
  ds["optimizer"]["params"]["lr"] = 1e-3
  ds["gradient_clipping"] = 2.0
  fields = dict(learning_rate=5e-5, max_grad_norm=1.0)
  with pytest.raises(ValueError, match="mismatch") as ours:
    hf_deepspeed.fill_deepspeed_auto(
      ds, fields, num_training_steps=10, hidden_size=8
    )
  with pytest.raises(ValueError, match="mismatch") as theirs:
    _transformers_fill(ds, fields, 10, hidden_size=8)
  del deepspeed_integration
  for line in (
    "- ds optimizer.params.lr=0.001 vs hf learning_rate=5e-05",
    "- ds gradient_clipping=2.0 vs hf max_grad_norm=1.0",
  ):
    assert line in str(ours.value) and line in str(theirs.value)


def test_hidden_size_keys_need_hidden_size():
  with pytest.raises(ValueError, match=r"reduce_bucket_size.*hidden_size"):
    hf_deepspeed.fill_deepspeed_auto(
      _read("ds_auto_zero2.json"), {}, num_training_steps=10
    )


@pytest.mark.parametrize(
  "kwargs,name",
  [
    (dict(num_training_steps=0), "num_training_steps"),
    (dict(num_training_steps=10, world_size=0), "world_size"),
    (
      dict(num_training_steps=10, auto_find_batch_size="no"),
      "auto_find_batch_size",
    ),
  ],
)
def test_arguments_are_checked(kwargs, name):
  with pytest.raises(ValueError, match=name):
    hf_deepspeed.fill_deepspeed_auto({}, {}, **kwargs)


def test_fields_are_checked():
  with pytest.raises(ValueError, match="per_device_train_batch_size"):
    hf_deepspeed.fill_deepspeed_auto(
      {}, {"per_device_train_batch_size": 0}, num_training_steps=10
    )
  with pytest.raises(ValueError, match="fp16"):
    hf_deepspeed.fill_deepspeed_auto(
      {}, {"fp16": "true"}, num_training_steps=10
    )


def test_auto_keys_lists_every_auto_path():
  assert hf_deepspeed.auto_keys(_read("ds_auto_lamb_no_scheduler.json")) == [
    "bf16.enabled",
    "optimizer.params.lr",
    "optimizer.params.betas",
    "optimizer.params.eps",
    "optimizer.params.weight_decay",
    "gradient_accumulation_steps",
    "gradient_clipping",
    "train_batch_size",
    "train_micro_batch_size_per_gpu",
  ]


# --- what the Trainer runs with a ds_config that has optimizer and scheduler --

_SHAPES = {
  "bert.encoder.dense.weight": (4, 3),
  "bert.encoder.dense.bias": (4,),
  "bert.encoder.LayerNorm.weight": (4,),
}


def _port(fields, ds, num_training_steps):
  return from_training_arguments(
    dict(fields, deepspeed=ds), num_training_steps=num_training_steps
  )


def test_trainer_with_ds_optimizer_and_scheduler_matches_a_torch_run():
  # deepspeed_init hands DeepSpeed every parameter in one group (no no-decay
  # split), DeepSpeed's AdamW (FusedAdam's math; its C++ CPU Adam here) and
  # its WarmupDecayLR with the filled values; the engine clips and divides
  # the loss by the accumulation steps.
  torch = require("torch")
  lr_schedules = require("deepspeed.runtime.lr_schedules")
  cpu_adam = require("deepspeed.ops.adam").DeepSpeedCPUAdam
  fields = dict(
    per_device_train_batch_size=2,
    gradient_accumulation_steps=2,
    learning_rate=3e-3,
    weight_decay=0.1,
    adam_beta2=0.98,
    adam_epsilon=1e-6,
    max_grad_norm=1.0,
    warmup_steps=0.2,
    fp16=True,
  )
  steps = 20
  ds = _read("ds_auto_zero2.json")
  filled = _transformers_fill(ds, fields, steps, hidden_size=4)
  rng = np.random.default_rng(0)
  init = {
    k: rng.standard_normal(s).astype(np.float32) for k, s in _SHAPES.items()
  }
  grads = [
    {
      k: ((3.0 if i % 3 == 0 else 0.2) * rng.standard_normal(s)).astype(
        np.float32
      )
      for k, s in _SHAPES.items()
    }
    for i in range(2 * steps)
  ]

  params = {k: torch.nn.Parameter(torch.tensor(v)) for k, v in init.items()}
  opt_params = filled["optimizer"]["params"]
  optimizer = cpu_adam(
    [{"params": list(params.values())}],
    lr=opt_params["lr"],
    betas=tuple(opt_params["betas"]),
    eps=opt_params["eps"],
    weight_decay=opt_params["weight_decay"],
    adamw_mode=True,
  )
  scheduler = getattr(lr_schedules, filled["scheduler"]["type"])(
    optimizer, **filled["scheduler"]["params"]
  )
  reference = []
  for start in range(0, len(grads), 2):
    for k, p in params.items():
      p.grad = torch.tensor((grads[start][k] + grads[start + 1][k]) / 2)
    torch.nn.utils.clip_grad_norm_(
      list(params.values()), filled["gradient_clipping"]
    )
    optimizer.step()
    scheduler.step()
    reference.append({k: p.detach().numpy().copy() for k, p in params.items()})

  tx = _port(fields, ds, steps)
  ours = {k: jnp.asarray(v) for k, v in init.items()}
  state = tx.init(ours)
  update = jax.jit(tx.update)
  for i, g in enumerate(grads):
    u, state = update({k: jnp.asarray(v) for k, v in g.items()}, state, ours)
    ours = optax.apply_updates(ours, u)
    if i % 2 == 1:
      for k in _SHAPES:
        np.testing.assert_allclose(
          ours[k],
          reference[i // 2][k],
          rtol=1e-5,
          atol=1e-6,
          err_msg=f"step {i // 2}, {k}",
        )


def test_ds_optimizer_without_scheduler_runs_the_trainers_schedule():
  fields = dict(
    learning_rate=1e-3,
    warmup_steps=5,
    lr_scheduler_type="cosine",
    bf16=True,
    adam_beta2=0.98,
  )
  ds = _read("ds_auto_lamb_no_scheduler.json")
  plan = plan_training_arguments(
    dict(fields, deepspeed=ds), num_training_steps=50
  )
  assert plan.source == "training_arguments+deepspeed"
  assert plan.optimizer == specs.LambSpec(
    0.9, 0.98, 1e-8, weight_decay=0.0, max_coeff=10.0, min_coeff=0.01
  )
  assert plan.learning_rate == specs.TransformersScheduleSpec(
    "cosine", 1e-3, 5, 50, {}
  )
  assert plan.weight_decay_mask is None  # one group: every parameter decays
  assert plan.clip == 1.0 and plan.accumulation_steps == 1


def test_no_ds_optimizer_runs_the_trainers_optimizer_and_grouping():
  fields = dict(
    learning_rate=2e-4,
    weight_decay=0.1,
    warmup_steps=10,
    gradient_accumulation_steps=4,
    max_grad_norm=0.5,
    bf16=True,
  )
  ds = _read("ds_auto_zero3_no_optimizer.json")
  plan = plan_training_arguments(
    dict(fields, deepspeed=ds), num_training_steps=100, data_parallel_size=2
  )
  assert plan.optimizer.name == "adamw_torch_fused"
  assert plan.weight_decay_mask == specs.NamedMask("trainer_weight_decay_mask")
  assert plan.learning_rate == specs.TransformersScheduleSpec(
    "linear", 2e-4, 10, 100, {}
  )
  assert plan.clip == 0.5 and plan.accumulation_steps == 4
  with_scheduler = dict(
    ds,
    scheduler={
      "type": "WarmupLR",
      "params": {
        "warmup_min_lr": "auto",
        "warmup_max_lr": "auto",
        "warmup_num_steps": "auto",
      },
    },
  )
  plan = plan_training_arguments(
    dict(fields, deepspeed=with_scheduler), num_training_steps=100
  )
  assert plan.learning_rate == specs.DeepSpeedScheduleSpec(
    "WarmupLR",
    {"warmup_min_lr": 0, "warmup_max_lr": 2e-4, "warmup_num_steps": 10},
    2e-4,
  )


def test_deepspeed_field_as_a_path_or_json_string(tmp_path):
  ds = _read("ds_auto_zero2.json")
  path = tmp_path / "ds.json"
  path.write_text(json.dumps(ds))
  fields = dict(learning_rate=3e-5, warmup_steps=0.1, fp16=True)
  plans = [
    plan_training_arguments(
      dict(fields, deepspeed=value), num_training_steps=40
    )
    for value in (ds, str(path), json.dumps(ds))
  ]
  assert (
    plans[0].learning_rate == plans[1].learning_rate == (plans[2].learning_rate)
  )
  assert plans[0].learning_rate == specs.DeepSpeedScheduleSpec(
    "WarmupDecayLR",
    {
      "warmup_min_lr": 0,
      "warmup_max_lr": 3e-5,
      "warmup_num_steps": 4,
      "total_num_steps": 40,
    },
    3e-5,
  )
  assert any("'auto' values filled" in n for n in plans[0].notes)
  with pytest.raises(ValueError, match="mismatch"):
    plan_training_arguments(
      dict(fields, deepspeed=dict(ds, gradient_clipping=3.0)),
      num_training_steps=40,
    )


def test_training_args_fields_are_read_as_transformers_reads_them():
  plan = plan_training_arguments(
    {
      "lr_scheduler_type": "cosine_with_min_lr",
      "lr_scheduler_kwargs": '{"min_lr_rate": "0.1"}',
      "output_dir": "o",
      "evaluation_strategy": "epoch",
    },
    num_training_steps=10,
  )
  assert plan.learning_rate.kwargs == {"min_lr_rate": 0.1}
  assert any("evaluation_strategy" in n for n in plan.notes)
  with pytest.raises(ValueError, match="Did you mean 'lr_scheduler_type'"):
    plan_training_arguments({"lr_scheduler": "cosine"}, num_training_steps=10)
  with pytest.raises(ValueError, match="adafactor"):
    plan_training_arguments({"adafactor": True}, num_training_steps=10)
  with pytest.warns(UserWarning, match="'my_flag'"):
    plan_training_arguments({"my_flag": 1, "seed": 3}, num_training_steps=10)


def test_every_training_args_fixture_ports():
  for name in sorted(os.listdir(HF)):
    if not name.startswith("training_args"):
      continue
    with open(os.path.join(HF, name), encoding="utf-8") as f:
      fields = json.load(f)
    if isinstance(fields.get("deepspeed"), str):
      fields["deepspeed"] = os.path.join(HF, fields["deepspeed"])
    plan = plan_training_arguments(fields, num_training_steps=100)
    assert plan.build() is not None, name
