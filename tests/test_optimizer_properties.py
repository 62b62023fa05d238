"""Properties every public optimizer factory keeps, as optax's ``alias_test``.

Every factory of the package (``bertadam`` in each clip mode, with and without
a schedule and a mask; ``flat_bertadam``; the transforms; the loss-driven
stages; and what the DeepSpeed, transformers and Megatron-LM readers build) is
run through the same checks on a tiny tree for a few steps:

* a jitted step gives the eager step's updates and state (within 1 ulp);
* the jitted step traces once while the count changes
  (``chex.assert_max_traces``);
* ``optax.inject_hyperparams`` of the learning rate / weight decay gives the
  static factory's updates;
* bfloat16 parameters train (finite, dtypes kept) with float32 moments;
* with ``jax_enable_x64`` on, no float64 enters the step's jaxpr;
* on 8 (fake CPU) devices, in a subprocess, a sharded step gives the
  one-device updates and every moment keeps its parameter's sharding;
* the learning rate (weight decay) the next update applies is readable from
  the state with ``get_lr`` (``get_weight_decay``), also under jit.

Loss-driven factories get the loss as ``value=``; the others ignore it
(``optax.with_extra_args_support``).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax
from bertadam_optax import flatten
from bertadam_optax import interop
from bertadam_optax import masks
from bertadam_optax import transforms

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 3
LOSSES = (1.0, 0.8, 0.9, 1.2, 1.3)
# Leading axes of 16 split over 8 devices; ``b`` is 1-D (no decay for the
# Megatron and BERT masks).
SHAPES = {"w": (16, 4), "b": (16,)}


def tree_params(dtype=jnp.float32) -> dict[str, jax.Array]:
  rng = np.random.default_rng(0)
  return {k: jnp.asarray(rng.normal(size=s), dtype) for k, s in SHAPES.items()}


def tree_grads(i: int, dtype=jnp.float32) -> dict[str, jax.Array]:
  rng = np.random.default_rng(100 + i)
  # Large enough that clipping at 1.0 is active on some steps.
  return {
    k: jnp.asarray(rng.normal(size=s) * (0.5 + i), dtype)
    for k, s in SHAPES.items()
  }


class Case(NamedTuple):
  """One factory: how to build it, and which properties apply."""

  make: Callable[[], optax.GradientTransformation]
  # For the packed path: the layout the parameters are packed with (then
  # ``make`` takes it).
  layout: Callable[[Any], Any] | None = None
  # inject_hyperparams: (factory, static kwargs, injected names, static_args)
  inject: tuple | None = None
  reads: str | None = "lr"  # "lr", "wd" or None: what the state exposes


def _quiet(fn):
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      return fn(*args, **kwargs)

  return wrapped


def _ds(optimizer: dict, **extra) -> Callable[[], optax.GradientTransformation]:
  return _quiet(
    lambda: interop.from_deepspeed_config(
      {"optimizer": optimizer, **extra},
      weight_decay_mask=(masks.bert_weight_decay_mask),
    )
  )


_WARMUP_DECAY = {
  "type": "WarmupDecayLR",
  "params": {
    "warmup_min_lr": 0.0,
    "warmup_max_lr": 1e-2,
    "warmup_num_steps": 2,
    "total_num_steps": 10,
  },
}
_ONE_CYCLE = {
  "type": "OneCycle",
  "params": {
    "cycle_min_lr": 1e-3,
    "cycle_max_lr": 1e-2,
    "cycle_first_step_size": 2,
    "cycle_min_mom": 0.85,
    "cycle_max_mom": 0.95,
  },
}


def _trainer(**fields) -> Callable[[], optax.GradientTransformation]:
  return _quiet(
    lambda: interop.from_training_arguments(
      {
        "learning_rate": 1e-2,
        "weight_decay": 0.01,
        "warmup_steps": 2,
        **fields,
      },
      num_training_steps=10,
    )
  )


def _megatron(args: str) -> Callable[[], optax.GradientTransformation]:
  return _quiet(lambda: interop.from_megatron_args(args))


def _bertadam(clip, schedule, mask, **kwargs):
  sched = dict(warmup=0.2, t_total=10) if schedule else dict(schedule=None)
  wd_mask = masks.bert_weight_decay_mask if mask else None
  make = _quiet(
    lambda: bertadam_optax.bertadam(
      1e-2, **sched, clip=clip, weight_decay_mask=wd_mask, **kwargs
    )
  )
  static = {
    "warmup": -1,
    "t_total": -1,
    **sched,
    "clip": clip,
    "weight_decay_mask": wd_mask,
    **kwargs,
  }
  inject = (
    bertadam_optax.bertadam,
    static,
    {"lr": 1e-2, "weight_decay": 0.01},
    tuple(static),
  )
  return Case(make, inject=inject)


_FLAT_MASK = {"w": True, "b": False}


def _flat(clip):
  def layout(params):
    return flatten.layout_of(params, _FLAT_MASK)

  static = dict(layout=layout(tree_params()), warmup=0.2, t_total=10, clip=clip)
  return Case(
    _quiet(
      lambda lay: flatten.flat_bertadam(
        lay, 1e-2, warmup=0.2, t_total=10, clip=clip
      )
    ),
    layout=layout,
    inject=(
      flatten.flat_bertadam,
      static,
      {"lr": 1e-2, "weight_decay": 0.01},
      tuple(static),
    ),
  )


CASES: dict[str, Case] = {
  "bertadam-per_tensor-schedule-mask": _bertadam("per_tensor", True, True),
  "bertadam-per_tensor-constant": _bertadam("per_tensor", False, False),
  "bertadam-global-schedule": _bertadam("global", True, False),
  "bertadam-none-constant-mask": _bertadam("none", False, True),
  "bertadam-bias_correction-bf16mu": _bertadam(
    "per_tensor", True, False, bias_correction=True, mu_dtype=jnp.bfloat16
  ),
  "flat_bertadam-per_tensor": _flat("per_tensor"),
  "flat_bertadam-global": _flat("global"),
  "scale_by_adam_torch": Case(
    lambda: transforms.scale_by_adam_torch(eps_inside_sqrt=True), reads=None
  ),
  "scale_by_bertadam": Case(transforms.scale_by_bertadam, reads=None),
  "scale_by_fused_lamb": Case(
    lambda: transforms.scale_by_fused_lamb(
      weight_decay=0.01, weight_decay_mask={"w": True, "b": False}
    ),
    inject=(
      transforms.scale_by_fused_lamb,
      {"weight_decay_mask": {"w": True, "b": False}},
      {"weight_decay": 0.01},
      ("weight_decay_mask",),
    ),
    reads=None,
  ),
  "scale_by_adagrad_torch": Case(
    lambda: transforms.scale_by_adagrad_torch(0.1), reads=None
  ),
  "reduce_lr_on_plateau": Case(
    lambda: transforms.reduce_lr_on_plateau(1e-2, factor=0.5, patience=0),
    # optax.inject_hyperparams also injects the defaults: the integer
    # counts are listed as static (a traced one fails check_int).
    inject=(
      transforms.reduce_lr_on_plateau,
      {"factor": 0.5, "patience": 0},
      {"learning_rate": 1e-2},
      ("factor", "patience", "cooldown", "mode", "threshold_mode"),
    ),
  ),
  "greedy-smooth": Case(
    lambda: transforms.greedy(
      1e-2, factor=0.5, patience=0, min_lr=1e-4, smooth=True, window_size=3
    )
  ),
  "add_scheduled_decayed_weights": Case(
    lambda: optax.chain(
      transforms.add_scheduled_decayed_weights(
        lambda count: jnp.float32(0.01) * (count + 1),
        mask={"w": True, "b": False},
      ),
      transforms.scale_by_learning_rate(1e-2),
    ),
    reads="wd",
  ),
  "scale_by_learning_rate": Case(
    lambda: transforms.scale_by_learning_rate(1e-2),
    inject=(transforms.scale_by_learning_rate, {}, {"learning_rate": 1e-2}, ()),
  ),
  "ds-Adam": Case(
    _ds(
      {"type": "Adam", "params": {"lr": 1e-2, "weight_decay": 0.01}},
      gradient_clipping=1.0,
    )
  ),
  "ds-AdamW-WarmupDecayLR": Case(
    _ds(
      {"type": "AdamW", "params": {"lr": 1e-2, "weight_decay": 0.01}},
      scheduler=_WARMUP_DECAY,
    )
  ),
  "ds-Adam-torch-accumulation": Case(
    _ds(
      {"type": "Adam", "params": {"lr": 1e-2, "torch_adam": True}},
      train_batch_size=4,
      train_micro_batch_size_per_gpu=2,
    )
  ),
  "ds-Lamb-OneCycle": Case(
    _ds(
      {"type": "Lamb", "params": {"lr": 1e-2, "weight_decay": 0.01}},
      scheduler=_ONE_CYCLE,
    )
  ),
  "ds-Lion": Case(
    _ds({"type": "Lion", "params": {"lr": 1e-3, "weight_decay": 0.01}})
  ),
  "ds-Adagrad-accumulation": Case(
    _ds(
      {"type": "Adagrad", "params": {"lr": 1e-2}},
      gradient_accumulation_steps=2,
      scheduler=_WARMUP_DECAY,
    )
  ),
  "ds-OneBitAdam": Case(
    _ds({"type": "OneBitAdam", "params": {"lr": 1e-2, "weight_decay": 0.01}})
  ),
  "ds-OneBitAdam-freeze": Case(
    _ds(
      {
        "type": "OneBitAdam",
        "params": {"lr": 1e-2, "weight_decay": 0.01, "freeze_step": 2},
      }
    )
  ),
  "ds-ZeroOneAdam-WarmupDecayLR": Case(
    _ds(
      {
        "type": "ZeroOneAdam",
        "params": {
          "lr": 1e-2,
          "weight_decay": 0.01,
          "var_freeze_step": 2,
          "local_step_scaler": 2,
        },
      },
      scheduler=_WARMUP_DECAY,
    )
  ),
  "ds-OneBitLamb-freeze": Case(
    _ds(
      {
        "type": "OneBitLamb",
        "params": {"lr": 1e-2, "weight_decay": 0.01, "freeze_step": 2},
      },
      gradient_clipping=1.0,
    )
  ),
  "bing_bert-Lamb-EE": Case(
    _quiet(
      lambda: interop.from_bing_bert(
        {
          "mixed_seq_training": {
            "128": {
              "learning_rate": 1e-2,
              "warmup_proportion": 0.1,
              "total_training_steps": 20,
              "decay_rate": 0.9,
              "decay_step": 5,
            }
          }
        },
        {
          "train_batch_size": 4,
          "train_micro_batch_size_per_gpu": 2,
          "gradient_clipping": 1.0,
          "fp16": {"enabled": True},
          "optimizer": {"type": "Lamb", "params": {"lr": 1e-2}},
        },
        max_seq_length=128,
        lr_schedule="EE",
        lr_offset=1e-4,
      )
    )
  ),
  "trainer-adamw_torch-linear": Case(_trainer(optim="adamw_torch")),
  "trainer-sgd-cosine-accumulation": Case(
    _trainer(
      optim="sgd",
      lr_scheduler_type="cosine",
      optim_args="momentum=0.9",
      gradient_accumulation_steps=2,
    )
  ),
  "trainer-adagrad-constant": Case(
    _trainer(optim="adagrad", lr_scheduler_type="constant_with_warmup")
  ),
  "trainer-reduce_lr_on_plateau": Case(
    _trainer(lr_scheduler_type="reduce_lr_on_plateau")
  ),
  "megatron-iterations": Case(
    _megatron(
      "--micro-batch-size 2 --global-batch-size 4 --train-iters 10 "
      "--lr 1e-2 --min-lr 1e-3 --lr-decay-style cosine --lr-warmup-iters 2 "
      "--weight-decay 0.1 --clip-grad 1.0"
    )
  ),
  "megatron-samples": Case(
    _megatron(
      "--micro-batch-size 4 --train-samples 40 --lr 1e-2 "
      "--lr-warmup-samples 8 --lr-decay-style linear "
      "--start-weight-decay 0.01 --end-weight-decay 0.1 "
      "--weight-decay-incr-style linear"
    )
  ),
}
IDS = sorted(CASES)
INJECTED = sorted(k for k, c in CASES.items() if c.inject)


# --- running a factory ------------------------------------------------------


def setup(case: Case, dtype=jnp.float32):
  """(tx, params, grads of every step, pack) for ``case``."""
  params = tree_params(dtype)
  grads = [tree_grads(i, dtype) for i in range(STEPS)]
  if case.layout is None:
    tx = optax.with_extra_args_support(case.make())
  else:
    layout = case.layout(params)
    tx = optax.with_extra_args_support(case.make(layout))
    pack = functools.partial(flatten.pack, layout)
    params, grads = pack(params), [pack(g) for g in grads]
  return tx, params, grads


def make_step(tx):
  def step(params, state, grads, loss):
    updates, state = tx.update(grads, state, params, value=loss)
    return optax.apply_updates(params, updates), state, updates

  return step


def run(tx, params, grads, step=None):
  """Every step's (params, state, updates), from the same starting state."""
  step = step or make_step(tx)
  state = tx.init(params)
  out = []
  for i, g in enumerate(grads):
    params, state, updates = step(params, state, g, jnp.float32(LOSSES[i]))
    out.append((params, state, updates))
  return out


