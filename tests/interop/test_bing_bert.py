"""Tests of ``bertadam_optax.interop.bing_bert`` and ``launch_script``.

References: DeepSpeedExamples' ``training/bing_bert/deepspeed_train.py``
(``update_learning_rate``, ``prepare_optimizer_parameters``) transcribed here
in float64 Python, with the schedule functions of its
``pytorch_pretrained_bert/optimization.py``; DeepSpeed's own FusedLamb math is
the tested ``scale_by_fused_lamb`` (see ``test_deepspeed_config.py``).
"""

from __future__ import annotations

import json
import math
import os
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax import masks
from bertadam_optax.interop import bing_bert
from bertadam_optax.interop import launch_script
from bertadam_optax.interop import megatron
from bertadam_optax.interop import plan_deepspeed_config

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
BING = os.path.join(FIXTURES, "bing_bert")


def _read(path):
  with open(path, encoding="utf-8") as f:
    return json.load(f)


# --- float64 transcription of DeepSpeedExamples' update_learning_rate -------


def _warmup_linear_decay_exp(step, decay_rate, decay_steps, total, warmup):
  x = step / total
  if warmup == 0.0:
    return 1.0
  if x < warmup:
    return x / warmup
  return decay_rate ** ((step - warmup * total) / decay_steps)


def _warmup_exp_decay_exp(
  step, decay_rate, decay_steps, total, warmup, degree=2.0
):
  x = step / total
  if warmup == 0.0:
    return 1.0
  if x < warmup:
    return (x / warmup) ** degree
  return decay_rate ** ((step - warmup * total) / decay_steps)


def _warmup_exp_decay_poly(step, total, warmup, warm_degree=1.5, degree=2.0):
  x = step / total
  if x < warmup:
    return (x / warmup) ** warm_degree
  return (1.0 - x) ** degree


def _update_learning_rate(
  training, lr_schedule, lr_offset, global_step, restore=0
):
  step = global_step - restore
  t = training
  if lr_schedule == "EE":
    lr = t["learning_rate"] * _warmup_exp_decay_exp(
      step,
      t["decay_rate"],
      t["decay_step"],
      t["total_training_steps"],
      t["warmup_proportion"],
    )
  elif lr_schedule == "EP":
    lr = t["learning_rate"] * _warmup_exp_decay_poly(
      step, t["total_training_steps"], t["warmup_proportion"]
    )
  else:
    lr = t["learning_rate"] * _warmup_linear_decay_exp(
      step,
      t["decay_rate"],
      t["decay_step"],
      t["total_training_steps"],
      t["warmup_proportion"],
    )
  return lr + lr_offset


def _assert_rates(spec, training, lr_schedule, lr_offset, steps, restore=0):
  schedule = spec.build()  # the plan's BingBertScheduleSpec
  got = np.asarray(jax.jit(jax.vmap(schedule))(jnp.asarray(steps)), np.float64)
  want = np.array(
    [
      _update_learning_rate(training, lr_schedule, lr_offset, k, restore)
      for k in steps
    ]
  )
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=0)


# --- the launch script of the seq128 LAMB phase ------------------------------


def test_launch_script_is_read_as_the_shell_would():
  command = launch_script.parse_launch_script(
    os.path.join(BING, "launch_lamb_seq128.sh")
  )
  assert command.launcher == "deepspeed"
  assert command.program_name == "deepspeed_train.py"
  assert command.program_path == os.path.join(BING, "deepspeed_train.py")
  assert command.data_parallel_size == 16
  assert command.variables["JOB_NAME"] == "lamb_64k_seq128_fixture"
  args = list(command.resolved_args)
  assert args[args.index("--cf") + 1] == os.path.join(
    BING, "bert_large_mixed_seq.json"
  )
  assert args[args.index("--lr_offset") + 1] == "10e-4"
  assert "&>" not in " ".join(args) and not any(
    a.endswith(".log") for a in args
  )


