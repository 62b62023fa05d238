"""Tests of ``bertadam_optax.interop.hf_deepspeed`` against transformers'
own ``HfTrainerDeepSpeedConfig`` (its ``trainer_config_process`` and
``trainer_config_finalize`` run on the same ds_config and arguments)."""

from __future__ import annotations

import copy
import json
import os
import types

import pytest

from bertadam_optax.interop import hf_deepspeed
from tests.references import require

HF = os.path.join(os.path.dirname(__file__), "fixtures", "hf")


def _read(name):
  with open(os.path.join(HF, name), encoding="utf-8") as f:
    return json.load(f)


def _transformers_fill(ds, fields, num_training_steps, world_size=1,
                       hidden_size=64):
  """The ds_config after the Trainer's two fill stages, by transformers."""
  deepspeed_integration = require("transformers.integrations.deepspeed")
  transformers = require("transformers")
  # use_cpu: this machine has no GPU, which bf16 would otherwise require; the
  # fill does not read it.
  args = transformers.TrainingArguments(output_dir="unused", use_cpu=True,
                                        **fields)
  cls = type(args)
  if world_size != 1:
    # TrainingArguments.world_size comes from the launched processes; the
    # fill reads only the attribute, so give it on a plain object.
    plain = types.SimpleNamespace(**{
        k: getattr(args, k) for k in hf_deepspeed.HF_DEEPSPEED_FIELDS
        if hasattr(args, k)})
    plain.world_size = world_size
    plain.get_warmup_steps = lambda n: cls.get_warmup_steps(plain, n)
    args = plain
  config = deepspeed_integration.HfTrainerDeepSpeedConfig(copy.deepcopy(ds))
  config.trainer_config_process(args)
  model = types.SimpleNamespace(config=types.SimpleNamespace(
      hidden_size=hidden_size))
  config.trainer_config_finalize(args, model, num_training_steps)
  return config.config


_CASES = [
    ("ds_auto_zero2.json", dict(per_device_train_batch_size=4,
                                gradient_accumulation_steps=2,
                                learning_rate=3e-5, weight_decay=0.01,
                                adam_epsilon=1e-6, warmup_steps=0.06,
                                fp16=True, max_grad_norm=0.5), 300, 1),
    ("ds_auto_zero2.json", dict(per_device_train_batch_size=16,
                                learning_rate=1e-4, warmup_steps=0), 1000, 8),
    ("ds_auto_lamb_no_scheduler.json", dict(bf16=True, learning_rate=1e-3,
                                            adam_beta2=0.98), 50, 2),
    ("ds_auto_zero3_no_optimizer.json", dict(bf16=True, warmup_steps=10),
     200, 1),
    ("ds_autotune_fp16.json", dict(fp16=True, per_device_train_batch_size=2),
     10, 1),
]


@pytest.mark.parametrize("name,fields,steps,world", _CASES)
def test_fill_equals_hf_trainer_deepspeed_config(name, fields, steps, world):
  ds = _read(name)
  want = _transformers_fill(ds, fields, steps, world)
  got = hf_deepspeed.fill_deepspeed_auto(ds, fields, num_training_steps=steps,
                                         world_size=world, hidden_size=64)
  assert got == want
  assert not hf_deepspeed.auto_keys(got)
  assert ds == _read(name)  # the input is left alone


def test_fill_from_a_training_arguments_instance():
  transformers = require("transformers")
  ds = _read("ds_auto_zero2.json")
  args = transformers.TrainingArguments(output_dir="unused", learning_rate=2e-4,
                                        warmup_steps=7, fp16=True)
  got = hf_deepspeed.fill_deepspeed_auto(ds, args, num_training_steps=70,
                                         hidden_size=32)
  assert got == _transformers_fill(ds, dict(learning_rate=2e-4, warmup_steps=7,
                                            fp16=True), 70, hidden_size=32)
  assert got["scheduler"]["params"]["warmup_num_steps"] == 7


def test_mismatches_are_refused_as_the_trainer_refuses_them():
  deepspeed_integration = require("transformers.integrations.deepspeed")
  ds = _read("ds_auto_zero2.json")
  ds["optimizer"]["params"]["lr"] = 1e-3
  ds["gradient_clipping"] = 2.0
  fields = dict(learning_rate=5e-5, max_grad_norm=1.0)
  with pytest.raises(ValueError, match="mismatch") as ours:
    hf_deepspeed.fill_deepspeed_auto(ds, fields, num_training_steps=10,
                                     hidden_size=8)
  with pytest.raises(ValueError, match="mismatch") as theirs:
    _transformers_fill(ds, fields, 10, hidden_size=8)
  del deepspeed_integration
  for line in ("- ds optimizer.params.lr=0.001 vs hf learning_rate=5e-05",
               "- ds gradient_clipping=2.0 vs hf max_grad_norm=1.0"):
    assert line in str(ours.value) and line in str(theirs.value)


def test_hidden_size_keys_need_hidden_size():
  with pytest.raises(ValueError, match="reduce_bucket_size.*hidden_size"):
    hf_deepspeed.fill_deepspeed_auto(_read("ds_auto_zero2.json"), {},
                                     num_training_steps=10)


@pytest.mark.parametrize("kwargs,name", [
    (dict(num_training_steps=0), "num_training_steps"),
    (dict(num_training_steps=10, world_size=0), "world_size"),
    (dict(num_training_steps=10, auto_find_batch_size="no"),
     "auto_find_batch_size"),
])
def test_arguments_are_checked(kwargs, name):
  with pytest.raises(ValueError, match=name):
    hf_deepspeed.fill_deepspeed_auto({}, {}, **kwargs)


def test_fields_are_checked():
  with pytest.raises(ValueError, match="per_device_train_batch_size"):
    hf_deepspeed.fill_deepspeed_auto(
        {}, {"per_device_train_batch_size": 0}, num_training_steps=10)
  with pytest.raises(ValueError, match="fp16"):
    hf_deepspeed.fill_deepspeed_auto({}, {"fp16": "true"},
                                     num_training_steps=10)


def test_auto_keys_lists_every_auto_path():
  assert hf_deepspeed.auto_keys(_read("ds_auto_lamb_no_scheduler.json")) == [
      "bf16.enabled", "optimizer.params.lr", "optimizer.params.betas",
      "optimizer.params.eps", "optimizer.params.weight_decay",
      "gradient_accumulation_steps", "gradient_clipping", "train_batch_size",
      "train_micro_batch_size_per_gpu"]
