"""Tests of ``bertadam_optax.alias``: ``bertadam`` and ``get_lr``.

The proof is against the real original: pytorch-pretrained-bert 0.6.2's
``BertAdam`` (the same ``step`` as DeepSpeed's bing_bert fork) fed the same
parameters and gradients, with DeepSpeed's schedules plugged in through an
``_LRSchedule`` object (``tests/bertadam_reference.py``).
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.extend import core as jax_core

import bertadam_optax
from bertadam_optax import bertadam
from bertadam_optax import get_lr
from tests import bertadam_reference
from tests.references import require

LR = 1e-2
LR_OFFSET = 1e-3
T_TOTAL = 40

# Leaf -> (shape, gradient scale). The kernel's gradients always exceed norm 1
# (clipped), the bias's never do; the LayerNorm scale's and the scalar's cross
# the threshold from step to step; the empty tensor must simply survive.
LEAVES = {
  "dense.kernel": ((4, 6), 2.0),
  "dense.bias": ((6,), 0.05),
  "LayerNorm.scale": ((6,), "varying"),
  "scalar": ((), 1.5),
  "empty": ((0, 3), 1.0),
}


def _initial_params(seed=0):
  rng = np.random.RandomState(seed)
  return {
    k: rng.normal(size=shape).astype(np.float32)
    for k, (shape, _) in LEAVES.items()
  }


def _gradients(num_steps, seed=1):
  rng = np.random.RandomState(seed)
  grads = []
  for t in range(num_steps):
    step = {}
    for k, (shape, scale) in LEAVES.items():
      if scale == "varying":
        scale = (0.1, 0.35, 0.8)[t % 3]
      step[k] = (scale * rng.normal(size=shape)).astype(np.float32)
    grads.append(step)
  return grads


def _moments(opt_state):
  found = [
    s
    for s in jax.tree.leaves(
      opt_state,
      is_leaf=lambda n: isinstance(n, bertadam_optax.ScaleByBertAdamState),
    )
    if isinstance(s, bertadam_optax.ScaleByBertAdamState)
  ]
  assert len(found) == 1
  return found[0]


X_BASED = ("warmup_cosine", "warmup_constant", "warmup_linear")
NUM_STEPS = T_TOTAL + 6  # the longest run, past t_total; others use a prefix
GRADS = _gradients(NUM_STEPS)
GRID = list(
  itertools.product(
    X_BASED + ("none",), (-1, 0.1), (-1, T_TOTAL), (0.0, 0.01), (-1, 1.0)
  )
)
STEP_BASED = {
  "warmup_linear_decay_exp": dict(decay_rate=0.5, decay_steps=10),
  "warmup_exp_decay_exp": dict(decay_rate=0.9, decay_steps=3, degree=3.0),
  "warmup_exp_decay_poly": dict(warm_degree=2.0, degree=0.5),
}
PAST_T_TOTAL = (
  "warmup_linear",
  "warmup_cosine",
  "warmup_exp_decay_poly",
  "warmup_constant",
)


def _grid_name(schedule, warmup, t_total, weight_decay, max_grad_norm):
  return f"grid-{schedule}-{warmup}-{t_total}-{weight_decay}-{max_grad_norm}"


# Every run compared with the original: name -> (bertadam kwargs, steps).
PARITY_RUNS = {
  **{
    _grid_name(*c): (
      dict(
        zip(
          ("schedule", "warmup", "t_total", "weight_decay", "max_grad_norm"), c
        )
      ),
      36,
    )
    for c in GRID
  },
  **{
    f"step_based-{s}": (
      dict(schedule=s, warmup=0.1, t_total=T_TOTAL, schedule_kwargs=kw),
      T_TOTAL,
    )
    for s, kw in STEP_BASED.items()
  },
  **{
    f"past-{s}": (dict(schedule=s, warmup=0.1, t_total=T_TOTAL), NUM_STEPS)
    for s in PAST_T_TOTAL
  },
  "global_clip": (dict(schedule="none", clip="global"), 20),
  "lr_offset": (
    dict(
      schedule="warmup_linear_decay_exp",
      warmup=0.1,
      t_total=T_TOTAL,
      schedule_kwargs=dict(
        STEP_BASED["warmup_linear_decay_exp"], lr_offset=LR_OFFSET
      ),
    ),
    T_TOTAL,
  ),
  "mask": (
    dict(
      warmup=0.1,
      t_total=T_TOTAL,
      weight_decay_mask=(bertadam_optax.bert_weight_decay_mask()),
    ),
    30,
  ),
}


def _history(tx, params, grads):
  """``lax.scan`` of the update, as a jitted training loop runs it."""

  def step(carry, g):
    params, opt_state = carry
    updates, opt_state = tx.update(g, opt_state, params)
    params = optax.apply_updates(params, updates)
    m = _moments(opt_state)
    return (params, opt_state), dict(
      params=params,
      next_m=m.mu,
      next_v=m.nu,
      lr=get_lr(opt_state),
      count=m.count,
    )

  return jax.lax.scan(step, (params, tx.init(params)), grads)[1]


@pytest.fixture(scope="module")
def ours():
  """Every parity run's history, from one jitted computation.

  Runs whose programs are identical (with ``t_total=-1`` the schedule and
  warmup are ignored) are computed once: their jaxprs and constants are
  compared. One executable for all keeps the compile cost small.
  """
  params = _initial_params()
  stacked = jax.tree.map(lambda *g: np.stack(g), *GRADS)
  programs = {}
  for name, (kwargs, num_steps) in PARITY_RUNS.items():
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      tx = bertadam(LR, **kwargs)
    grads = jax.tree.map(lambda g, n=num_steps: g[:n], stacked)
    closed, shapes = jax.make_jaxpr(
      functools.partial(_history, tx), return_shape=True
    )(params, grads)
    # Array constants print as names only: their values join the key.
    key = (str(closed),) + tuple(np.asarray(c).tobytes() for c in closed.consts)
    programs.setdefault(key, (closed, shapes, num_steps, []))[3].append(name)

  def run_all(params, stacked):
    outputs = []
    for closed, shapes, num_steps, _ in programs.values():
      grads = jax.tree.map(lambda g, n=num_steps: g[:n], stacked)
      flat = jax_core.jaxpr_as_fun(closed)(*jax.tree.leaves((params, grads)))
      outputs.append(jax.tree.unflatten(jax.tree.structure(shapes), flat))
    return outputs

  outputs = jax.jit(run_all)(params, stacked)
  return {
    name: jax.tree.map(np.asarray, out)
    for (_, _, _, names), out in zip(programs.values(), outputs)
    for name in names
  }


class _TorchBertAdam:
  """pytorch-pretrained-bert 0.6.2's BertAdam on a flat dict of tensors."""

  def __init__(self, params, *, groups=None, global_clip=None, **kwargs):
    torch = require("torch")
    ppb = require("pytorch_pretrained_bert")
    self.torch = torch
    self.global_clip = global_clip
    self.params = {
      k: torch.nn.Parameter(torch.tensor(v)) for k, v in params.items()
    }
    if groups is None:
      groups = [{"params": list(self.params.values())}]
    else:
      groups = [
        dict(g, params=[self.params[k] for k in g["params"]]) for g in groups
      ]
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      self.opt = ppb.BertAdam(groups, **kwargs)

  def step(self, grads):
    for k, p in self.params.items():
      p.grad = self.torch.tensor(grads[k])
    if self.global_clip is not None:
      # DeepSpeed's gradient_clipping: torch's rule over all parameters.
      self.torch.nn.utils.clip_grad_norm_(
        list(self.params.values()), self.global_clip
      )
    with warnings.catch_warnings():
      # 0.6.2 calls the deprecated ``add_(scalar, tensor)`` overload.
      warnings.simplefilter("ignore")
      self.opt.step()

  def numpy(self, what="params"):
    if what == "params":
      return {k: p.detach().numpy().copy() for k, p in self.params.items()}
    return {
      k: self.opt.state[p][what].numpy().copy() for k, p in self.params.items()
    }

  def history(self, num_steps):
    """Params, moments and ``get_lr()[0]`` after each of ``num_steps``."""
    steps = []
    for g in GRADS[:num_steps]:
      self.step(g)
      steps.append(
        dict(
          params=self.numpy("params"),
          next_m=self.numpy("next_m"),
          next_v=self.numpy("next_v"),
          lr=np.float64(self.opt.get_lr()[0]),
        )
      )
    return jax.tree.map(lambda *xs: np.stack(xs), *steps)