def float_leaves(tree) -> list[np.ndarray]:
  return [
    np.asarray(x)
    for x in jax.tree.leaves(tree)
    if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
  ]


def assert_within_ulp(a, b, ulps=1, what=""):
  """Every float leaf of ``a`` within ``ulps`` units in the last place of ``b``.

  The unit is that of the element, or of the largest element of its tensor
  where the element is a small difference of large terms. XLA:CPU contracts
  ``a * b + c`` (``b2 * v + (1 - b2) g^2``, ``u + lambda p``) into one fused
  multiply-add under jit, rounded once where the eager ops round twice: 1 ulp
  per contraction, which the square root and division after it carry, so a
  jitted step is within a few ulps of the eager one, not bit-identical.
  """
  chex.assert_trees_all_equal_structs(a, b)
  for x, y in zip(float_leaves(a), float_leaves(b), strict=True):
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    spacing = np.spacing(np.maximum(np.abs(x32), np.abs(y32)))
    scale = np.spacing(np.max(np.abs(y32), initial=0.0))
    ok = (np.abs(x32 - y32) <= ulps * np.maximum(spacing, scale)) | (x32 == y32)
    assert ok.all(), (what, x32[~ok][:5], y32[~ok][:5])


# Measured: at most 3 (Adam's bias correction, global clips, Lamb).
JIT_ULPS = 4
# Ports whose moments follow bfloat16 parameters (none: DeepSpeed Lion sets
# optax.scale_by_lion's mu_dtype to float32, as every other port keeps).
BF16_MOMENTS = ()