def test_seq128_ee_launch_learning_rate_at_every_update():
  plan = launch_script.plan_launch_script(
    os.path.join(BING, "launch_lamb_seq128.sh")
  )
  training = _read(os.path.join(BING, "bert_large_mixed_seq.json"))[
    "mixed_seq_training"
  ]["128"]
  assert plan.fp16 and plan.lr_schedule == "EE" and plan.lr_offset == 1e-3
  assert plan.data_parallel_size == 16 and plan.accumulation_steps == 64
  total = training["total_training_steps"]
  warmup_end = math.ceil(training["warmup_proportion"] * total)
  steps = np.arange(0, total + 500)
  _assert_rates(plan.learning_rate, training, "EE", 1e-3, steps)
  lr = plan.learning_rate.build()
  assert lr(warmup_end - 1) < lr(warmup_end)
  assert plan.learning_rate.milestone() == ("warmup end", warmup_end)
  assert "data_parallel_size=16" in " ".join(plan.notes)


def test_built_launch_applies_each_rate_on_its_update():
  # One data-parallel process per micro-batch of the 64k batch: 1024 micro
  # batches per step would be slow to run, so take 512 processes (2 each).
  path = os.path.join(BING, "launch_lamb_seq128.sh")
  tx = launch_script.from_launch_script(path, data_parallel_size=512)
  training = _read(os.path.join(BING, "bert_large_mixed_seq.json"))[
    "mixed_seq_training"
  ]["128"]
  params = {
    "bert.encoder.layer.0.attention.self.query.weight": jnp.full((2, 3), 0.5),
    "bert.encoder.layer.0.attention.self.query.bias": jnp.ones(3),
    "bert.pooler.dense.weight": jnp.ones((2, 2)),
  }
  state = tx.init(params)
  step = jax.jit(tx.update)
  grads = jax.tree.map(lambda p: 0.1 * jnp.ones_like(p), params)
  for k in range(4):
    for _ in range(2):
      _, state = step(grads, state, params)
    want = _update_learning_rate(training, "EE", 1e-3, k + 1)
    np.testing.assert_allclose(bertadam_optax.get_lr(state), want, rtol=1e-6)


def test_pooler_is_not_optimized_and_bias_is_not_decayed():
  cf = os.path.join(BING, "bert_large_mixed_seq.json")
  ds = os.path.join(BING, "ds_lamb_bsz64k_seq128.json")
  ds_one = dict(_read(ds), train_batch_size=64)
  tx = bing_bert.from_bing_bert(
    cf, ds_one, max_seq_length=128, lr_schedule="EE"
  )
  params = {
    "bert.pooler.dense.weight": jnp.ones((2, 2)),
    "bert.pooler.dense.bias": jnp.ones(2),
    "bert.encoder.dense.weight": jnp.ones((2, 2)),
    "bert.encoder.dense.bias": jnp.ones(2),
  }
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(zeros, state, params)
  np.testing.assert_array_equal(updates["bert.pooler.dense.weight"], 0.0)
  np.testing.assert_array_equal(updates["bert.pooler.dense.bias"], 0.0)
  np.testing.assert_array_equal(updates["bert.encoder.dense.bias"], 0.0)
  # Zero gradients: only the (cf) weight decay moves the decayed weight.
  assert float(updates["bert.encoder.dense.weight"][0, 0]) < 0.0