def _torch_schedule(schedule, warmup, t_total, **kw):
  if schedule == "none":
    return "none"
  return bertadam_reference.deepspeed_lr_schedule(
    schedule, warmup, t_total, **kw
  )


TOLERANCES = dict(
  params=(1e-5, 1e-7),
  next_m=(1e-5, 1e-7),
  next_v=(1e-5, 1e-11),
  lr=(1e-5, 1e-10),
)


def _assert_same_history(ours, theirs, steps=None):
  """Equal within tolerance after every step; names the first bad step."""
  assert np.array_equal(
    ours["count"][:steps], np.arange(1, len(ours["count"][:steps]) + 1)
  )
  for what, (rtol, atol) in TOLERANCES.items():
    for path, a in jax.tree_util.tree_flatten_with_path(ours[what])[0]:
      b = theirs[what]
      for key in path:
        b = b[key.key]
      a, b = a[:steps], b[:steps]
      bad = ~np.isclose(a, b, rtol=rtol, atol=atol)
      bad = bad.reshape(len(bad), int(np.prod(bad.shape[1:]))).any(axis=1)
      if bad.any():
        k = int(np.argmax(bad))
        raise AssertionError(
          f"{what}{jax.tree_util.keystr(path)} differs from the original "
          f"after step {k + 1}:\nours     {a[k]}\noriginal {b[k]}"
        )


@pytest.mark.parametrize(
  "schedule,warmup,t_total,weight_decay,max_grad_norm", GRID
)
def test_matches_pytorch_pretrained_bert(
  ours, schedule, warmup, t_total, weight_decay, max_grad_norm
):
  name = _grid_name(schedule, warmup, t_total, weight_decay, max_grad_norm)
  torch_opt = _TorchBertAdam(
    _initial_params(),
    lr=LR,
    schedule=_torch_schedule(schedule, warmup, t_total),
    weight_decay=weight_decay,
    max_grad_norm=max_grad_norm,
  )
  _assert_same_history(ours[name], torch_opt.history(PARITY_RUNS[name][1]))
  # The parameters moved far beyond the tolerance: the comparison has teeth.
  moved = (
    ours[name]["params"]["dense.kernel"][-1] - _initial_params()["dense.kernel"]
  )
  assert np.abs(moved).max() > 1e-2