# --- the properties ---------------------------------------------------------


@pytest.mark.parametrize("name", IDS)
def test_jit_equals_eager(name):
  tx, params, grads = setup(CASES[name])
  step = make_step(tx)
  eager = run(tx, params, grads, step)
  jitted = jax.jit(step)
  state = tx.init(params)
  for i, g in enumerate(grads):
    # From the eager run's state, so one step's rounding is all that differs.
    got = jitted(params, state, g, jnp.float32(LOSSES[i]))
    assert_within_ulp(got, eager[i], ulps=JIT_ULPS, what=f"step {i}")
    params, state, _ = eager[i]


@pytest.mark.parametrize("name", IDS)
def test_no_retrace_as_the_count_changes(name):
  tx, params, grads = setup(CASES[name])
  chex.clear_trace_counter()
  step = jax.jit(chex.assert_max_traces(make_step(tx), n=1))
  state = tx.init(params)
  for i, g in enumerate(grads):
    params, state, _ = step(params, state, g, jnp.float32(LOSSES[i]))
  assert int(jax.tree.leaves(state)[0].size) >= 0


@pytest.mark.parametrize("name", INJECTED)
def test_inject_hyperparams_equals_static(name):
  case = CASES[name]
  factory, static, injected, static_args = case.inject
  tx_inj = optax.with_extra_args_support(
    optax.inject_hyperparams(_quiet(factory), static_args=static_args)(
      **static, **injected
    )
  )
  tx, params, grads = setup(case)
  static_run = run(tx, params, grads, jax.jit(make_step(tx)))
  injected_run = run(tx_inj, params, grads, jax.jit(make_step(tx_inj)))
  for i in range(STEPS):
    # Static hyperparameters are Python floats, injected ones float32 arrays:
    # the same float32 arithmetic up to where the constant is rounded.
    chex.assert_trees_all_close(
      injected_run[i][2], static_run[i][2], rtol=2e-5, atol=1e-8
    )
  state = injected_run[-1][1]
  for key, value in injected.items():
    assert float(state.hyperparams[key]) == pytest.approx(value, rel=1e-6)