def test_fp16_clip_norm_leaves_out_the_pooler_fp32_clip_includes_it():
  # DeepSpeed's fp16 optimizers clip the norm of their own param groups (no
  # pooler); with fp16 off the engine clips every module parameter.
  cf = {
    "mixed_seq_training": {
      "128": {
        "learning_rate": 1e-3,
        "warmup_proportion": 0.0,
        "weight_decay": 0.0,
        "total_training_steps": 10,
        "decay_rate": 0.9,
        "decay_step": 5,
      }
    }
  }

  def first_update(fp16):
    ds = {
      "train_batch_size": 1,
      "train_micro_batch_size_per_gpu": 1,
      "gradient_clipping": 1.0,
      "fp16": {"enabled": fp16},
      "optimizer": {
        "type": "Adam",
        "params": {
          "lr": 1e-3,
          "bias_correction": False,
          "eps": 1.0,
          "betas": [0.0, 0.0],
        },
      },
    }
    tx = bing_bert.from_bing_bert(cf, ds, max_seq_length=128)
    params = {"w": jnp.zeros(1), "pooler.w": jnp.zeros(1)}
    grads = {"w": jnp.asarray([3.0]), "pooler.w": jnp.asarray([4.0])}
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates

  # betas 0: the update is -lr * g / (|g| + 1) with g the clipped gradient;
  # warmup 0: the fp16 rate is the constant 1e-3 (f = 1), as fp32's lr.
  fp16, fp32 = first_update(True), first_update(False)
  np.testing.assert_array_equal(fp16["pooler.w"], 0.0)
  np.testing.assert_array_equal(fp32["pooler.w"], 0.0)
  g16 = 3.0 * 1.0 / (3.0 + 1e-6)  # norm 3: the pooler's 4 left out
  g32 = 3.0 * 1.0 / (5.0 + 1e-6)  # norm 5 = |(3, 4)|
  np.testing.assert_allclose(fp16["w"], [-1e-3 * g16 / (g16 + 1.0)], rtol=1e-6)
  np.testing.assert_allclose(fp32["w"], [-1e-3 * g32 / (g32 + 1.0)], rtol=1e-6)


def test_fp16_off_keeps_the_ds_config_lr_and_says_so():
  plan = launch_script.plan_launch_script(
    os.path.join(BING, "launch_adam_fp32.sh")
  )
  assert not plan.fp16
  assert plan.learning_rate == 1e-4
  assert plan.data_parallel_size == 8 and plan.accumulation_steps == 1
  assert any("fp16 is off" in n and "kept" in n for n in plan.notes)
  tx = plan.build()
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  for _ in range(3):
    _, state = tx.update(params, state, params)
  np.testing.assert_allclose(bertadam_optax.get_lr(state), 1e-4)


def test_seq512_rewarmup_resume_needs_and_uses_the_restored_step():
  path = os.path.join(BING, "launch_lamb_seq512.sh")
  with pytest.raises(ValueError, match="resume_step"):
    launch_script.plan_launch_script(path)
  plan = launch_script.plan_launch_script(path, resume_step=7500)
  assert plan.data_parallel_size == 16 and plan.accumulation_steps == 128
  training = _read(os.path.join(BING, "bert_large_mixed_seq.json"))[
    "mixed_seq_training"
  ]["512"]
  # The weight decay of the cf section, not the ds_config's.
  assert plan.optimizer.weight_decay == 0.02
  _assert_rates(
    plan.learning_rate,
    training,
    "LE",
    0.0,
    np.arange(7500, 7500 + 8000),
    restore=7500,
  )


@pytest.mark.parametrize(
  "lr_schedule,offset", [("LE", 0.0), ("EP", 2e-5), ("EE", 1e-4), ("XX", 0.0)]
)
@pytest.mark.parametrize("seq", [128, 512])
def test_every_schedule_of_both_cf_files(lr_schedule, offset, seq):
  for name in ("bert_large_mixed_seq.json", "bert_base_mixed_seq.json"):
    cf = _read(os.path.join(BING, name))
    training = cf["mixed_seq_training"][str(seq)]
    plan = bing_bert.plan_bing_bert(
      cf,
      os.path.join(BING, "ds_lamb_bsz64k_seq128.json"),
      max_seq_length=seq,
      lr_schedule=lr_schedule,
      lr_offset=offset,
      data_parallel_size=16,
    )
    total = training["total_training_steps"]
    warmup_end = math.ceil(training["warmup_proportion"] * total)
    # Boundaries: step 0, the warmup edge +-1, the last step; EP stops at the
    # end (its (1 - x) ** 2 rises again past it, held at 0 here).
    steps = sorted(
      {0, 1, warmup_end - 1, warmup_end, warmup_end + 1, total - 1, total}
      | set(range(0, total, 97))
    )
    if lr_schedule != "EP":
      steps += [total + 1, total + 1000]
    _assert_rates(plan.learning_rate, training, lr_schedule, offset, steps)


def test_unknown_program_is_named():
  with pytest.raises(ValueError, match=r"'train_bert_ds\.py'"):
    launch_script.from_launch_script(
      os.path.join(FIXTURES, "hello", "run_ds.sh")
    )