def test_clipping_engages_on_some_tensors_only():
  norms = {k: [float(np.linalg.norm(g[k])) for g in GRADS] for k in LEAVES}
  assert min(norms["dense.kernel"]) > 1.0
  assert max(norms["dense.bias"]) < 1.0
  for k in ("LayerNorm.scale", "scalar"):
    assert min(norms[k]) < 1.0 < max(norms[k])


@pytest.mark.parametrize("schedule", STEP_BASED)
def test_step_based_schedules_through_schedule_kwargs(ours, schedule):
  torch_opt = _TorchBertAdam(
    _initial_params(),
    lr=LR,
    schedule=_torch_schedule(schedule, 0.1, T_TOTAL, **STEP_BASED[schedule]),
  )
  _assert_same_history(
    ours[f"step_based-{schedule}"], torch_opt.history(T_TOTAL)
  )


def test_lr_offset_is_an_absolute_learning_rate(ours):
  # bing_bert sets lr * f + lr_offset; a multiplier f + lr_offset / lr in the
  # original gives exactly that rate.
  kwargs = dict(STEP_BASED["warmup_linear_decay_exp"])
  torch_opt = _TorchBertAdam(
    _initial_params(),
    lr=LR,
    schedule=_torch_schedule(
      "warmup_linear_decay_exp", 0.1, T_TOTAL, offset=LR_OFFSET / LR, **kwargs
    ),
  )
  run = ours["lr_offset"]
  _assert_same_history(run, torch_opt.history(T_TOTAL))
  np.testing.assert_allclose(
    run["lr"][-1], LR * 0.5 ** ((T_TOTAL - 4) / 10) + LR_OFFSET, rtol=1e-6
  )


@pytest.mark.parametrize("schedule", PAST_T_TOTAL)
def test_past_t_total(ours, schedule):
  """Past t_total the decays hold at 0: the documented deviation.

  The original's ``1 - x`` goes negative, its cosine and ``(1 - x) ** p``
  rise again; ``warmup_constant`` has nothing to deviate from.
  """
  torch_opt = _TorchBertAdam(
    _initial_params(), lr=LR, schedule=_torch_schedule(schedule, 0.1, T_TOTAL)
  )
  theirs = torch_opt.history(NUM_STEPS)
  run = ours[f"past-{schedule}"]
  if schedule == "warmup_constant":
    _assert_same_history(run, theirs)
    return
  _assert_same_history(run, theirs, steps=T_TOTAL)
  # Row i holds the state after update i + 1, which ran at count i; get_lr
  # there is the rate of count i + 1. Count t_total has rate 0 in both.
  assert np.all(run["lr"][T_TOTAL - 1 :] == 0.0)
  past = theirs["lr"][T_TOTAL:]
  if schedule == "warmup_linear":
    assert np.all(past < 0)
  else:
    assert np.all(past > 0) and np.all(np.diff(past) > 0)
  for leaf in run["params"].values():  # a zero rate: the parameters hold
    for row in leaf[T_TOTAL:]:
      np.testing.assert_array_equal(row, leaf[T_TOTAL - 1])


def test_get_lr_before_the_first_step_is_the_rate_of_step_zero():
  """The documented deviation: the original answers ``[0]``."""
  params = _initial_params()
  torch_opt = _TorchBertAdam(params, lr=LR, schedule="none")
  assert torch_opt.opt.get_lr() == [0]
  np.testing.assert_allclose(get_lr(bertadam(LR).init(params)), LR, rtol=1e-7)
  warm = bertadam(LR, warmup=0.1, t_total=T_TOTAL).init(params)
  assert float(get_lr(warm)) == 0.0


def test_global_clip_matches_torch_clip_grad_norm_over_all_parameters(ours):
  torch_opt = _TorchBertAdam(
    _initial_params(), lr=LR, schedule="none", max_grad_norm=-1, global_clip=1.0
  )
  _assert_same_history(ours["global_clip"], torch_opt.history(20))


def test_weight_decay_mask_matches_the_original_param_groups(ours):
  params = _initial_params()
  no_decay = [k for k in params if "bias" in k or "LayerNorm" in k]
  torch_opt = _TorchBertAdam(
    params,
    lr=LR,
    schedule=_torch_schedule("warmup_linear", 0.1, T_TOTAL),
    groups=[
      {
        "params": [k for k in params if k not in no_decay],
        "weight_decay": 0.01,
      },
      {"params": no_decay, "weight_decay": 0.0},
    ],
  )
  _assert_same_history(ours["mask"], torch_opt.history(30))