@pytest.mark.parametrize("name", IDS)
def test_bf16_params_keep_dtypes_with_float32_moments(name):
  tx, params, grads = setup(CASES[name], jnp.bfloat16)
  out = run(tx, params, grads, jax.jit(make_step(tx)))
  new_params, state, _ = out[-1]
  for p in jax.tree.leaves(new_params):
    assert p.dtype == jnp.bfloat16
    assert np.isfinite(np.asarray(p, np.float32)).all()
  shapes = {tuple(p.shape) for p in jax.tree.leaves(params)}
  moments = [
    x
    for x in jax.tree.leaves(state)
    if tuple(x.shape) in shapes
    and x.ndim > 0
    and jnp.issubdtype(x.dtype, jnp.floating)
  ]
  # bf16 moments by request (mu_dtype), or a port listed in BF16_MOMENTS.
  bf16_mu = name in ("bertadam-bias_correction-bf16mu", *BF16_MOMENTS)
  for x in moments:
    # Accumulated gradients (MultiSteps) keep the gradients' dtype.
    assert x.dtype == jnp.float32 or (
      x.dtype == jnp.bfloat16 and (bf16_mu or "accumulation" in name)
    ), (name, x.dtype, x.shape)
  if name in BF16_MOMENTS:
    # Exact: when the port keeps float32 moments, drop it from BF16_MOMENTS.
    assert moments and all(x.dtype == jnp.bfloat16 for x in moments), name
  elif not name.startswith(
    ("reduce", "greedy", "scale_by_learning_rate", "add_scheduled")
  ):
    assert any(x.dtype == jnp.float32 for x in moments), name


