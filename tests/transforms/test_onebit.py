"""Tests of ``bertadam_optax.transforms._onebit``: DeepSpeed's 1-bit optimizers
on one worker.

The installed DeepSpeed no longer ships ``deepspeed/runtime/fp16/onebit``, so
the reference is a float64 NumPy transcription of ``OnebitAdam.step`` and
``ZeroOneAdam.step`` (DeepSpeed's ``deepspeed/runtime/fp16/onebit/adam.py``
and ``zoadam.py``) as they run with one process (``self.size == 1``: no
compressed all-reduce), written statement by statement from the torch code.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import transforms


class _OnebitAdamNumpy:
  """``OnebitAdam.step`` with one worker, one parameter group, in float64."""

  def __init__(self, params, lr, betas, eps, weight_decay, freeze_step):
    self.params = [np.array(p, np.float64) for p in params]
    self.lr, self.betas, self.eps = lr, betas, eps
    self.weight_decay, self.freeze_step = weight_decay, freeze_step
    self.initialize = False
    self.adam_freeze_key = False
    self.state = [None] * len(params)

  def step(self, grads):
    for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
      if self.state[i] is None:
        self.state[i] = {
          "step": 0,
          "exp_avg": np.zeros_like(p),
          "exp_avg_sq": np.zeros_like(p),
        }
      state = self.state[i]
      if not self.initialize:
        self.adam_freeze_key = True
      beta1, beta2 = self.betas
      state["step"] += 1
      m, v = state["exp_avg"], state["exp_avg_sq"]
      if self.adam_freeze_key is False:
        m[...] = m * beta1 + (1 - beta1) * g
        v[...] = v * beta2 + (1 - beta2) * g * g
        update = m / (np.sqrt(v) + self.eps) if self.initialize else None
      else:
        if self.initialize:
          m[...] = m * beta1 + (1 - beta1) * g
        update = m / (np.sqrt(v) + self.eps) if self.initialize else None
      if self.initialize:
        if self.weight_decay > 0.0:
          update = update + self.weight_decay * p
        p -= self.lr * update
    if not self.initialize:
      self.adam_freeze_key = False
      self.initialize = True
      return
    if self.adam_freeze_key is False and state["step"] >= self.freeze_step:
      self.adam_freeze_key = True


class _ZeroOneAdamNumpy:
  """``ZeroOneAdam.step`` with one worker, one parameter group, in float64."""

  def __init__(
    self,
    params,
    lr_fn,
    betas,
    eps,
    weight_decay,
    var_freeze_step,
    var_update_scaler,
    local_step_scaler,
    local_step_clipper,
  ):
    self.params = [np.array(p, np.float64) for p in params]
    self.lr_fn, self.betas, self.eps = lr_fn, betas, eps
    self.weight_decay = weight_decay
    self.var_freeze_step = var_freeze_step
    self.var_update_scaler = var_update_scaler
    self.local_step_scaler = local_step_scaler
    self.local_step_clipper = local_step_clipper
    self.initialize = False
    self.freeze_key = False
    self.state = [None] * len(params)
    self.calls = 0

  def step(self, grads):
    lr = self.lr_fn(self.calls)
    self.calls += 1
    for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
      if self.state[i] is None:
        self.state[i] = {
          "step": 0,
          "exp_avg": np.zeros_like(p),
          "exp_avg_sq": np.zeros_like(p),
        }
      state = self.state[i]
      if not self.initialize:
        state.update(
          var_interval=1,
          var_counter=0,
          local_step_interval=1,
          local_step_counter=0,
          lrs=0.0,
          momentum_accumulator=np.zeros_like(p),
        )
      m, v = state["exp_avg"], state["exp_avg_sq"]
      buf = state["momentum_accumulator"]
      beta1, beta2 = self.betas
      state["step"] += 1
      if self.initialize:
        if self.freeze_key is False:
          if state["step"] % state["var_interval"] == 0:
            v[...] = v * beta2 + (1 - beta2) * g * g
            m[...] = m * beta1 + (1 - beta1) * g
          # else: the compressed exchange, absent with one worker.
        else:
          m[...] = m * beta1 + (1 - beta1) * g
          state["lrs"] += lr
      if self.initialize:
        update = m / (np.sqrt(v) + self.eps)
        if self.weight_decay > 0.0:
          update = update + self.weight_decay * p
        p -= lr * update
        if self.freeze_key is True:
          buf += -lr * update
        if (
          state["step"] % state["local_step_interval"] == 0 and self.freeze_key
        ):
          p -= buf
          buf *= np.sqrt(v) + self.eps
          m[...] = -(buf / state["lrs"])
          p += buf / (np.sqrt(v) + self.eps)
          buf[...] = 0.0
          state["lrs"] = 0.0
        if self.freeze_key is False:
          if state["step"] % state["var_interval"] == 0:
            state["var_counter"] += 1
            if state["var_counter"] == self.var_update_scaler:
              state["var_counter"] = 0
              state["var_interval"] *= 2
        else:
          state["local_step_counter"] += 1
          if state["local_step_counter"] == self.local_step_scaler:
            state["local_step_counter"] = 0
            state["local_step_interval"] = min(
              self.local_step_clipper, state["local_step_interval"] * 2
            )
    if not self.initialize:
      self.initialize = True
      return
    if self.state[0]["step"] > self.var_freeze_step:
      self.freeze_key = True


class _OnebitLambNumpy:
  """``OnebitLamb.step`` with one worker, in float64; ``decay[i]`` says
  whether parameter ``i`` is in the decayed group."""

  def __init__(
    self,
    params,
    lr,
    betas,
    eps,
    weight_decay,
    decay,
    freeze_step,
    max_coeff,
    min_coeff,
    coeff_beta,
    factor_max,
    factor_min,
    factor_threshold,
  ):
    self.params = [np.array(p, np.float64) for p in params]
    self.lr, self.betas, self.eps = lr, betas, eps
    self.wd = [weight_decay if d else 0.0 for d in decay]
    self.freeze_step = freeze_step
    self.max_coeff, self.min_coeff = max_coeff, min_coeff
    self.coeff_beta, self.factor_max = coeff_beta, factor_max
    self.factor_min, self.factor_threshold = factor_min, factor_threshold
    self.lamb_freeze_key = False
    self.initialize = False
    self.state = [dict() for _ in params]

  def step(self, grads):
    beta1, beta2 = self.betas
    if self.lamb_freeze_key:
      last = [s["exp_avg"].copy() for s in self.state]
      if "scaling_coeff" not in self.state[0]:
        scales = [
          np.linalg.norm(s["exp_avg"]) / np.sqrt(s["exp_avg"].size)
          for s in self.state
        ]
        united = sum(scales) / len(scales)
        for s, scale in zip(self.state, scales, strict=True):
          s["scaling_coeff"] = united / scale
    for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
      state = self.state[i]
      if len(state) == 0 or (len(state) == 1 and "scaling_coeff" in state):
        state.update(
          step=0,
          lamb_coeff_freeze=0.0,
          last_factor=1.0,
          exp_avg=np.zeros_like(p),
          exp_avg_sq=np.zeros_like(p),
          exp_avg_sq_fresh=np.zeros_like(p),
        )
      if not self.initialize:
        self.lamb_freeze_key = True
      m, v = state["exp_avg"], state["exp_avg_sq"]
      state["step"] += 1
      if self.lamb_freeze_key is False:
        m[...] = m * beta1 + (1 - beta1) * g
        v[...] = v * beta2 + (1 - beta2) * g * g
        if state["step"] == self.freeze_step:
          state["exp_avg_sq_fresh"] = v.copy()
        if self.initialize:
          weight_norm = np.linalg.norm(p)
          update = m / (np.sqrt(v) + self.eps)
          if self.wd[i] > 0.0:
            update = update + self.wd[i] * p
          update_norm = np.linalg.norm(update)
          coeff = 1.0
          if weight_norm != 0 and update_norm != 0:
            coeff = weight_norm / update_norm
            coeff = min(coeff, self.max_coeff)
            coeff = max(coeff, self.min_coeff)
          if coeff != 1.0:
            state["lamb_coeff_freeze"] = (
              self.coeff_beta * state["lamb_coeff_freeze"]
              + (1 - self.coeff_beta) * coeff
            )
          p -= self.lr * coeff * update
      elif self.initialize:
        m[...] = m * beta1 + (1 - beta1) * g
        m *= state["scaling_coeff"]
    if self.lamb_freeze_key and self.initialize:
      for i, p in enumerate(self.params):
        state = self.state[i]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        vf = state["exp_avg_sq_fresh"]
        m /= state["scaling_coeff"]
        grad_reconstruct = (m - last[i] * beta1) / (1 - beta1)
        vf[...] = vf * beta2 + (1 - beta2) * grad_reconstruct**2
        denom = np.sqrt(v) + self.eps
        prelim = m / denom
        update = prelim + self.wd[i] * p if self.wd[i] > 0.0 else prelim
        update_norm = np.linalg.norm(update)
        factor = np.max(denom / (np.sqrt(vf) + self.eps))
        if self.wd[i] > 0.0:
          ratio = min(1.0, np.linalg.norm(prelim) / update_norm)
          factor = factor * ratio + (1.0 - ratio)
        factor = min(factor, self.factor_max)
        factor = max(factor, self.factor_min)
        factor = min(factor, state["last_factor"] * (1 + self.factor_threshold))
        factor = max(factor, state["last_factor"] * (1 - self.factor_threshold))
        state["last_factor"] = factor
        p -= self.lr * state["lamb_coeff_freeze"] * factor * update
    if not self.initialize:
      self.lamb_freeze_key = False
      self.initialize = True
      return
    if self.lamb_freeze_key is False and state["step"] >= self.freeze_step:
      self.lamb_freeze_key = True


def _problem(seed=0, steps=60):
  rng = np.random.default_rng(seed)
  params = [rng.normal(size=(3, 4)), rng.normal(size=(5,))]
  grads = [
    [rng.normal(size=p.shape) * (1.0 + 0.5 * np.sin(k)) for p in params]
    for k in range(steps)
  ]
  return params, grads


def _run_jax(tx, params, grads):
  tree = {
    "a": jnp.asarray(params[0], jnp.float32),
    "b": jnp.asarray(params[1], jnp.float32),
  }
  state = tx.init(tree)
  step = jax.jit(tx.update)
  history = []
  for g in grads:
    g = {
      "a": jnp.asarray(g[0], jnp.float32),
      "b": jnp.asarray(g[1], jnp.float32),
    }
    updates, state = step(g, state, tree)
    tree = optax.apply_updates(tree, updates)
    history.append([np.asarray(tree["a"]), np.asarray(tree["b"])])
  return history, state


@pytest.mark.parametrize("freeze_step", [0, 1, 2, 3, 17])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_onebit_adam_matches_deepspeed_one_worker(freeze_step, weight_decay):
  params, grads = _problem(steps=40)
  lr, betas, eps = 1e-2, (0.9, 0.99), 1e-8
  tx = optax.chain(
    transforms.scale_by_onebit_adam(
      *betas, eps, freeze_step=freeze_step, weight_decay=weight_decay
    ),
    transforms.scale_by_learning_rate(lr),
  )
  history, _ = _run_jax(tx, params, grads)
  ref = _OnebitAdamNumpy(params, lr, betas, eps, weight_decay, freeze_step)
  for k, g in enumerate(grads):
    ref.step(g)
    for got, want in zip(history[k], ref.params, strict=True):
      np.testing.assert_allclose(
        got, want, rtol=2e-5, atol=2e-6, err_msg=f"step {k + 1}"
      )


def test_onebit_adam_freezes_the_variance_and_changes_the_trajectory():
  params, grads = _problem(steps=30)
  lr, betas, eps = 1e-2, (0.9, 0.999), 1e-8

  def run(freeze_step):
    tx = optax.chain(
      transforms.scale_by_onebit_adam(*betas, eps, freeze_step=freeze_step),
      transforms.scale_by_learning_rate(lr),
    )
    return _run_jax(tx, params, grads)

  frozen, frozen_state = run(10)
  never, _never_state = run(10**6)
  onebit = frozen_state[0]
  assert int(onebit.count) == 30
  # After the 10th call the variance stops: rerun to 10 calls and compare.
  tx10 = optax.chain(
    transforms.scale_by_onebit_adam(*betas, eps, freeze_step=10),
    transforms.scale_by_learning_rate(lr),
  )
  _, state10 = _run_jax(tx10, params, grads[:10])
  for a, b in zip(
    jax.tree.leaves(onebit.nu), jax.tree.leaves(state10[0].nu), strict=True
  ):
    np.testing.assert_array_equal(a, b)
  # The first 10 steps agree with never freezing, the next ones do not.
  np.testing.assert_array_equal(frozen[9][0], never[9][0])
  assert np.max(np.abs(frozen[-1][0] - never[-1][0])) > 1e-4
  ref = _OnebitAdamNumpy(params, lr, betas, eps, 0.0, 10)
  for g in grads:
    ref.step(g)
  np.testing.assert_allclose(frozen[-1][0], ref.params[0], rtol=2e-5, atol=2e-6)


def test_onebit_adam_first_call_is_a_no_op_even_with_weight_decay():
  tx = transforms.scale_by_onebit_adam(weight_decay=0.5)
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  np.testing.assert_array_equal(updates["w"], np.zeros(3))
  np.testing.assert_array_equal(state.mu["w"], np.zeros(3))
  updates, state = tx.update({"w": jnp.ones(3)}, state, params)
  assert float(updates["w"][0]) > 0.5


@pytest.mark.parametrize("var_freeze_step", [0, 1, 9, 25])
@pytest.mark.parametrize("weight_decay", [0.0, 0.02])
def test_zero_one_adam_matches_deepspeed_one_worker(
  var_freeze_step, weight_decay
):
  params, grads = _problem(seed=1, steps=60)
  betas, eps = (0.9, 0.99), 1e-8
  schedule = lambda k: 1e-2 * (1.0 + 0.3 * np.cos(0.2 * float(k)))
  kwargs = dict(
    var_freeze_step=var_freeze_step,
    var_update_scaler=2,
    local_step_scaler=3,
    local_step_clipper=4,
    weight_decay=weight_decay,
  )
  jax_schedule = lambda k: 1e-2 * (1.0 + 0.3 * jnp.cos(0.2 * k))
  tx = optax.chain(
    transforms.scale_by_zero_one_adam(jax_schedule, *betas, eps, **kwargs),
    transforms.scale_by_learning_rate(jax_schedule),
  )
  history, state = _run_jax(tx, params, grads)
  ref = _ZeroOneAdamNumpy(params, schedule, betas, eps, **kwargs)
  for k, g in enumerate(grads):
    ref.step(g)
    for got, want in zip(history[k], ref.params, strict=True):
      np.testing.assert_allclose(
        got, want, rtol=5e-5, atol=5e-6, err_msg=f"step {k + 1}"
      )
  zo = state[0]
  assert int(zo.var_interval) == ref.state[0]["var_interval"]
  assert int(zo.local_step_interval) == ref.state[0]["local_step_interval"]
  np.testing.assert_allclose(
    zo.mu["a"], ref.state[0]["exp_avg"], rtol=5e-4, atol=1e-6
  )


@pytest.mark.parametrize(
  "factory,kwargs,name",
  [
    (transforms.scale_by_onebit_adam, dict(freeze_step=-1), "freeze_step"),
    (transforms.scale_by_onebit_adam, dict(freeze_step=1.5), "freeze_step"),
    (transforms.scale_by_onebit_adam, dict(b1=np.float32(1.0)), "b1"),
    (transforms.scale_by_onebit_adam, dict(weight_decay=-0.1), "weight_decay"),
    (transforms.scale_by_onebit_adam, dict(eps=float("nan")), "eps"),
  ],
)
def test_onebit_adam_validates(factory, kwargs, name):
  with pytest.raises(ValueError, match=name):
    factory(**kwargs)


@pytest.mark.parametrize(
  "kwargs,name",
  [
    (dict(var_update_scaler=0), "var_update_scaler"),
    (dict(local_step_clipper=0), "local_step_clipper"),
    (dict(local_step_scaler="8"), "local_step_scaler"),
    (dict(var_freeze_step=None), "var_freeze_step"),
    (dict(learning_rate=-1.0), "learning_rate"),
  ],
)
def test_zero_one_adam_validates(kwargs, name):
  kwargs = {"learning_rate": 1e-3, **kwargs}
  with pytest.raises(ValueError, match=name):
    transforms.scale_by_zero_one_adam(**kwargs)


def test_no_float64_in_the_graph_and_one_trace():
  tx = optax.chain(
    transforms.scale_by_zero_one_adam(1e-3, var_freeze_step=2),
    transforms.scale_by_learning_rate(1e-3),
  )
  params = {"w": jnp.ones(3)}
  state = tx.init(params)
  jaxpr = jax.make_jaxpr(tx.update)(params, state, params)
  assert "f64" not in str(jaxpr)
  step = jax.jit(chex.assert_max_traces(tx.update, n=1))
  for _ in range(4):
    _, state = step(params, state, params)


@pytest.mark.parametrize("freeze_step", [0, 2, 5, 12])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_onebit_lamb_matches_deepspeed_one_worker(freeze_step, weight_decay):
  params, grads = _problem(seed=2, steps=40)
  lr, betas, eps = 1e-2, (0.9, 0.99), 1e-6
  kwargs = dict(
    max_coeff=0.3,
    min_coeff=0.01,
    coeff_beta=0.8,
    factor_max=4.0,
    factor_min=0.5,
    factor_threshold=0.1,
  )
  mask = {"a": True, "b": False}  # "b" is the no-decay group
  tx = optax.chain(
    transforms.scale_by_onebit_lamb(
      *betas,
      eps,
      freeze_step=freeze_step,
      weight_decay=weight_decay,
      weight_decay_mask=mask,
      **kwargs,
    ),
    transforms.scale_by_learning_rate(lr),
  )
  history, state = _run_jax(tx, params, grads)
  ref = _OnebitLambNumpy(
    params, lr, betas, eps, weight_decay, [True, False], freeze_step, **kwargs
  )
  for k, g in enumerate(grads):
    ref.step(g)
    for got, want in zip(history[k], ref.params, strict=True):
      np.testing.assert_allclose(
        got, want, rtol=2e-5, atol=2e-6, err_msg=f"step {k + 1}"
      )
  lamb = state[0]
  np.testing.assert_allclose(
    lamb.last_factor["a"], ref.state[0]["last_factor"], rtol=1e-5
  )
  np.testing.assert_allclose(
    lamb.lamb_coeff_freeze["b"], ref.state[1]["lamb_coeff_freeze"], rtol=1e-5
  )


@pytest.mark.parametrize(
  "kwargs,name",
  [
    (dict(coeff_beta=1.5), "coeff_beta"),
    (dict(factor_threshold=-0.1), "factor_threshold"),
    (dict(freeze_step="10"), "freeze_step"),
    (dict(max_coeff=np.float64("nan")), "max_coeff"),
  ],
)
def test_onebit_lamb_validates(kwargs, name):
  with pytest.raises(ValueError, match=name):
    transforms.scale_by_onebit_lamb(**kwargs)