def test_param_groups_match_the_original_with_multi_transform():
  """Two param groups with their own lr and weight decay, on both sides."""
  params = _initial_params()
  no_decay = ["dense.bias", "LayerNorm.scale"]
  torch_opt = _TorchBertAdam(
    params,
    lr=LR,
    schedule=_torch_schedule("warmup_linear", 0.1, T_TOTAL),
    groups=[
      {
        "params": [k for k in params if k not in no_decay],
        "weight_decay": 0.01,
      },
      {"params": no_decay, "weight_decay": 0.0, "lr": LR / 4},
    ],
  )
  tx = optax.multi_transform(
    {
      "decay": bertadam(LR, 0.1, T_TOTAL, weight_decay=0.01),
      "no_decay": bertadam(LR / 4, 0.1, T_TOTAL, weight_decay=0.0),
    },
    {k: "no_decay" if k in no_decay else "decay" for k in params},
  )
  step = jax.jit(lambda p, s, g: tx.update(g, s, p))
  opt_state = tx.init(params)
  for g in GRADS[:12]:
    updates, opt_state = step(params, opt_state, g)
    params = optax.apply_updates(params, updates)
    torch_opt.step(g)
    chex.assert_trees_all_close(
      params, torch_opt.numpy("params"), rtol=1e-5, atol=1e-7
    )
    lrs = get_lr(opt_state)
    assert isinstance(lrs, list) and len(lrs) == 2  # groups in label order
    torch_lrs = torch_opt.opt.get_lr()  # one per parameter, group by group
    np.testing.assert_allclose(lrs, [torch_lrs[0], torch_lrs[-1]], rtol=1e-5)


def test_nan_gradient_propagates_only_into_its_tensor_as_in_torch():
  params = _initial_params()
  grads = [dict(g) for g in GRADS[:2]]
  grads[1]["dense.bias"] = grads[1]["dense.bias"].copy()
  grads[1]["dense.bias"][2] = np.nan
  torch_opt = _TorchBertAdam(params, lr=LR, schedule="none")
  tx = bertadam(LR, schedule="none")
  step = jax.jit(lambda p, s, g: tx.update(g, s, p))
  opt_state = tx.init(params)
  for g in grads:
    updates, opt_state = step(params, opt_state, g)
    params = optax.apply_updates(params, updates)
    torch_opt.step(g)
  theirs = torch_opt.numpy("params")
  for k, leaf in params.items():
    if leaf.size:
      assert (
        np.isnan(leaf).all() == np.isnan(theirs[k]).all() == (k == "dense.bias")
      )
      assert np.isfinite(leaf).all() == (k != "dense.bias")


# Bad input -------------------------------------------------------------------

BAD_INPUT = [
  # (argument, bertadam kwargs, rejected by the original too)
  ("lr", dict(lr=-1e-3), True),
  ("schedule", dict(schedule="warmup_linaer"), True),
  ("warmup", dict(warmup=1.0, t_total=10), True),
  ("warmup", dict(warmup=-0.5, t_total=10), True),
  ("b1", dict(b1=1.0), True),
  ("b1", dict(b1=-0.1), True),
  ("b2", dict(b2=1.0), True),
  ("e", dict(e=-1e-8), True),
  ("weight_decay", dict(weight_decay=-0.01), False),
  ("t_total", dict(t_total=0), False),
  ("t_total", dict(t_total=-2), False),
  ("t_total", dict(t_total=-1, schedule="warmup_exp_decay_poly"), False),
  ("clip", dict(clip="max"), False),
]


@pytest.mark.parametrize("name,kwargs,original_rejects", BAD_INPUT)
def test_bad_input_raises_naming_argument_and_value(
  name, kwargs, original_rejects
):
  kwargs = dict(kwargs)
  lr = kwargs.pop("lr", LR)
  value = kwargs.get(name, lr)
  if name == "t_total" and "schedule" in kwargs:
    pattern = f"t_total=-1 with schedule={kwargs['schedule']!r}"
  else:
    pattern = f"{name}={value!r}"
  with pytest.raises(ValueError, match=re.escape(pattern)) as error:
    bertadam(lr, **kwargs)
  assert "expected" in str(error.value)
  if original_rejects:
    torch = require("torch")
    ppb = require("pytorch_pretrained_bert")
    with pytest.raises(ValueError):
      ppb.BertAdam([torch.nn.Parameter(torch.zeros(2))], lr=lr, **kwargs)


def test_numpy_scalars_are_python_numbers_and_arrays_are_rejected():
  params = _initial_params()
  programs = []
  for warmup, t_total in ((0.1, 40), (np.float64(0.1), np.int64(40))):
    tx = bertadam(LR, warmup=warmup, t_total=t_total)
    programs.append(
      str(jax.make_jaxpr(tx.update)(GRADS[0], tx.init(params), params))
    )
  assert programs[0] == programs[1]
  with pytest.raises(ValueError, match=r"t_total=Array\(40.*static_args"):
    bertadam(LR, t_total=jnp.asarray(40))