@pytest.mark.parametrize("name", IDS)
def test_no_float64_with_x64_enabled(name):
  with jax.enable_x64(True):
    tx, params, grads = setup(CASES[name])
    state = tx.init(params)
    jaxpr = jax.make_jaxpr(make_step(tx))(
      params, state, grads[0], jnp.float32(LOSSES[0])
    )
    init_jaxpr = jax.make_jaxpr(tx.init)(params)
  for text in (str(jaxpr), str(init_jaxpr)):
    assert "f64" not in text, text[:2000]


def _reader(case: Case):
  return (
    bertadam_optax.get_lr if case.reads == "lr" else transforms.get_weight_decay
  )


@pytest.mark.parametrize("name", [n for n in IDS if CASES[n].reads])
def test_rate_readable_from_the_state(name):
  case = CASES[name]
  read = _reader(case)
  tx, params, grads = setup(case)
  state = tx.init(params)
  values = [float(read(state))]
  step = jax.jit(make_step(tx))
  for i, g in enumerate(grads):
    params, state, _ = step(params, state, g, jnp.float32(LOSSES[i]))
    values.append(float(read(state)))
    assert float(jax.jit(read)(state)) == values[-1]
  assert all(np.isfinite(values)) and min(values) >= 0, values


@pytest.mark.parametrize("name", [n for n in IDS if not CASES[n].reads])
def test_transform_without_rate_says_so(name):
  tx, params, _ = setup(CASES[name])
  with pytest.raises(ValueError, match="learning-rate stage"):
    bertadam_optax.get_lr(tx.init(params))


