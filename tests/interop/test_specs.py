"""Tests of bertadam_optax/interop/specs.py: the typed specs and the Plan.

The plans are checked against optimizers built by hand from the public
building blocks, and their printed source is run and compared bit for bit
with ``plan.build()``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax import masks
from bertadam_optax import transforms
from bertadam_optax.interop import plan_deepspeed_config
from bertadam_optax.interop import plan_training_arguments
from bertadam_optax.interop import specs

PARAMS = {
  "encoder.dense.weight": jnp.linspace(-1.0, 1.0, 12).reshape(4, 3),
  "encoder.dense.bias": jnp.full((3,), 0.5),
  "encoder.LayerNorm.weight": jnp.ones(3),
}


def _run(tx, steps=6, value=None):
  rng = np.random.default_rng(0)
  params, state = PARAMS, tx.init(PARAMS)
  extra = {} if value is None else {"value": value}
  history = []
  for k in range(steps):
    grads = jax.tree.map(
      lambda p: jnp.asarray(rng.standard_normal(p.shape), jnp.float32), params
    )
    if value is not None:
      extra["value"] = jnp.float32(1.0 / (k + 1) if k % 3 else 2.0)
    updates, state = tx.update(grads, state, params, **extra)
    params = optax.apply_updates(params, updates)
    history.append((params, float(bertadam_optax.get_lr(state))))
  return history


def _assert_same(a, b):
  for (pa, la), (pb, lb) in zip(a, b):
    jax.tree.map(np.testing.assert_array_equal, pa, pb)
    assert la == lb


DS_CONFIGS = [
  {
    "train_batch_size": 4,
    "gradient_clipping": 1.0,
    "optimizer": {
      "type": "AdamW",
      "params": {"lr": 1e-3, "weight_decay": 0.01},
    },
  },
  {
    "train_batch_size": 4,
    "optimizer": {"type": "Lion", "params": {"lr": 1e-4, "weight_decay": 0.1}},
    "scheduler": {
      "type": "OneCycle",
      "params": {
        "cycle_min_lr": 1e-5,
        "cycle_max_lr": 1e-4,
        "cycle_first_step_size": 3,
      },
    },
  },
  {
    "train_batch_size": 4,
    "gradient_clipping": 0.5,
    "optimizer": {"type": "Lamb", "params": {"lr": 1e-2, "weight_decay": 0.01}},
  },
  {
    "train_batch_size": 8,
    "train_micro_batch_size_per_gpu": 4,
    "optimizer": {
      "type": "Adam",
      "params": {"lr": 1e-3, "weight_decay": 0.1, "adam_w_mode": False},
    },
    "scheduler": {"type": "WarmupLR", "params": {"warmup_num_steps": 3}},
  },
]
TA_FIELDS = [
  {"learning_rate": 1e-3, "weight_decay": 0.01, "warmup_steps": 2},
  {
    "optim": "sgd",
    "optim_args": "momentum=0.9",
    "learning_rate": 0.05,
    "weight_decay": 0.1,
    "lr_scheduler_type": "cosine",
  },
  {
    "optim": "adagrad",
    "optim_args": "lr_decay=0.05",
    "learning_rate": 0.05,
    "weight_decay": 0.02,
    "gradient_accumulation_steps": 2,
  },
  {
    "learning_rate": 1e-2,
    "lr_scheduler_type": "greedy",
    "lr_scheduler_kwargs": {"patience": 1, "min_lr": 1e-4},
  },
  {
    "learning_rate": 1e-2,
    "lr_scheduler_type": "reduce_lr_on_plateau",
    "lr_scheduler_kwargs": {"patience": 0},
  },
]


def _plans():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return [plan_deepspeed_config(c, total_steps=10) for c in DS_CONFIGS] + [
      plan_training_arguments(f, num_training_steps=10) for f in TA_FIELDS
    ]


def _value(plan):
  return (
    1.0 if isinstance(plan.learning_rate, specs.MetricScheduleSpec) else None
  )


@pytest.mark.parametrize("index", range(len(DS_CONFIGS) + len(TA_FIELDS)))
def test_printed_source_builds_a_bit_identical_optimizer(index):
  plan = _plans()[index]
  source = plan.to_source()
  namespace = {}
  exec(source, namespace)  # pylint: disable=exec-used
  value = _value(plan)
  _assert_same(
    _run(plan.build(), value=value), _run(namespace["optimizer"], value=value)
  )


@pytest.mark.parametrize("index", range(len(DS_CONFIGS) + len(TA_FIELDS)))
def test_printed_source_imports_only_public_names(index):
  source = _plans()[index].to_source()
  assert not re.search(r"(?<![A-Za-z0-9])_[a-z]", source), source
  assert "interop" not in source


def test_from_functions_are_plan_build():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    a = bertadam_optax.interop.from_deepspeed_config(
      DS_CONFIGS[3], total_steps=10
    )
    b = plan_deepspeed_config(DS_CONFIGS[3], total_steps=10).build()
    c = bertadam_optax.interop.from_training_arguments(
      TA_FIELDS[2], num_training_steps=10
    )
    d = plan_training_arguments(TA_FIELDS[2], num_training_steps=10).build()
  _assert_same(_run(a), _run(b))
  _assert_same(_run(c), _run(d))


def test_replace_learning_rate_mask_and_accumulation():
  # What the bing_bert port does: a ds_config's optimizer with its own
  # schedule and mask.
  plan = _plans()[0]
  schedule = optax.linear_schedule(0.0, 2e-3, 4)
  replaced = dataclasses.replace(
    plan,
    learning_rate=schedule,
    weight_decay_mask=masks.bert_weight_decay_mask,
    accumulation_steps=2,
  )
  by_hand = optax.MultiSteps(
    optax.chain(
      transforms.clip_by_global_norm_torch(1.0),
      transforms.scale_by_adam_torch(0.9, 0.999, 1e-8),
      optax.add_decayed_weights(0.01, masks.bert_weight_decay_mask),
      transforms.scale_by_learning_rate(schedule),
    ),
    every_k_schedule=2,
    use_grad_mean=True,
  ).gradient_transformation()
  _assert_same(_run(replaced.build(), steps=8), _run(by_hand, steps=8))
  assert "masks.bert_weight_decay_mask" in replaced.to_source()
  # A float learning rate works too, and prints.
  constant = dataclasses.replace(plan, learning_rate=5e-4)
  assert "scale_by_learning_rate(0.0005)" in constant.to_source()
  _run(constant.build())


def test_learning_rate_override_keyword():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    plan = plan_deepspeed_config(DS_CONFIGS[3], learning_rate=3e-4)
  assert plan.learning_rate == 3e-4
  assert any("learning_rate" in n for n in plan.notes)
  assert _run(plan.build(), steps=1)[0][1] == pytest.approx(3e-4)


def test_describe_lists_the_decisions_and_ignored_keys():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    plan = plan_deepspeed_config(
      dict(DS_CONFIGS[0], steps_per_print=10, fp16={"enabled": True})
    )
  lines = plan.describe()
  assert lines[0].endswith("ds_config")
  assert any("global norm 1.0" in line for line in lines)
  assert any("'steps_per_print'" in n and "'fp16'" in n for n in plan.notes)
  assert all(f"note:          {n}" in lines for n in plan.notes)


@pytest.mark.parametrize(
  "make,name",
  [
    (lambda: specs.AdamSpec(b1=np.float32(1.5)), "b1"),
    (lambda: specs.AdamSpec(eps=float("nan")), "eps"),
    (lambda: specs.AdamSpec(bias_correction="false"), "bias_correction"),
    (lambda: specs.LambSpec(min_coeff=np.array(-1.0)), "min_coeff"),
    (lambda: specs.LionSpec(weight_decay="0.1"), "weight_decay"),
    (lambda: specs.AdagradSpec(eps=-1.0), "eps"),
    (lambda: specs.SGDSpec(momentum=0.0, nesterov=True), "nesterov"),
    (
      lambda: specs.TransformersScheduleSpec("linear", 1e-3, 5, 100.5),
      "num_training_steps",
    ),
    (
      lambda: specs.MetricScheduleSpec("greedy", 1e-3, {"modes": "min"}),
      "modes",
    ),
    (lambda: specs.NamedMask("bias"), "name"),
    (
      lambda: dataclasses.replace(_plans()[0], accumulation_steps=0),
      "accumulation_steps",
    ),
    (lambda: dataclasses.replace(_plans()[0], clip=float("nan")), "clip"),
    (
      lambda: dataclasses.replace(_plans()[0], learning_rate=-1.0),
      "learning_rate",
    ),
    (
      lambda: dataclasses.replace(_plans()[0], weight_decay_mask="bias"),
      "weight_decay_mask",
    ),
  ],
)
def test_specs_validate_at_construction(make, name):
  with pytest.raises(ValueError, match=name):
    make()


def test_specs_are_frozen():
  spec = specs.AdamSpec()
  with pytest.raises(dataclasses.FrozenInstanceError):
    spec.b1 = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
  "module",
  [
    "bertadam_optax.interop.deepspeed_config",
    "bertadam_optax.interop.training_arguments",
    "bertadam_optax.interop.specs",
  ],
)
def test_docstring_examples_run(module):
  import doctest  # pylint: disable=import-outside-toplevel
  import importlib  # pylint: disable=import-outside-toplevel

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = doctest.testmod(
      importlib.import_module(module), optionflags=doctest.ELLIPSIS
    )
  assert result.attempted > 0
  assert result.failed == 0