def test_unknown_schedule_suggests_the_closest_name():
  with pytest.raises(ValueError, match="Did you mean 'warmup_linear'"):
    bertadam(LR, schedule="warmup_linaer")


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(schedule="warmup_linear", t_total=-1),
    dict(schedule="none", t_total=T_TOTAL),
    dict(schedule=lambda count: 1.0),
  ],
)
def test_unused_schedule_kwargs_are_rejected(kwargs):
  with pytest.raises(ValueError, match="schedule_kwargs="):
    bertadam(LR, schedule_kwargs=dict(lr_offset=1e-5), **kwargs)


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(warmup=0, t_total=T_TOTAL, schedule="warmup_linear"),
    dict(
      warmup=0,
      t_total=T_TOTAL,
      schedule="warmup_linear_decay_exp",
      schedule_kwargs=dict(decay_rate=0.5, decay_steps=10),
    ),
    dict(warmup=0.1, t_total=-1),
    dict(warmup=0.1, t_total=T_TOTAL, schedule=lambda count: 1.0),
  ],
)
def test_surprising_originals_warn_once_at_construction(kwargs):
  params = _initial_params()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tx = bertadam(LR, **kwargs)
  assert len(caught) == 1
  assert caught[0].filename == __file__  # points at the caller's line
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    opt_state = tx.init(params)
    step = jax.jit(tx.update)
    for g in GRADS[:3]:
      _, opt_state = step(g, opt_state, params)
  assert not caught
  # What the warning announces: a constant rate (the callable's is 1 too).
  np.testing.assert_allclose(get_lr(opt_state), LR, rtol=1e-7)


@pytest.mark.parametrize(
  "kwargs",
  [
    dict(),
    dict(warmup=0.1, t_total=T_TOTAL),
    dict(warmup=0, t_total=T_TOTAL, schedule="warmup_cosine"),
  ],
)
def test_no_warning_for_ordinary_settings(kwargs):
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    bertadam(LR, **kwargs)
  assert not caught


# Composition -----------------------------------------------------------------


def _jax_params():
  return jax.tree.map(jnp.asarray, _initial_params())


def _reference_run(tx, grads, params=None):
  params = _jax_params() if params is None else params
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  for g in grads:
    params, opt_state = step(params, opt_state, g)
  return params, opt_state


def test_jit_with_donated_params_and_state():
  tx = bertadam(LR, warmup=0.1, t_total=T_TOTAL)
  grads = GRADS[:5]
  expected, expected_state = _reference_run(tx, grads)

  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  jitted = jax.jit(step, donate_argnums=(0, 1))
  params = _jax_params()
  opt_state = tx.init(params)
  for g in grads:
    old_kernel = params["dense.kernel"]
    params, opt_state = jitted(params, opt_state, g)
  assert old_kernel.is_deleted()
  chex.assert_trees_all_close(params, expected, rtol=1e-5, atol=1e-8)
  chex.assert_trees_all_close(opt_state, expected_state, rtol=1e-5, atol=1e-8)


def test_no_retrace_as_the_count_changes():
  tx = bertadam(LR, warmup=0.1, t_total=T_TOTAL)

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, get_lr(opt_state)

  params = _jax_params()
  opt_state = tx.init(params)
  lrs = []
  for g in GRADS[:6]:
    params, opt_state, lr = step(params, opt_state, g)
    lrs.append(float(lr))
  # get_lr inside jit equals get_lr outside, and follows the warmup.
  assert lrs[-1] == float(get_lr(opt_state))
  expected = [
    LR
    * bertadam_reference.deepspeed_multiplier("warmup_linear", k, T_TOTAL, 0.1)
    for k in range(1, 7)
  ]
  np.testing.assert_allclose(lrs, expected, rtol=1e-6)


def test_multisteps_accumulation_equals_one_step_on_the_mean():
  k = 3
  grads = GRADS[: 2 * k]
  tx = bertadam(LR, warmup=0.1, t_total=T_TOTAL)
  multi = optax.MultiSteps(tx, every_k_schedule=k)
  params = _jax_params()
  opt_state = multi.init(params)
  step = jax.jit(multi.update)
  for g in grads:
    updates, opt_state = step(g, opt_state, params)
    params = optax.apply_updates(params, updates)
  means = [
    jax.tree.map(lambda *gs: sum(gs) / k, *grads[i : i + k]) for i in (0, k)
  ]
  expected, expected_state = _reference_run(tx, means)
  chex.assert_trees_all_close(params, expected, rtol=1e-5, atol=1e-7)
  assert int(_moments(opt_state).count) == 2
  np.testing.assert_allclose(get_lr(opt_state), get_lr(expected_state))


def _f32(x):
  return float(np.float32(x))


# inject_hyperparams stores the numeric hyperparameters as float32 arrays.
_F32_DEFAULTS = dict(b1=_f32(0.9), b2=_f32(0.999), e=_f32(1e-6))


def test_inject_hyperparams_changes_lr_and_weight_decay_mid_run():
  params = _jax_params()
  grads = GRADS[:6]
  tx = optax.inject_hyperparams(bertadam, static_args=("warmup", "t_total"))(
    lr=LR, warmup=0.1, t_total=T_TOTAL, weight_decay=0.01
  )
  opt_state = tx.init(params)
  step = jax.jit(tx.update)
  for i, g in enumerate(grads):
    if i == 3:
      opt_state.hyperparams["lr"] = jnp.asarray(LR / 2)
      opt_state.hyperparams["weight_decay"] = jnp.asarray(0.1)
    updates, opt_state = step(g, opt_state, params)
    params = optax.apply_updates(params, updates)
    np.testing.assert_allclose(
      get_lr(opt_state),
      (LR if i < 3 else LR / 2)
      * bertadam_reference.deepspeed_multiplier(
        "warmup_linear", i + 1, T_TOTAL, 0.1
      ),
      rtol=1e-6,
    )
  # The same run with the hyperparameters fixed per step at construction
  # (rounded to float32, as inject_hyperparams stores them).
  reference = _jax_params()
  ref_state = bertadam(LR, 0.1, T_TOTAL).init(reference)
  for i, g in enumerate(grads):
    ref_tx = bertadam(
      LR if i < 3 else LR / 2,
      0.1,
      T_TOTAL,
      weight_decay=_f32(0.01 if i < 3 else 0.1),
      **_F32_DEFAULTS,
    )
    updates, ref_state = ref_tx.update(g, ref_state, reference)
    reference = optax.apply_updates(reference, updates)
  chex.assert_trees_all_close(params, reference, rtol=1e-6, atol=1e-8)