# --- 8 devices --------------------------------------------------------------

_SHARDED = r"""
import json, sys, warnings
import jax, jax.numpy as jnp, numpy as np, optax
from jax.sharding import NamedSharding, PartitionSpec as P
warnings.simplefilter("ignore")
from tests import test_optimizer_properties as t

mesh = jax.make_mesh((8,), ("x",))
def spec(x):
  return NamedSharding(mesh, P("x") if x.shape[0] % 8 == 0 else P())
report = {"devices": jax.device_count()}
for name in t.IDS:
  tx, params, grads = t.setup(t.CASES[name])
  step = jax.jit(t.make_step(tx))
  single = t.run(tx, params, grads, step)
  shard = lambda tree: jax.tree.map(lambda x: jax.device_put(x, spec(x)), tree)
  sharded = t.run(tx, shard(params), [shard(g) for g in grads], step)
  diff = max(float(np.max(np.abs(np.asarray(a, np.float32) -
                                 np.asarray(b, np.float32)) /
                          (np.abs(np.asarray(b, np.float32)) + 1e-6)))
             for i in range(t.STEPS)
             for a, b in zip(jax.tree.leaves(sharded[i][2]),
                             jax.tree.leaves(single[i][2])))
  p_spec = {tuple(x.shape): x.sharding for x in jax.tree.leaves(shard(params))}
  state = sharded[-1][1]
  moments = [x for x in jax.tree.leaves(state)
             if x.ndim and tuple(x.shape) in p_spec]
  kept = all(x.sharding.is_equivalent_to(p_spec[tuple(x.shape)], x.ndim)
             for x in moments)
  split = sum(len({str(s.index) for s in x.addressable_shards}) > 1
              for x in moments)
  report[name] = {"diff": diff, "moments": len(moments), "kept": kept,
                  "split": split}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def sharded_report():
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
    PYTHONPATH=str(ROOT),
  )
  out = subprocess.run(
    [sys.executable, "-c", _SHARDED],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert out.returncode == 0, out.stderr[-4000:]
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_sharded_run_uses_8_devices(sharded_report):
  assert sharded_report["devices"] == 8


@pytest.mark.parametrize("name", IDS)
def test_sharded_equals_one_device_and_moments_keep_sharding(
  name, sharded_report
):
  got = sharded_report[name]
  # Norms and sums are reduced across devices in another order.
  assert got["diff"] < 1e-5, got
  assert got["kept"], got
  if not name.startswith(
    (
      "reduce",
      "greedy",
      "scale_by_learning_rate",
      "add_scheduled",
      "flat_bertadam",
    )
  ):
    # Moments of the split parameters are split too, not gathered.
    assert got["moments"] >= 2 and got["split"] >= 1, got