def test_megatron_launch_goes_to_the_megatron_planner():
  path = os.path.join(FIXTURES, "megatron", "pretrain_gpt_iters.sh")
  command = launch_script.parse_launch_script(path)
  assert command.launcher == "torchrun" and command.data_parallel_size == 2
  assert command.program_name == "pretrain_gpt.py"
  plan = launch_script.plan_launch_script(path)
  with open(path, encoding="utf-8") as f:
    direct = megatron.plan_megatron_args(f.read(), data_parallel_size=2)
  assert plan.accumulation_steps == direct.accumulation_steps == 2
  assert plan.lr_schedule == direct.lr_schedule
  assert plan.wd_schedule == direct.wd_schedule


@pytest.mark.parametrize(
  "text,launcher,program,dp,args",
  [
    ("python3 -u train.py --a 1\n", "python", "train.py", 1, ("--a", "1")),
    (
      "python -m torch.distributed.launch --nproc_per_node=4 --nnodes=2 "
      "x/t.py --b\n",
      "torch.distributed.launch",
      "x/t.py",
      8,
      ("--b",),
    ),
    (
      "python -m torch.distributed.run --nproc-per-node 2 t.py\n",
      "torch.distributed.run",
      "t.py",
      2,
      (),
    ),
    (
      "torchrun --standalone --nproc_per_node=3 t.py --c='x y'\n",
      "torchrun",
      "t.py",
      3,
      ("--c=x y",),
    ),
    ("deepspeed --include localhost:0,1,3 t.py\n", "deepspeed", "t.py", 3, ()),
    (
      "deepspeed t.py --x 2>&1 | tee log.txt\n",
      "deepspeed",
      "t.py",
      None,
      ("--x",),
    ),
    (
      "A=1\nexport B=${A}0 C=$A\nmkdir -p out; cd out\n"
      "deepspeed --num_gpus=$B t.py --v $C --w ${D:-dflt} '$A'\n",
      "deepspeed",
      "t.py",
      10,
      ("--v", "1", "--w", "dflt", "$A"),
    ),
    (
      'DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)\n'
      "python $DIR/t.py  # comment # more\n",
      "python",
      "{dir}/t.py",
      1,
      (),
    ),
    (
      "ARGS=(\n  --a 1  # one\n  --b 'x y'\n)\nEMPTY=()\n"
      'torchrun --nproc_per_node 2 t.py ${ARGS[@]} "${ARGS[@]}" '
      '"${EMPTY[@]}" "$@" $ARGS\n',
      "torchrun",
      "t.py",
      2,
      ("--a", "1", "--b", "x y", "--a", "1", "--b", "x y", "--a"),
    ),
  ],
)
def test_launch_script_shapes(tmp_path, text, launcher, program, dp, args):
  script = tmp_path / "run.sh"
  script.write_text("#!/bin/bash\n# header\n" + text)
  command = launch_script.parse_launch_script(script)
  assert command.launcher == launcher
  assert command.program == program.format(dir=str(tmp_path))
  assert command.data_parallel_size == dp
  assert command.args == args


def test_launch_script_errors(tmp_path):
  with pytest.raises(ValueError, match="cannot be read"):
    launch_script.parse_launch_script(tmp_path / "missing.sh")
  script = tmp_path / "run.sh"
  script.write_text("echo hello\nls\n")
  with pytest.raises(ValueError, match="no training command"):
    launch_script.parse_launch_script(script)
  script.write_text("deepspeed t.py --cf 'unbalanced\n")
  with pytest.raises(ValueError, match="cannot split"):
    launch_script.parse_launch_script(script)


def test_bing_bert_errors_name_the_key():
  cf = _read(os.path.join(BING, "bert_large_mixed_seq.json"))
  ds = os.path.join(BING, "ds_lamb_bsz64k_seq128.json")
  with pytest.raises(ValueError, match=r"max_seq_length=256.*128, 512"):
    bing_bert.plan_bing_bert(cf, ds, max_seq_length=256)
  broken = json.loads(json.dumps(cf))
  del broken["mixed_seq_training"]["128"]["decay_rate"]
  with pytest.raises(ValueError, match="decay_rate"):
    bing_bert.plan_bing_bert(broken, ds, max_seq_length=128)
  bing_bert.plan_bing_bert(broken, ds, max_seq_length=128, lr_schedule="EP")
  with pytest.raises(ValueError, match="data_parallel_size"):
    bing_bert.plan_bing_bert(cf, ds, max_seq_length=128, data_parallel_size=3)
  with pytest.raises(ValueError, match="lr_offset"):
    bing_bert.plan_bing_bert(cf, ds, max_seq_length=128, lr_offset="1e-3")