def test_inject_hyperparams_needs_static_warmup_and_t_total():
  tx = optax.inject_hyperparams(bertadam)(lr=LR, weight_decay=0.01)
  with pytest.raises(ValueError, match=r"warmup=.*static_args"):
    tx.init(_jax_params())


def test_injected_max_grad_norm_of_zero_disables_clipping():
  params = _jax_params()
  grads = GRADS[:3]
  for clip in ("per_tensor", "global"):
    tx = optax.inject_hyperparams(bertadam, static_args=("warmup", "t_total"))(
      lr=LR, max_grad_norm=0.0, clip=clip
    )
    ours, _ = _reference_run(tx, grads, params)
    expected, _ = _reference_run(
      bertadam(LR, clip="none", weight_decay=_f32(0.01), **_F32_DEFAULTS),
      grads,
      params,
    )
    chex.assert_trees_all_close(ours, expected, rtol=1e-6, atol=1e-8)


def test_apply_if_finite_skips_a_nan_step_with_params_untouched():
  tx = optax.apply_if_finite(
    bertadam(LR, warmup=0.1, t_total=T_TOTAL), max_consecutive_errors=3
  )
  params = _jax_params()
  opt_state = tx.init(params)
  step = jax.jit(tx.update)
  grads = GRADS[:3]
  updates, opt_state = step(grads[0], opt_state, params)
  params = optax.apply_updates(params, updates)
  before, state_before = params, opt_state
  bad = dict(grads[1], scalar=np.float32(np.inf))
  bad["dense.bias"] = bad["dense.bias"].copy()
  bad["dense.bias"][0] = np.nan
  updates, opt_state = step(bad, opt_state, params)
  params = optax.apply_updates(params, updates)
  chex.assert_trees_all_equal(params, before)
  chex.assert_trees_all_equal(opt_state.inner_state, state_before.inner_state)
  assert int(opt_state.notfinite_count) == 1
  np.testing.assert_allclose(get_lr(opt_state), get_lr(state_before))
  updates, opt_state = step(grads[2], opt_state, params)
  params = optax.apply_updates(params, updates)
  expected, _ = _reference_run(
    bertadam(LR, warmup=0.1, t_total=T_TOTAL), [grads[0], grads[2]]
  )
  chex.assert_trees_all_close(params, expected, rtol=1e-6)


def test_bfloat16_params_keep_float32_moments():
  bf16 = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.bfloat16), tree)
  f32 = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)
  # No clipping: a clipped bfloat16 gradient is rounded to bfloat16 again (as
  # torch's in-place clip does), which is not what this test is about.
  tx = bertadam(LR, warmup=-1, t_total=T_TOTAL, max_grad_norm=-1)
  step = jax.jit(tx.update)
  params = bf16(_initial_params())
  opt_state = tx.init(params)
  moments = _moments(opt_state)
  for tree in (moments.mu, moments.nu):
    assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(jnp.float32)}
  for g in GRADS[:4]:
    g = bf16(g)
    updates, new_state = step(g, opt_state, params)
    # The float32 step from the same values and state: bfloat16 params only
    # round the result (and the decay term), never the moments.
    wide_updates, wide_state = step(f32(g), opt_state, f32(params))
    chex.assert_trees_all_close(
      _moments(new_state), _moments(wide_state), rtol=1e-6
    )
    chex.assert_trees_all_close(updates, wide_updates, rtol=1e-2, atol=1e-9)
    new = optax.apply_updates(params, updates)
    chex.assert_trees_all_equal_dtypes(new, params)
    expected = bf16(optax.apply_updates(f32(params), wide_updates))
    chex.assert_trees_all_close(f32(new), f32(expected), rtol=2.0**-7)
    params, opt_state = new, new_state


def test_mu_dtype_bfloat16():
  tx = bertadam(LR, mu_dtype=jnp.bfloat16)
  _, opt_state = _reference_run(tx, GRADS[:2])
  moments = _moments(opt_state)
  assert {x.dtype for x in jax.tree.leaves(moments.mu)} == {
    jnp.dtype(jnp.bfloat16)
  }
  assert {x.dtype for x in jax.tree.leaves(moments.nu)} == {
    jnp.dtype(jnp.float32)
  }


def test_lr_schedule_times_the_multiplier():
  decay = optax.exponential_decay(LR, transition_steps=5, decay_rate=0.5)
  tx = bertadam(decay, warmup=0.1, t_total=T_TOTAL, schedule="warmup_linear")
  params = _jax_params()
  opt_state = tx.init(params)
  for k, g in enumerate(GRADS[:12]):
    expected = (
      LR
      * 0.5 ** (k / 5)
      * bertadam_reference.deepspeed_multiplier(
        "warmup_linear", k, T_TOTAL, 0.1
      )
    )
    np.testing.assert_allclose(get_lr(opt_state), expected, rtol=1e-5)
    _, opt_state = tx.update(g, opt_state, params)


