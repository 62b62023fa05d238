r"""DeepSpeed's 1-bit optimizers as one worker computes them.

DeepSpeed's ``OnebitAdam``, ``ZeroOneAdam`` and ``OnebitLamb`` compress the
communication of a multi-worker run, but their single-worker math also
differs from Adam and Lamb: the first call only allocates buffers (no
update); ``OnebitAdam`` stops updating the variance after ``freeze_step``;
``ZeroOneAdam`` updates the variance at doubling intervals, freezes it after
``var_freeze_step``, then resets the momentum at every local-step boundary;
``OnebitLamb`` freezes the variance and the trust ratio after ``freeze_step``
and scales the frozen ratio by a bounded factor from a fresh variance. With
one worker there is nothing to compress, so these transformations reproduce
the update.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._masking import checked_mask
from bertadam_optax.transforms._numerics import float32_or_wider

__all__ = [
  "ScaleByOneBitAdamState",
  "ScaleByOneBitLambState",
  "ScaleByZeroOneAdamState",
  "scale_by_onebit_adam",
  "scale_by_onebit_lamb",
  "scale_by_zero_one_adam",
]


class ScaleByOneBitAdamState(NamedTuple):
  """State of :func:`scale_by_onebit_adam`."""

  # int32, optimizer calls so far (torch's state['step']).
  count: chex.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # optax name
  mu: optax.Updates  # exp_avg
  nu: optax.Updates  # exp_avg_sq


class ScaleByZeroOneAdamState(NamedTuple):
  """State of :func:`scale_by_zero_one_adam` (the counters are torch's)."""

  # int32, optimizer calls so far (torch's state['step']).
  count: chex.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # optax name
  mu: optax.Updates  # exp_avg
  nu: optax.Updates  # exp_avg_sq
  var_interval: chex.Array  # int32, variance updated when step % this == 0
  var_counter: chex.Array  # int32, variance updates at the current interval
  local_step_interval: chex.Array  # int32, momentum reset every this steps
  local_step_counter: chex.Array  # int32, steps at the current interval
  lrs: chex.Array  # float32, sum of learning rates since the last reset
  momentum_accumulator: optax.Updates  # sum of lr * update since the reset


class ScaleByOneBitLambState(NamedTuple):
  """State of :func:`scale_by_onebit_lamb` (per-leaf scalars as torch's)."""

  # int32, optimizer calls so far (torch's state['step']).
  count: chex.Array  # pyright: ignore[reportIncompatibleMethodOverride]  # optax name
  mu: optax.Updates  # exp_avg
  nu: optax.Updates  # exp_avg_sq, frozen after freeze_step
  nu_fresh: optax.Updates  # exp_avg_sq_fresh, updated after freeze_step
  lamb_coeff_freeze: optax.Updates  # per leaf: EMA of the trust ratio
  last_factor: optax.Updates  # per leaf: the last scaling factor


def _check_betas_eps(b1, b2, eps):
  _validation.check_range("b1", b1, 0.0, 1.0, high_inclusive=False)
  _validation.check_range("b2", b2, 0.0, 1.0, high_inclusive=False)
  _validation.check_non_negative("eps", eps)


def _zeros(params):
  return jax.tree.map(
    lambda p: jnp.zeros(jnp.shape(p), float32_or_wider(p.dtype)), params
  )


def _decayed(weight_decay, weight_decay_mask, params):
  """``weight_decay * p`` where the mask says so, else 0, per leaf."""
  if weight_decay_mask is None:
    mask = jax.tree.map(lambda _: True, params)
  else:
    mask = _validation.check_mask_structure(
      "weight_decay_mask", weight_decay_mask, params
    )
  return jax.tree.map(
    lambda m, p: (
      weight_decay * p.astype(float32_or_wider(p.dtype))
      if m
      else jnp.zeros(jnp.shape(p), float32_or_wider(p.dtype))
    ),
    mask,
    params,
  )


def _adam_direction(
  updates,
  state,
  *,
  update_mu,
  update_nu,
  b1,
  b2,
  eps,
  weight_decay,
  weight_decay_mask,
  params,
  name,
):
  """The gated moments and ``m / (sqrt(v) + eps) + wd * p`` of both 1-bit Adams.

  ``update_mu`` and ``update_nu`` (traced booleans) say whether this step
  moves each moment; a frozen moment keeps its value.

  Returns:
    ``(mu, nu, direction)``.
  """
  mu = jax.tree.map(
    lambda g, m: jnp.where(
      update_mu, b1 * m + (1.0 - b1) * g.astype(m.dtype), m
    ),
    updates,
    state.mu,
  )
  nu = jax.tree.map(
    lambda g, v: jnp.where(
      update_nu, b2 * v + (1.0 - b2) * jnp.square(g.astype(v.dtype)), v
    ),
    updates,
    state.nu,
  )
  out = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
  if not (_validation.is_number(weight_decay) and weight_decay == 0):
    if params is None:
      raise ValueError(
        f"{name} with weight_decay needs the "
        "params: call update(updates, state, params)."
      )
    out = jax.tree.map(
      jnp.add, out, _decayed(weight_decay, weight_decay_mask, params)
    )
  return mu, nu, out


def scale_by_onebit_adam(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  *,
  freeze_step: int = 100000,
  weight_decay: float = 0.0,
  weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  r"""Rescales updates as DeepSpeed's ``OnebitAdam`` does on one worker.

  At the ``t``-th call (``t = count + 1``), with ``F = max(freeze_step, 2)``:

  .. math::
    t = 1:&\quad u_1 = 0 \quad\text{(buffers allocated, moments untouched)} \\
    t \ge 2:&\quad m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \\
    &\quad v_t = \begin{cases} \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 & t \le F
      \\ v_{t-1} & t > F \text{ (variance frozen)} \end{cases} \\
    &\quad u_t = \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda w

  followed by ``-lr`` (:func:`scale_by_learning_rate`). There is no bias
  correction (``OnebitAdam`` reads ``bias_correction`` but never applies it),
  and the decay joins the update, unmasked leaves only. After the freeze,
  ``OnebitAdam`` multiplies ``m`` by a group's ``exp_avg_mask``; bing_bert
  gives one for the position embeddings' rows past ``max_seq_length``, whose
  gradients (and so momenta) are zero on one worker: no effect, not taken.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)``, >= 0.
    freeze_step: the last call that updates the variance (with the first,
      no-op call counted), >= 0.
    weight_decay: ``lambda``, >= 0, added to the update.
    weight_decay_mask: which leaves decay (pytree of bools or a function of
      the params); ``None`` decays all.

  Returns:
    An ``optax.GradientTransformation`` with a
    :class:`ScaleByOneBitAdamState`; ``update`` needs ``params`` when
    ``weight_decay`` is not 0.

  Examples:
    >>> import jax.numpy as jnp, optax
    >>> tx = optax.chain(scale_by_onebit_adam(freeze_step=2), optax.scale(-0.1))
    >>> params = {'w': jnp.ones(2)}
    >>> state = tx.init(params)
    >>> u, state = tx.update({'w': jnp.ones(2)}, state, params)
    >>> float(jnp.abs(u['w']).max())  # the first call only allocates buffers
    0.0

  References:
    Tang et al., 2021, `1-bit Adam: Communication Efficient Large-Scale
    Training with Adam's Convergence Speed <https://arxiv.org/abs/2102.02888>`_;
    DeepSpeed ``deepspeed/runtime/fp16/onebit/adam.py`` (``OnebitAdam.step``).
  """
  _check_betas_eps(b1, b2, eps)
  freeze_step = _validation.check_int("freeze_step", freeze_step)
  _validation.check_rate("weight_decay", weight_decay)
  mask_fn = checked_mask(weight_decay_mask)
  last_variance_step = max(freeze_step, 2)

  def init_fn(params):
    if mask_fn is not None:
      mask_fn(params)  # a mask of the wrong tree fails here, not mid-run
    return ScaleByOneBitAdamState(
      count=jnp.zeros([], jnp.int32), mu=_zeros(params), nu=_zeros(params)
    )

  def update_fn(updates, state, params=None):
    t = jnp.asarray(optax.safe_increment(state.count))
    active = t >= 2
    update_nu = active & (t <= last_variance_step)
    mu, nu, out = _adam_direction(
      updates,
      state,
      update_mu=active,
      update_nu=update_nu,
      b1=b1,
      b2=b2,
      eps=eps,
      weight_decay=weight_decay,
      weight_decay_mask=weight_decay_mask,
      params=params,
      name="scale_by_onebit_adam",
    )
    out = jax.tree.map(
      lambda u, g: jnp.where(active, u, jnp.zeros_like(u)).astype(g.dtype),
      out,
      updates,
    )
    return out, ScaleByOneBitAdamState(count=t, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_zero_one_adam(
  learning_rate: optax.ScalarOrSchedule,
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  *,
  var_freeze_step: int = 100000,
  var_update_scaler: int = 16,
  local_step_scaler: int = 32678,
  local_step_clipper: int = 16,
  weight_decay: float = 0.0,
  weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  r"""Rescales updates as DeepSpeed's ``ZeroOneAdam`` (0/1 Adam) on one worker.

  At the ``t``-th call (``t = count + 1``); the first call only allocates
  buffers (``u_1 = 0``). While ``t <= max(var_freeze_step + 1, 2)``:

  .. math::
    (m_t, v_t) &= \begin{cases}
      (\beta_1 m_{t-1} + (1-\beta_1) g_t,\ \beta_2 v_{t-1} + (1-\beta_2) g_t^2)
        & t \bmod I_v = 0 \\
      (m_{t-1}, v_{t-1}) & \text{otherwise (one worker: no exchange)}
    \end{cases} \\
    u_t &= \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda w

  where the variance interval ``I_v`` starts at 1 and doubles after every
  ``var_update_scaler`` variance updates. After that the variance is frozen:

  .. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
    u_t = \frac{m_t}{\sqrt{v}+\epsilon} + \lambda w, \qquad
    A_t = A_{t-1} + \eta_t u_t, \quad L_t = L_{t-1} + \eta_t \\
    m_t &\leftarrow \frac{A_t (\sqrt{v} + \epsilon)}{L_t},\ A_t, L_t
      \leftarrow 0 \qquad \text{when } t \bmod I_\ell = 0

  with the local-step interval ``I_l`` starting at 1 and doubling (up to
  ``local_step_clipper``) every ``local_step_scaler`` frozen steps. At a reset
  ``ZeroOneAdam`` also subtracts and adds back the accumulated step, which
  leaves the parameters unchanged up to rounding. ``u_t`` is followed by
  ``-lr`` (:func:`scale_by_learning_rate`); ``learning_rate`` here only
  weights the momentum reset, and must be the same schedule.

  Args:
    learning_rate: the learning rate (or schedule of the count) of the chain.
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)``, >= 0.
    var_freeze_step: the last step of the variance stage, >= 0.
    var_update_scaler: variance updates per interval before it doubles, >= 1.
    local_step_scaler: frozen steps per local interval before it doubles, >= 1.
    local_step_clipper: the largest local interval, >= 1.
    weight_decay: ``lambda``, >= 0, added to the update.
    weight_decay_mask: which leaves decay; ``None`` decays all.

  Returns:
    An ``optax.GradientTransformation`` with a
    :class:`ScaleByZeroOneAdamState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_zero_one_adam(0.1, var_freeze_step=4)
    >>> state = tx.init({'w': jnp.ones(2)})
    >>> int(state.var_interval), int(state.local_step_interval)
    (1, 1)

  References:
    Lu et al., 2022, `Maximizing Communication Efficiency for Large-scale
    Training via 0/1 Adam <https://arxiv.org/abs/2202.06009>`_; DeepSpeed
    ``deepspeed/runtime/fp16/onebit/zoadam.py`` (``ZeroOneAdam.step``).
  """
  _check_betas_eps(b1, b2, eps)
  _validation.check_rate("learning_rate", learning_rate)
  var_freeze_step = _validation.check_int("var_freeze_step", var_freeze_step)
  var_update_scaler = _validation.check_int(
    "var_update_scaler", var_update_scaler, 1
  )
  local_step_scaler = _validation.check_int(
    "local_step_scaler", local_step_scaler, 1
  )
  local_step_clipper = _validation.check_int(
    "local_step_clipper", local_step_clipper, 1
  )
  _validation.check_rate("weight_decay", weight_decay)
  # The freeze is decided after a step: frozen from the step after the first
  # one past var_freeze_step (the no-op first call never checks).
  last_variance_step = max(var_freeze_step + 1, 2)
  schedule = (
    learning_rate if callable(learning_rate) else (lambda count: learning_rate)
  )

  mask_fn = checked_mask(weight_decay_mask)

  def init_fn(params):
    if mask_fn is not None:
      mask_fn(params)  # a mask of the wrong tree fails here, not mid-run
    one = jnp.ones([], jnp.int32)
    return ScaleByZeroOneAdamState(
      count=jnp.zeros([], jnp.int32),
      mu=_zeros(params),
      nu=_zeros(params),
      var_interval=one,
      var_counter=jnp.zeros([], jnp.int32),
      local_step_interval=one,
      local_step_counter=jnp.zeros([], jnp.int32),
      lrs=jnp.zeros([], jnp.float32),
      momentum_accumulator=_zeros(params),
    )

  def update_fn(updates, state, params=None):
    t = jnp.asarray(optax.safe_increment(state.count))
    lr = jnp.asarray(schedule(state.count), jnp.float32)
    active = t >= 2
    frozen = t > last_variance_step
    variance_step = active & ~frozen & (t % state.var_interval == 0)
    update_mu = variance_step | (active & frozen)
    mu, nu, out = _adam_direction(
      updates,
      state,
      update_mu=update_mu,
      update_nu=variance_step,
      b1=b1,
      b2=b2,
      eps=eps,
      weight_decay=weight_decay,
      weight_decay_mask=weight_decay_mask,
      params=params,
      name="scale_by_zero_one_adam",
    )
    out = jax.tree.map(lambda u: jnp.where(active, u, jnp.zeros_like(u)), out)

    # The frozen stage: accumulate lr * u, reset the momentum at boundaries.
    accumulating = active & frozen
    lrs = jnp.where(accumulating, state.lrs + lr, state.lrs)
    acc = jax.tree.map(
      lambda a, u: jnp.where(accumulating, a + lr * u, a),
      state.momentum_accumulator,
      out,
    )
    reset = accumulating & (t % state.local_step_interval == 0)
    mu = jax.tree.map(
      lambda m, a, v: jnp.where(reset, a * (jnp.sqrt(v) + eps) / lrs, m),
      mu,
      acc,
      nu,
    )
    acc = jax.tree.map(lambda a: jnp.where(reset, jnp.zeros_like(a), a), acc)
    lrs = jnp.where(reset, jnp.zeros_like(lrs), lrs)

    # Interval bookkeeping, after the step as ZeroOneAdam does it.
    var_counter = state.var_counter + jnp.asarray(variance_step, jnp.int32)
    doubled = variance_step & (var_counter == var_update_scaler)
    var_counter = jnp.where(doubled, 0, var_counter)
    var_interval = jnp.where(
      doubled, state.var_interval * 2, state.var_interval
    )
    local_counter = state.local_step_counter + jnp.asarray(
      accumulating, jnp.int32
    )
    widened = accumulating & (local_counter == local_step_scaler)
    local_counter = jnp.where(widened, 0, local_counter)
    local_interval = jnp.where(
      widened,
      jnp.minimum(local_step_clipper, state.local_step_interval * 2),
      state.local_step_interval,
    )

    out = jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates)
    return out, ScaleByZeroOneAdamState(
      count=t,
      mu=mu,
      nu=nu,
      var_interval=var_interval,
      var_counter=var_counter,
      local_step_interval=local_interval,
      local_step_counter=local_counter,
      lrs=lrs,
      momentum_accumulator=acc,
    )

  return optax.GradientTransformation(init_fn, update_fn)


def scale_by_onebit_lamb(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  *,
  freeze_step: int = 100000,
  weight_decay: float = 0.0,
  weight_decay_mask: Any = None,
  max_coeff: float = 10.0,
  min_coeff: float = 0.01,
  coeff_beta: float = 0.9,
  factor_max: float = 4.0,
  factor_min: float = 0.5,
  factor_threshold: float = 0.1,
) -> optax.GradientTransformation:
  r"""Rescales updates as DeepSpeed's ``OnebitLamb`` does on one worker.

  At the ``t``-th call (``t = count + 1``); the first call only allocates
  buffers (``u_1 = 0``). With ``F = max(freeze_step, 2)``, for each parameter
  tensor ``w``, while ``t <= F`` (the warmup stage, Lamb):

  .. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
    u_t = \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda w \\
    r_t &= \operatorname{clip}\left(\tfrac{\lVert w \rVert}{\lVert u_t
      \rVert}, c_{\min}, c_{\max}\right) \ (1 \text{ if a norm is } 0),
    \quad \bar r \leftarrow \beta_c \bar r + (1-\beta_c) r_t
      \text{ if } r_t \ne 1, \quad \text{out} = r_t u_t

  (``v_F`` is also copied to ``v^{fresh}``); after it (the compression stage,
  ``v`` frozen):

  .. math::
    m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad
    v^{fresh}_t = \beta_2 v^{fresh}_{t-1} + (1-\beta_2) g_t^2, \quad
    u_t = \frac{m_t}{\sqrt{v} + \epsilon} + \lambda w \\
    f &= \max_i \frac{\sqrt{v_i} + \epsilon}{\sqrt{v^{fresh}_{t,i}} +
      \epsilon}, \quad f \leftarrow f \rho + 1 - \rho
      \ \text{with decay}, \ \rho = \min\left(1,
      \tfrac{\lVert m_t / (\sqrt v + \epsilon) \rVert}{\lVert u_t
      \rVert}\right) \\
    f_t &= \operatorname{clip}\left(\operatorname{clip}(f, f_{\min},
      f_{\max}), (1-\tau) f_{t-1}, (1+\tau) f_{t-1}\right), \quad
    \text{out} = \bar r f_t u_t

  followed by ``-lr`` (:func:`scale_by_learning_rate`). On one worker the
  momentum scaling around the compressed exchange (multiplied, then divided
  by the same ``scaling_coeff``) cancels and the reconstructed gradient is
  ``g_t``; both are taken so. There is no bias correction, as in
  ``OnebitLamb``.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moments, in [0, 1).
    eps: added to the square roots, >= 0.
    freeze_step: the last call of the warmup stage, >= 0.
    weight_decay: ``lambda``, >= 0, added to the update.
    weight_decay_mask: which leaves decay; ``None`` decays all.
    max_coeff: upper bound of the trust ratio, >= 0.
    min_coeff: lower bound of the trust ratio, >= 0.
    coeff_beta: decay of the trust ratio's average ``bar r``, in [0, 1].
    factor_max: upper bound of the scaling factor, >= 0.
    factor_min: lower bound of the scaling factor, >= 0.
    factor_threshold: the largest relative change of the factor per step,
      >= 0.

  Returns:
    An ``optax.GradientTransformation`` with a
    :class:`ScaleByOneBitLambState`; ``update`` needs ``params``.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_onebit_lamb(freeze_step=3)
    >>> state = tx.init({'w': jnp.ones(2)})
    >>> float(state.last_factor['w'])
    1.0

  References:
    Li et al., 2021, `1-bit LAMB: Communication Efficient Large-Scale
    Large-Batch Training with LAMB's Convergence Speed
    <https://arxiv.org/abs/2104.06069>`_; DeepSpeed
    ``deepspeed/runtime/fp16/onebit/lamb.py`` (``OnebitLamb.step``).
  """
  _check_betas_eps(b1, b2, eps)
  freeze_step = _validation.check_int("freeze_step", freeze_step)
  _validation.check_rate("weight_decay", weight_decay)
  for name, value in (
    ("max_coeff", max_coeff),
    ("min_coeff", min_coeff),
    ("factor_max", factor_max),
    ("factor_min", factor_min),
    ("factor_threshold", factor_threshold),
  ):
    _validation.check_non_negative(name, value)
  _validation.check_range("coeff_beta", coeff_beta, 0.0, 1.0)
  last_warmup_step = max(freeze_step, 2)
  decays = not (_validation.is_number(weight_decay) and weight_decay == 0)

  def norm(x):
    return jnp.sqrt(jnp.sum(jnp.square(x)))

  mask_fn = checked_mask(weight_decay_mask)

  def init_fn(params):
    if mask_fn is not None:
      mask_fn(params)  # a mask of the wrong tree fails here, not mid-run

    def scalars(value):
      return jax.tree.map(
        lambda p: jnp.asarray(value, float32_or_wider(p.dtype)), params
      )

    return ScaleByOneBitLambState(
      count=jnp.zeros([], jnp.int32),
      mu=_zeros(params),
      nu=_zeros(params),
      nu_fresh=_zeros(params),
      lamb_coeff_freeze=scalars(0.0),
      last_factor=scalars(1.0),
    )

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
        "scale_by_onebit_lamb needs the params: call "
        "update(updates, state, params)."
      )
    t = jnp.asarray(optax.safe_increment(state.count))
    active = t >= 2
    frozen = t > last_warmup_step
    warm = active & ~frozen
    if weight_decay_mask is None:
      mask = jax.tree.map(lambda _: True, params)
    else:
      mask = _validation.check_mask_structure(
        "weight_decay_mask", weight_decay_mask, params
      )
      # A mask may be a prefix of the params: one flag per leaf from here on.
      mask = jax.tree.map(
        lambda m, p: jax.tree.map(lambda _: m, p), mask, params
      )

    def leaf(g, m, v, vf, coeff_avg, last, w, decayed):
      g = g.astype(m.dtype)
      w = w.astype(m.dtype)
      m = jnp.where(active, b1 * m + (1.0 - b1) * g, m)
      v = jnp.where(warm, b2 * v + (1.0 - b2) * jnp.square(g), v)
      vf = jnp.where(warm & (t == freeze_step), v, vf)
      vf = jnp.where(frozen, b2 * vf + (1.0 - b2) * jnp.square(g), vf)
      denom = jnp.sqrt(v) + eps
      prelim = m / denom
      decay_here = decays and decayed
      update = prelim + weight_decay * w if decay_here else prelim
      update_norm = norm(update)

      # The warmup stage: Lamb's clamped trust ratio, averaged for later.
      w_norm = norm(w)
      one = jnp.ones_like(update_norm)
      ratio = w_norm / jnp.where(update_norm == 0, one, update_norm)
      ratio = jnp.maximum(jnp.minimum(ratio, max_coeff), min_coeff)
      coeff = jnp.where((w_norm != 0) & (update_norm != 0), ratio, one)
      coeff_avg = jnp.where(
        warm & (coeff != 1.0),
        coeff_beta * coeff_avg + (1.0 - coeff_beta) * coeff,
        coeff_avg,
      )

      # The compression stage: the frozen ratio times a bounded factor.
      factor = jnp.max(denom / (jnp.sqrt(vf) + eps))
      if decay_here:
        shrink = jnp.minimum(1.0, norm(prelim) / update_norm)
        factor = factor * shrink + (1.0 - shrink)
      factor = jnp.maximum(jnp.minimum(factor, factor_max), factor_min)
      factor = jnp.minimum(factor, last * (1.0 + factor_threshold))
      factor = jnp.maximum(factor, last * (1.0 - factor_threshold))
      last = jnp.where(frozen, factor, last)

      scale = jnp.where(frozen, coeff_avg * factor, coeff)
      out = jnp.where(active, scale * update, jnp.zeros_like(update))
      return out, m, v, vf, coeff_avg, last

    results = jax.tree.map(
      leaf,
      updates,
      state.mu,
      state.nu,
      state.nu_fresh,
      state.lamb_coeff_freeze,
      state.last_factor,
      params,
      mask,
    )
    treedef = jax.tree.structure(updates)
    columns = list(zip(*treedef.flatten_up_to(results), strict=True))
    out, mu, nu, nu_fresh, coeff_avg, last = (
      treedef.unflatten(c) for c in columns
    )
    out = jax.tree.map(lambda u, g: u.astype(g.dtype), out, updates)
    return out, ScaleByOneBitLambState(
      count=t,
      mu=mu,
      nu=nu,
      nu_fresh=nu_fresh,
      lamb_coeff_freeze=coeff_avg,
      last_factor=last,
    )

  return optax.GradientTransformation(init_fn, update_fn)