def test_onebit_adam_launch_freezes_the_variance():
  plan = launch_script.plan_launch_script(
    os.path.join(BING, "onebit", "launch_onebitadam_seq128.sh")
  )
  assert plan.optimizer.name == "OneBitAdam" and plan.data_parallel_size == 32
  assert plan.accumulation_steps == 8
  tx = bing_bert.plan_bing_bert(
    os.path.join(BING, "bert_large_mixed_seq.json"),
    dict(
      _read(os.path.join(BING, "onebit", "ds_onebitadam_bsz4k_seq128.json")),
      train_batch_size=16,
      optimizer={
        "type": "OneBitAdam",
        "params": {"lr": 4e-4, "freeze_step": 3},
      },
    ),
    max_seq_length=128,
  ).build()
  params = {"w": jnp.ones(2)}
  state = tx.init(params)
  nus = []
  for k in range(6):
    _, state = tx.update({"w": jnp.full(2, 0.1 * (k + 1))}, state, params)
    leaf = [
      s
      for s in jax.tree.leaves(
        state,
        is_leaf=lambda s: isinstance(
          s, bertadam_optax.transforms.ScaleByOneBitAdamState
        ),
      )
      if isinstance(s, bertadam_optax.transforms.ScaleByOneBitAdamState)
    ]
    nus.append(float(leaf[0].nu["w"][0]))
  assert nus[0] == 0.0 and nus[1] > 0.0 and nus[2] > nus[1]
  assert nus[3] == nus[4] == nus[5] == nus[2]


def test_bing_bert_mask_on_torch_and_flax_names():
  torch_names = [
    "bert.embeddings.word_embeddings.weight",
    "bert.embeddings.LayerNorm.weight",
    "bert.embeddings.LayerNorm.bias",
    "bert.encoder.layer.0.attention.ds_layer.attn_qkvw",
    "bert.encoder.layer.0.attention.ds_layer.attn_qkvb",
    "bert.encoder.layer.0.attention.ds_layer.attn_nw",
    "bert.encoder.layer.0.attention.ds_layer.norm_w",
    "bert.encoder.layer.0.attention.ds_layer.inter_w",
    "bert.encoder.layer.0.attention.ds_layer.inter_b",
    "cls.predictions.bias",
    "my_bias_free.weight",
  ]
  no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight"]
  kernel = [
    *no_decay,
    "attn_nw",
    "attn_nb",
    "norm_w",
    "norm_b",
    "attn_qkvb",
    "attn_ob",
    "inter_b",
    "output_b",
  ]
  for flag, rule in ((False, no_decay), (True, kernel)):
    mask = masks.bing_bert_weight_decay_mask(
      dict.fromkeys(torch_names, 0.0), deepspeed_transformer_kernel=flag
    )
    assert mask == {n: not any(nd in n for nd in rule) for n in torch_names}
  flax = {
    "bert": {
      "embeddings": {
        "LayerNorm": {"scale": 0.0, "bias": 0.0},
        "word_embeddings": {"embedding": 0.0},
      },
      "encoder": {
        "LayerNorm_3": {"scale": 0.0},
        "Dense_0": {"kernel": 0.0, "bias": 0.0},
      },
    }
  }
  assert masks.bing_bert_weight_decay_mask(flax) == {
    "bert": {
      "embeddings": {
        "LayerNorm": {"scale": False, "bias": False},
        "word_embeddings": {"embedding": True},
      },
      "encoder": {
        "LayerNorm_3": {"scale": False},
        "Dense_0": {"kernel": True, "bias": False},
      },
    }
  }
  with pytest.raises(ValueError, match="deepspeed_transformer_kernel"):
    masks.bing_bert_weight_decay_mask(deepspeed_transformer_kernel="yes")


