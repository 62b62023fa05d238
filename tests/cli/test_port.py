"""Tests for bertadam_optax/cli/port.py (``bertadam-optax port CONFIG``)."""

from __future__ import annotations

import json
import os
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax.cli import main as cli
from bertadam_optax.interop import deepspeed_config
from bertadam_optax.interop import training_arguments

DEEPSPEED = {
  "train_batch_size": 16,
  "train_micro_batch_size_per_gpu": 8,
  "steps_per_print": 100,
  "gradient_clipping": 1.0,
  "optimizer": {
    "type": "Adam",
    "params": {"lr": 2e-3, "weight_decay": 0.01, "bias_correction": False},
  },
  "scheduler": {
    "type": "OneCycle",
    "params": {
      "cycle_min_lr": 1e-4,
      "cycle_max_lr": 2e-3,
      "cycle_first_step_size": 8,
      "decay_step_size": 2,
      "decay_lr_rate": 0.1,
    },
  },
}
DEEPSPEED_L2 = {
  "train_batch_size": 4,
  "optimizer": {
    "type": "Adam",
    "params": {"lr": 1e-3, "weight_decay": 0.1, "adam_w_mode": False},
  },
  "scheduler": {
    "type": "WarmupCosineLR",
    "params": {"total_num_steps": 30, "warmup_num_steps": 5},
  },
}
DEEPSPEED_ADAGRAD = {
  "train_batch_size": 4,
  "gradient_clipping": 0.5,
  "optimizer": {"type": "Adagrad", "params": {"weight_decay": 0.1}},
}
DEEPSPEED_LAMB = {
  "train_batch_size": 4,
  "gradient_clipping": 1.0,
  "optimizer": {
    "type": "Lamb",
    "params": {"lr": 1e-2, "weight_decay": 0.01, "max_coeff": 0.3},
  },
  "scheduler": {
    "type": "OneCycle",
    "params": {
      "cycle_min_lr": 1e-3,
      "cycle_max_lr": 1e-2,
      "cycle_first_step_size": 5,
    },
  },
}
TRAINING_ARGUMENTS = {
  "learning_rate": 3e-4,
  "weight_decay": 0.01,
  "warmup_steps": 0.1,
  "lr_scheduler_type": "cosine",
  "gradient_accumulation_steps": 2,
  "output_dir": "out",
}


def _run(tmp_path, config, *extra, capsys):
  path = tmp_path / "config.json"
  path.write_text(json.dumps(config))
  png = tmp_path / "lr.png"
  status = cli.main(["port", str(path), "-o", str(png), *extra])
  out, err = capsys.readouterr()
  return status, out, err, png


def _code(out: str) -> str:
  return out.split("optax code:\n\n", 1)[1].split("\n\nwrote ", 1)[0]


def _same_updates(a, b, num_updates=12):
  params = {
    "dense": {
      "kernel": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3),
      "bias": jnp.ones(3),
    }
  }
  rng = np.random.default_rng(0)
  states = [a.init(params), b.init(params)]
  values = [params, params]
  for _ in range(num_updates):
    grads = jax.tree.map(
      lambda p: jnp.asarray(2 * rng.standard_normal(p.shape), jnp.float32),
      params,
    )
    for i, tx in enumerate((a, b)):
      updates, states[i] = tx.update(grads, states[i], values[i])
      values[i] = optax.apply_updates(values[i], updates)
    jax.tree.map(np.testing.assert_array_equal, values[0], values[1])
    assert float(bertadam_optax.get_lr(states[0])) == float(
      bertadam_optax.get_lr(states[1])
    )


@pytest.mark.parametrize(
  "config,kind,build",
  [
    (
      DEEPSPEED,
      "deepspeed",
      lambda c, n: deepspeed_config.from_deepspeed_config(c, total_steps=n),
    ),
    (
      DEEPSPEED_L2,
      "deepspeed",
      lambda c, n: deepspeed_config.from_deepspeed_config(c, total_steps=n),
    ),
    (
      DEEPSPEED_ADAGRAD,
      "deepspeed",
      lambda c, n: deepspeed_config.from_deepspeed_config(c, total_steps=n),
    ),
    (
      DEEPSPEED_LAMB,
      "deepspeed",
      lambda c, n: deepspeed_config.from_deepspeed_config(c, total_steps=n),
    ),
    (
      TRAINING_ARGUMENTS,
      "training_arguments",
      lambda c, n: training_arguments.from_training_arguments(
        c, num_training_steps=n
      ),
    ),
  ],
)
def test_port_prints_code_that_builds_the_same_optimizer(
  tmp_path, capsys, config, kind, build
):
  status, out, err, png = _run(tmp_path, config, "--steps", "40", capsys=capsys)
  assert status == 0, err
  assert f": {kind}, 40 optimizer steps" in out
  assert png.read_bytes().startswith(b"\x89PNG")
  namespace = {}
  exec(_code(out), namespace)  # pylint: disable=exec-used
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _same_updates(namespace["optimizer"], build(config, 40))