def test_schedule_as_a_callable():
  tx = bertadam(LR, schedule=lambda count: 1.0 / (1.0 + count))
  params = _jax_params()
  opt_state = tx.init(params)
  for k, g in enumerate(GRADS[:5]):
    np.testing.assert_allclose(get_lr(opt_state), LR / (1 + k), rtol=1e-6)
    _, opt_state = tx.update(g, opt_state, params)


def test_grad_and_vmap_over_the_learning_rate():
  params = _jax_params()
  grad = GRADS[0]

  def after_one_step(lr):
    tx = bertadam(lr, t_total=T_TOTAL)  # warmup -1: multiplier 1 at step 0
    updates, _ = tx.update(grad, tx.init(params), params)
    return optax.apply_updates(params, updates)

  # float64 NumPy: the first update direction, clip -> m/(sqrt(v)+e) -> decay.
  direction = {}
  for k, g in grad.items():
    g = g.astype(np.float64)
    norm = np.sqrt(np.sum(g * g))
    g = g * min(1.0, 1.0 / (norm + 1e-6))
    m, v = 0.1 * g, 0.001 * g * g
    p = np.asarray(params[k], np.float64)
    direction[k] = m / (np.sqrt(v) + 1e-6) + 0.01 * p
  jacobian = jax.jit(
    jax.jacobian(lambda lr: after_one_step(lr)["dense.kernel"])
  )(LR)
  np.testing.assert_allclose(jacobian, -direction["dense.kernel"], rtol=1e-5)
  lrs = jnp.asarray([0.0, LR, 3 * LR])
  batched = jax.jit(jax.vmap(after_one_step))(lrs)
  for i, lr in enumerate(np.asarray(lrs)):
    for k in params:
      np.testing.assert_allclose(
        batched[k][i],
        np.asarray(params[k]) - lr * direction[k],
        rtol=1e-5,
        atol=1e-7,
      )


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize(
  "kwargs",
  [dict(schedule=s, warmup=0.1, t_total=T_TOTAL) for s in X_BASED]
  + [
    dict(schedule=s, warmup=0.1, t_total=T_TOTAL, schedule_kwargs=kw)
    for s, kw in STEP_BASED.items()
  ]
  + [dict(clip="global", bias_correction=True, mu_dtype=jnp.bfloat16)],
)
def test_no_float64_in_the_update(kwargs, x64):
  params = jax.tree.map(jnp.asarray, _initial_params())
  with jax.enable_x64(x64):
    tx = bertadam(LR, **kwargs)
    opt_state = tx.init(params)
    jaxpr = jax.make_jaxpr(lambda g, s, p: (tx.update(g, s, p), get_lr(s)))(
      params, opt_state, params
    )
  assert "f64" not in str(jaxpr)


def test_pytree_with_scalars_and_empty_arrays():
  params = {
    "scalar": jnp.float32(2.0),
    "empty": jnp.zeros((0,)),
    "nested": [jnp.ones((2, 3)), {"empty2": jnp.zeros((3, 0))}],
  }
  grads = jax.tree.map(jnp.ones_like, params)
  tx = bertadam(LR, warmup=0.1, t_total=T_TOTAL)
  new, opt_state = _reference_run(tx, [grads, grads], params)
  chex.assert_trees_all_equal_shapes_and_dtypes(new, params)
  assert np.isfinite(float(new["scalar"]))
  assert float(new["scalar"]) < 2.0


# BERT-base: one executable, no host round trips ------------------------------


def _bert_base_shapes():
  hidden, inter, vocab = 768, 3072, 30522
  shapes = {
    "bert.embeddings.word_embeddings.weight": (vocab, hidden),
    "bert.embeddings.position_embeddings.weight": (512, hidden),
    "bert.embeddings.token_type_embeddings.weight": (2, hidden),
    "bert.embeddings.LayerNorm.weight": (hidden,),
    "bert.embeddings.LayerNorm.bias": (hidden,),
    "bert.pooler.dense.weight": (hidden, hidden),
    "bert.pooler.dense.bias": (hidden,),
    "cls.predictions.bias": (vocab,),
    "cls.predictions.transform.dense.weight": (hidden, hidden),
    "cls.predictions.transform.dense.bias": (hidden,),
    "cls.predictions.transform.LayerNorm.weight": (hidden,),
    "cls.predictions.transform.LayerNorm.bias": (hidden,),
  }
  for i in range(12):
    layer = f"bert.encoder.layer.{i}."
    for name in (
      "attention.self.query",
      "attention.self.key",
      "attention.self.value",
      "attention.output.dense",
    ):
      shapes[layer + name + ".weight"] = (hidden, hidden)
      shapes[layer + name + ".bias"] = (hidden,)
    shapes[layer + "intermediate.dense.weight"] = (inter, hidden)
    shapes[layer + "intermediate.dense.bias"] = (inter,)
    shapes[layer + "output.dense.weight"] = (hidden, inter)
    shapes[layer + "output.dense.bias"] = (hidden,)
    for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
      shapes[layer + norm + ".weight"] = (hidden,)
      shapes[layer + norm + ".bias"] = (hidden,)
  return {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}