def test_every_bing_bert_fixture_builds_and_steps():
  for name, dp in (
    ("launch_lamb_seq128.sh", 1024),
    ("launch_adam_fp32.sh", 8),
    (os.path.join("onebit", "launch_onebitadam_seq128.sh"), 256),
  ):
    tx = launch_script.from_launch_script(
      os.path.join(BING, name), data_parallel_size=dp
    )
    params = {"bert.pooler.dense.weight": jnp.ones(2), "x.bias": jnp.ones(2)}
    updates, _ = tx.update(params, tx.init(params), params)
    np.testing.assert_array_equal(updates["bert.pooler.dense.weight"], 0.0)
  tx = launch_script.from_launch_script(
    os.path.join(BING, "launch_lamb_seq512.sh"), resume_step=10
  )
  assert isinstance(tx, optax.GradientTransformation)
  for name, dp in (
    ("ds_zerooneadam_bsz4k_seq128.json", 256),
    ("ds_onebitadam_bsz4k_seq128.json", 256),
    ("ds_onebitlamb_bsz64k_seq128.json", 1024),
  ):
    tx = bing_bert.from_bing_bert(
      os.path.join(BING, "bert_large_mixed_seq.json"),
      os.path.join(BING, "onebit", name),
      max_seq_length=128,
      data_parallel_size=dp,
    )
    params = {"w": jnp.ones(3)}
    _, state = tx.update(params, tx.init(params), params)
    assert jax.tree.leaves(state)


@pytest.mark.parametrize(
  "script,dp", [("launch_lamb_seq128.sh", 512), ("launch_adam_fp32.sh", 4)]
)
def test_printed_source_builds_the_same_optimizer(script, dp):
  plan = launch_script.plan_launch_script(
    os.path.join(BING, script), data_parallel_size=dp
  )
  lines = plan.describe()
  assert lines[0].startswith("source:") and "bing_bert" in lines[0]
  assert any(line.startswith("frozen:") for line in lines)
  namespace = {}
  exec(plan.to_source(), namespace)
  params = {
    "bert.encoder.dense.weight": jnp.full((2, 2), 0.5),
    "bert.encoder.dense.bias": jnp.ones(2),
    "bert.pooler.dense.weight": jnp.ones((2, 2)),
  }
  results = []
  for tx in (plan.build(), namespace["optimizer"]):
    state = tx.init(params)
    p = params
    for k in range(2 * plan.accumulation_steps):
      grads = jax.tree.map(lambda x, k=k: (k + 1.0) * jnp.ones_like(x), p)
      updates, state = tx.update(grads, state, p)
      p = optax.apply_updates(p, updates)
    results.append(p)
  chex.assert_trees_all_equal(*results)
  np.testing.assert_array_equal(results[0]["bert.pooler.dense.weight"], 1.0)


@pytest.mark.parametrize(
  "path,dp",
  [
    (os.path.join(BING, "ds_lamb_bsz64k_seq128.json"), 1024),
    (os.path.join(BING, "ds_lamb_bsz32k_seq512.json"), 16),
    (os.path.join(BING, "ds_adam_fp32_seq128.json"), 1),
    (os.path.join(BING, "onebit", "ds_onebitadam_bsz4k_seq128.json"), 256),
    (os.path.join(BING, "onebit", "ds_zerooneadam_bsz4k_seq128.json"), 256),
    (os.path.join(BING, "onebit", "ds_onebitlamb_bsz64k_seq128.json"), 1024),
    (os.path.join(FIXTURES, "squad", "ds_adam_bsz24.json"), 1),
    (os.path.join(FIXTURES, "squad", "ds_onebitadam_bsz96.json"), 32),
  ],
)
def test_every_ds_config_fixture_ports_through_the_api(path, dp):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    plan = plan_deepspeed_config(path, data_parallel_size=dp)
  tx = plan.build()
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  for _ in range(2 * plan.accumulation_steps):
    updates, state = tx.update(params, state, params)
    params = optax.apply_updates(params, updates)
  assert np.all(np.isfinite(params["w"]))
