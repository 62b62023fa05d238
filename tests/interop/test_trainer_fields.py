"""Tests of ``bertadam_optax.interop._trainer_fields`` against the installed
transformers (its ``TrainingArguments`` fields and parsing)."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from bertadam_optax.interop import _trainer_fields as tf
from tests.references import require

READ = (
  "learning_rate",
  "lr_scheduler_type",
  "lr_scheduler_kwargs",
  "warmup_steps",
  "warmup_ratio",
  "optim",
  "optim_args",
  "weight_decay",
  "adam_beta1",
  "adam_beta2",
  "adam_epsilon",
  "max_grad_norm",
  "gradient_accumulation_steps",
  "deepspeed",
)
HF = os.path.join(os.path.dirname(__file__), "fixtures", "hf")


def test_fields_are_those_of_the_installed_transformers():
  transformers = require("transformers")
  names = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
  assert names == tf.TRAINING_ARGUMENTS_FIELDS
  assert not set(tf.OTHER_VERSION_FIELDS) & names


def test_a_full_dump_ignores_nothing():
  transformers = require("transformers")
  args = transformers.TrainingArguments(output_dir="unused", use_cpu=True)
  dump = json.loads(args.to_json_string())
  ignored, notes = tf.classify_fields(dump, READ)
  assert ignored == [] and notes == []


@pytest.mark.parametrize(
  "key,meant",
  [
    ("lr_scheduler", "lr_scheduler_type"),
    ("learning_rat", "learning_rate"),
    ("weight_decay_rate", "weight_decay"),
    ("adam_epsilo", "adam_epsilon"),
  ],
)
def test_typos_of_read_fields_are_refused(key, meant):
  with pytest.raises(ValueError, match=f"Did you mean '{meant}'"):
    tf.classify_fields({key: 1}, READ)


def test_other_versions_are_flagged_and_refused_when_they_change_the_math():
  with pytest.raises(ValueError, match=r"adafactor.*optim='adafactor'"):
    tf.classify_fields({"adafactor": True}, READ)
  ignored, notes = tf.classify_fields(
    {
      "adafactor": False,
      "evaluation_strategy": "epoch",
      "my_key": 1,
      "seed": 3,
    },
    READ,
  )
  assert ignored == ["my_key"]
  assert len(notes) == 2 and "eval_strategy" in notes[1]


def test_every_training_args_fixture_classifies():
  for name in sorted(os.listdir(HF)):
    if name.startswith("training_args"):
      with open(os.path.join(HF, name), encoding="utf-8") as f:
        ignored, _ = tf.classify_fields(json.load(f), READ)
      assert ignored == [], name


@pytest.mark.parametrize(
  "value",
  [
    '{"min_lr_rate": 0.1}',
    '{"num_cycles": "2", "power": "1.5", "x": "true"}',
    '{"nested": {"a": "3"}}',
    None,
    {"num_cycles": 2},
  ],
)
def test_lr_scheduler_kwargs_parse_as_transformers(value):
  transformers = require("transformers")
  args = transformers.TrainingArguments(
    output_dir="unused", use_cpu=True, lr_scheduler_kwargs=value
  )
  want = args.lr_scheduler_kwargs
  assert tf.parse_lr_scheduler_kwargs(value) == (
    want if want is not None else {}
  )


@pytest.mark.parametrize("value", ["min_lr_rate=0.1", "{bad json", "[1, 2]", 3])
def test_bad_lr_scheduler_kwargs_are_refused(value):
  with pytest.raises(ValueError, match="lr_scheduler_kwargs"):
    tf.parse_lr_scheduler_kwargs(value)


@pytest.mark.parametrize(
  "value",
  [
    "momentum=0.9",
    "momentum=0.9, nesterov=True",
    " dampening = 0.5 ,momentum=0.8",
    "",
  ],
)
def test_optim_args_parse_as_the_trainer(value):
  # The Trainer's SGD keywords: its parse of optim_args, values converted.
  transformers = require("transformers")
  args = transformers.TrainingArguments(
    output_dir="unused", use_cpu=True, optim="sgd", optim_args=value
  )
  _, kwargs = transformers.Trainer.get_optimizer_cls_and_kwargs(args)
  parsed = tf.parse_optim_args(value)
  assert set(parsed) == set(kwargs) - {"lr"}
  for key, text in parsed.items():
    assert (
      (text == "True")
      if isinstance(kwargs[key], bool)
      else (float(text) == kwargs[key])
    )


@pytest.mark.parametrize("value", ["momentum", "a=1=2", 5])
def test_bad_optim_args_are_refused(value):
  with pytest.raises(ValueError, match="optim_args"):
    tf.parse_optim_args(value)