def test_bert_base_update_is_one_executable_without_host_round_trips():
  params = _bert_base_shapes()
  assert 109e6 < sum(math.prod(p.shape) for p in params.values()) < 111e6
  tx = bertadam(
    1e-4,
    warmup=0.01,
    t_total=10_000,
    weight_decay_mask=bertadam_optax.bert_weight_decay_mask(),
  )
  opt_state = jax.eval_shape(tx.init, params)

  def step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, get_lr(opt_state)

  jaxpr = str(jax.make_jaxpr(step)(params, opt_state, params))
  assert "callback" not in jaxpr and "f64" not in jaxpr
  compiled = (
    jax.jit(step, donate_argnums=(0, 1))
    .lower(params, opt_state, params)
    .compile()
  )
  hlo = compiled.as_text()
  assert hlo.count("ENTRY") == 1
  for op in (
    "custom-call",
    "infeed",
    "outfeed",
    "send",
    "recv",
    "host-compute",
  ):
    assert re.search(rf"\b{op}\b", hlo) is None, op


# README ----------------------------------------------------------------------


def test_readme_migration_snippet():
  # --- verbatim from the README section 'Migrating from PyTorch BertAdam' ---
  import jax
  import jax.numpy as jnp
  import optax

  import bertadam_optax

  params = {
    "dense": {"kernel": jnp.ones((4, 4)), "bias": jnp.zeros(4)},
    "LayerNorm": {"scale": jnp.ones(4), "bias": jnp.zeros(4)},
  }
  tx = bertadam_optax.bertadam(
    lr=1e-4,
    warmup=0.1,
    t_total=1000,
    schedule="warmup_linear",
    weight_decay=0.01,
    max_grad_norm=1.0,
    weight_decay_mask=bertadam_optax.bert_weight_decay_mask(),
  )
  opt_state = tx.init(params)

  @jax.jit
  def train_step(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  grads = jax.tree.map(jnp.ones_like, params)
  params, opt_state = train_step(params, opt_state, grads)
  print(bertadam_optax.get_lr(opt_state))  # 1e-4 * (1/1000) / 0.1 = 1e-06
  # --- end of snippet ---
  np.testing.assert_allclose(bertadam_optax.get_lr(opt_state), 1e-6, rtol=1e-6)
  # The first update of a warmup schedule has rate 0: nothing moved.
  assert float(params["dense"]["kernel"][0, 0]) == 1.0

  # --- verbatim: the inject_hyperparams snippet of the same section ---
  tx = optax.inject_hyperparams(
    bertadam_optax.bertadam, static_args=("warmup", "t_total")
  )(lr=1e-4, warmup=0.1, t_total=1000, weight_decay=0.01)
  # --- end of snippet ---
  opt_state = tx.init(params)
  opt_state.hyperparams["lr"] = jnp.asarray(2e-4)
  _, opt_state = jax.jit(tx.update)(grads, opt_state, params)
  np.testing.assert_allclose(bertadam_optax.get_lr(opt_state), 2e-6, rtol=1e-6)


@pytest.mark.parametrize(
  "kwargs,name",
  [
    (dict(lr=np.float32(-1e-4)), "lr"),
    (dict(lr=np.array(-1e-4)), "lr"),
    (dict(lr=np.float64("nan")), "lr"),
    (dict(lr="1e-4"), "lr"),
    (dict(lr=True), "lr"),
    (dict(b1=np.float32(1.5)), "b1"),
    (dict(e=np.array(float("inf"))), "e"),
    (dict(weight_decay=np.float32(-0.01)), "weight_decay"),
    (dict(max_grad_norm=float("nan")), "max_grad_norm"),
    (dict(max_grad_norm="1.0"), "max_grad_norm"),
    (dict(t_total=100.5), "t_total"),
    (dict(t_total=np.float64(-3)), "t_total"),
    (dict(warmup=np.float32(1.5)), "warmup"),
    (dict(mu_dtype="int32"), "mu_dtype"),
    (dict(bias_correction="false"), "bias_correction"),
    (dict(weight_decay_mask="bias"), "weight_decay_mask"),
  ],
)
def test_numpy_and_bad_values_are_refused_naming_the_argument(kwargs, name):
  kwargs = {"lr": LR, "warmup": 0.1, "t_total": 100, **kwargs}
  with pytest.raises(ValueError, match=rf"\b{name}\b"):
    bertadam(**kwargs)


def test_negative_numpy_learning_rate_is_refused():
  # The acceptance case of the redesign: NumPy scalars are numbers.
  with pytest.raises(ValueError, match=r"lr=.*out of range"):
    bertadam(np.float32(-1e-4), warmup=0.1, t_total=100)


def test_mask_of_the_wrong_structure_is_refused_at_init():
  tx = bertadam(LR, weight_decay_mask={"nope": True})
  with pytest.raises(ValueError, match="weight_decay_mask"):
    tx.init(_initial_params())


def test_docstring_examples_run():
  import doctest  # pylint: disable=import-outside-toplevel

  from bertadam_optax import alias as module  # pylint: disable=import-outside-toplevel

  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0
  assert result.failed == 0