def test_port_prints_the_learning_rate_at_key_steps(tmp_path, capsys):
  status, out, _, _ = _run(tmp_path, DEEPSPEED, "--steps", "40", capsys=capsys)
  assert status == 0
  rows = re.findall(
    r"^\s+(\S+(?: end)?)\s+step\s+(\d+)\s+lr=(\S+)\s+"
    r"beta1=(\S+)$",
    out,
    re.MULTILINE,
  )
  labels = [r[0] for r in rows]
  assert labels == ["start", "peak", "1/4", "2/4", "3/4", "end"]
  from bertadam_optax import schedules  # pylint: disable=import-outside-toplevel

  section = DEEPSPEED["scheduler"]
  lr = schedules.deepspeed_schedule(section["type"], section["params"])
  beta1 = schedules.one_cycle_momentum(
    cycle_first_step_size=8, decay_step_size=2
  )
  for _, step, value, b1 in rows:
    assert float(value) == pytest.approx(float(lr(int(step))), rel=1e-5)
    assert float(b1) == pytest.approx(float(beta1(int(step))), abs=1e-4)


@pytest.mark.parametrize(
  "content,extra,match",
  [
    ('{"optimizer": {"type": "Adamm"}}', (), "Did you mean 'Adam'"),
    ("{not json", (), "not valid JSON"),
    ('{"name": "x"}', (), "pass --kind"),
    ('{"optim": "adafactor"}', (), "optim='adafactor'"),
    (
      '{"train_batch_size": 6, "train_micro_batch_size_per_gpu": 4, '
      '"optimizer": {"type": "Adam"}}',
      (),
      "inconsistent batch sizes",
    ),
    ('{"optimizer": {"type": "Adam"}}', ("--steps", "0"), "--steps"),
    (
      '{"optimizer": {"type": "Adam"}, "scheduler": "WarmupLR"}',
      (),
      "scheduler='WarmupLR'",
    ),
    (
      '{"optimizer": {"type": "Adam"}, "scheduler": {"type": "WarmupLR", '
      '"params": "x"}}',
      (),
      r"scheduler\.params='x'",
    ),
    (
      '{"optimizer": {"type": "Adam", "params": {"lr": "auto"}}}',
      (),
      r"optimizer\.params\.lr are 'auto'.*TrainingArguments",
    ),
    (
      '{"learning_rate": 1e-3, "max_steps": "100"}',
      (),
      "max_steps='100' is a string",
    ),
    ("[" * 100_000 + "]" * 100_000, (), "too deeply"),
  ],
)
def test_bad_config_is_one_line_and_exit_2(
  tmp_path, capsys, content, extra, match
):
  path = tmp_path / "config.json"
  path.write_text(content)
  status = cli.main(["port", str(path), "-o", str(tmp_path / "x.png"), *extra])
  out, err = capsys.readouterr()
  assert status == 2
  assert out == ""
  assert len(err.strip().splitlines()) == 1
  assert re.search(match, err)
  assert not (tmp_path / "x.png").exists()


def test_missing_file_is_exit_2(tmp_path, capsys):
  status = cli.main(["port", str(tmp_path / "missing.json")])
  assert status == 2
  assert "cannot be read" in capsys.readouterr().err


def test_learning_rate_trace_does_not_grow_with_accumulation():
  # The trace runs the optimizer without MultiSteps: one update per
  # optimizer step, whatever the accumulation (a loop over micro-batches
  # would trace one update per micro-batch).
  from bertadam_optax.cli import port  # pylint: disable=import-outside-toplevel

  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    plans = [
      bertadam_optax.interop.plan_deepspeed_config(
        dict(
          DEEPSPEED_LAMB,
          train_batch_size=4 * acc,
          train_micro_batch_size_per_gpu=4,
        ),
        total_steps=40,
      )
      for acc in (1, 1024)
    ]
  assert [p.accumulation_steps for p in plans] == [1, 1024]
  jaxprs = [
    str(jax.make_jaxpr(port.learning_rate_trace(p, 40))()) for p in plans
  ]
  assert jaxprs[0] == jaxprs[1]


def test_unwritable_output_folder_is_refused_before_any_work(
  tmp_path, capsys, monkeypatch
):
  path = tmp_path / "config.json"
  path.write_text(json.dumps(DEEPSPEED))
  folder = tmp_path / "out"
  folder.mkdir()
  real_access = os.access
  # Running as root ignores permission bits: make the folder read-only for
  # the check itself.
  monkeypatch.setattr(
    os,
    "access",
    lambda p, mode: (
      False
      if os.fspath(p) == str(folder) and mode == os.W_OK
      else real_access(p, mode)
    ),
  )
  status = cli.main(["port", str(path), "-o", str(folder / "lr.png")])
  out, err = capsys.readouterr()
  assert status == 2 and out == ""
  assert "not writable" in err and len(err.strip().splitlines()) == 1
