r"""A DeepSpeed ``ds_config.json`` as one optax optimizer.

:func:`from_deepspeed_config` reads the sections of a DeepSpeed config that
decide the fp32 optimizer math and builds the optax transformation that takes
the same steps as DeepSpeed's engine:

``MultiSteps(clip -> optimizer -> scale_by_learning_rate(schedule))``

* ``gradient_clipping``: the engine's global-norm clip,
  ``coef = min(1, c / (norm + 1e-6))``, on the accumulated gradient.
* ``gradient_accumulation_steps`` (or the batch-size triple): ``optax.MultiSteps``
  with the mean of the micro-batch gradients, which DeepSpeed's division of
  the loss by the accumulation steps gives.
* ``optimizer``: ``Adam``/``AdamW`` (DeepSpeed's ``FusedAdam``, or
  ``torch.optim.Adam``/``AdamW`` with ``torch_adam``), ``Lamb``
  (``FusedLamb``'s CUDA kernel, as :func:`scale_by_fused_lamb`), ``Lion``
  (``FusedLion``), ``Adagrad`` (``torch.optim.Adagrad``); the 1-bit variants
  map to their uncompressed math.
* ``scheduler``: :func:`bertadam_optax.schedules.deepspeed_schedule`; OneCycle's
  momentum cycle drives beta1 through ``optax.inject_hyperparams``.

The chain ends in :func:`bertadam_optax.transforms.scale_by_learning_rate`, so
:func:`bertadam_optax.get_lr` reads the learning rate of the next step.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax import transforms
from bertadam_optax.transforms._numerics import one_minus_power
from bertadam_optax.schedules import deepspeed_runtime

__all__ = [
    "DEEPSPEED_OPTIMIZERS",
    "LAMB_STATIC_ARGS",
    "accumulation_steps",
    "from_deepspeed_config",
    "load_config",
    "scale_by_fused_lamb",
]

DEEPSPEED_OPTIMIZERS = ("Adam", "AdamW", "Lamb", "Lion", "Adagrad",
                        "OneBitAdam", "ZeroOneAdam", "OneBitLamb")
"""Optimizer ``type`` names supported (DeepSpeed matches them in any case)."""

LAMB_STATIC_ARGS = ("b2", "eps", "weight_decay", "max_coeff", "min_coeff",
                    "weight_decay_mask")
"""``static_args`` of ``optax.inject_hyperparams(scale_by_fused_lamb)`` when
OneCycle's momentum cycle drives beta1."""

_COMPRESSED = {"onebitadam": "OneBitAdam", "zerooneadam": "ZeroOneAdam",
               "onebitlamb": "OneBitLamb"}

# Keys read here; everything else in a ds_config leaves the fp32 math alone.
_READ_KEYS = ("optimizer", "scheduler", "gradient_clipping",
              "gradient_accumulation_steps", "train_batch_size",
              "train_micro_batch_size_per_gpu")

# Optimizer params each type takes, with DeepSpeed's defaults.
_ADAM_KEYS = ("lr", "betas", "eps", "weight_decay", "bias_correction",
              "adam_w_mode", "torch_adam", "amsgrad", "foreach",
              "fp32_optimizer_states", "set_grad_none")
_PARAMS = {
    "adam": _ADAM_KEYS,
    "adamw": _ADAM_KEYS,
    "lion": ("lr", "betas", "weight_decay", "set_grad_none"),
    "adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value",
                "eps", "foreach", "maximize", "differentiable", "fused"),
    "lamb": ("lr", "bias_correction", "betas", "eps", "eps_inside_sqrt",
             "weight_decay", "max_coeff", "min_coeff", "amsgrad"),
    "onebitadam": ("lr", "freeze_step", "bias_correction", "betas", "eps",
                   "eps_inside_sqrt", "weight_decay", "amsgrad", "cuda_aware",
                   "comm_backend_name"),
    "zerooneadam": ("lr", "bias_correction", "betas", "eps", "eps_inside_sqrt",
                    "weight_decay", "amsgrad", "cuda_aware",
                    "comm_backend_name", "var_freeze_step", "var_update_scaler",
                    "local_step_scaler", "local_step_clipper"),
    "onebitlamb": ("lr", "freeze_step", "bias_correction", "betas", "eps",
                   "eps_inside_sqrt", "weight_decay", "max_coeff", "min_coeff",
                   "amsgrad", "cuda_aware", "comm_backend_name", "coeff_beta",
                   "factor_max", "factor_min", "factor_threshold"),
}


def load_config(config: Mapping[str, Any] | str | os.PathLike) -> dict:
  """A config as a dict: ``config`` itself, or the JSON file it names."""
  if isinstance(config, Mapping):
    return dict(config)
  if not isinstance(config, (str, os.PathLike)):
    raise ValueError(f"config={config!r} is neither a mapping nor a path to a "
                     "JSON file.")
  try:
    with open(config, encoding="utf-8") as f:
      loaded = json.load(f)
  except OSError as e:
    raise ValueError(f"config={os.fspath(config)!r} cannot be read: "
                     f"{e.strerror}.") from e
  except json.JSONDecodeError as e:
    raise ValueError(f"config={os.fspath(config)!r} is not valid JSON: "
                     f"{e.msg} (line {e.lineno}).") from e
  if not isinstance(loaded, dict):
    raise ValueError(f"config={os.fspath(config)!r} holds a JSON "
                     f"{type(loaded).__name__}; expected an object.")
  return loaded


def _check_top_level(config: Mapping[str, Any]) -> None:
  """Raises for a near-miss of a key read here; warns about the others."""
  ignored = _validation.unknown_keys(config, _READ_KEYS,
                                    what="a DeepSpeed config key")
  if ignored:
    warnings.warn(
        "from_deepspeed_config: keys that do not change the fp32 optimizer "
        f"math are ignored: {', '.join(repr(k) for k in ignored)}.",
        stacklevel=3)


def _positive_int(name: str, value: Any) -> int:
  if (not isinstance(value, int) or isinstance(value, bool)) or value <= 0:
    raise ValueError(f"{name}={value!r} is out of range; expected an integer "
                     "> 0.")
  return value


def accumulation_steps(config: Mapping[str, Any],
                       data_parallel_size: int = 1) -> int:
  """``gradient_accumulation_steps`` as DeepSpeed derives and checks it.

  From whichever of ``train_batch_size``, ``train_micro_batch_size_per_gpu``
  and ``gradient_accumulation_steps`` are given, as DeepSpeed's config does
  (integer divisions included), then DeepSpeed's check ``train_batch_size ==
  micro * accumulation * data_parallel_size``. With none of the batch sizes
  (DeepSpeed then refuses the config) the accumulation steps, or 1, are used.
  """
  dp = _positive_int("data_parallel_size", data_parallel_size)
  values = {}
  for key in ("train_batch_size", "train_micro_batch_size_per_gpu",
              "gradient_accumulation_steps"):
    if config.get(key) is not None:
      values[key] = _positive_int(key, config[key])
  batch = values.get("train_batch_size")
  micro = values.get("train_micro_batch_size_per_gpu")
  steps = values.get("gradient_accumulation_steps")
  if batch is None and micro is None:
    return 1 if steps is None else steps
  if batch is not None and micro is not None and steps is None:
    steps = batch // micro // dp
  elif batch is not None and steps is not None and micro is None:
    micro = batch // dp // steps
  elif batch is None:
    steps = 1 if steps is None else steps
    batch = micro * steps * dp
  elif micro is None:
    steps, micro = 1, batch // dp
  if steps <= 0 or micro <= 0 or batch != micro * steps * dp:
    raise ValueError(
        f"train_batch_size={batch!r} != train_micro_batch_size_per_gpu="
        f"{micro!r} * gradient_accumulation_steps={steps!r} * "
        f"data_parallel_size={dp!r}: inconsistent batch sizes, which "
        "DeepSpeed rejects.")
  return steps


def _betas(name: str, params: Mapping[str, Any], default):
  betas = params.get("betas", default)
  if not isinstance(betas, (list, tuple)) or len(betas) != 2:
    raise ValueError(f"{name} params['betas']={betas!r} is not a pair; "
                     "expected [beta1, beta2].")
  for i, b in enumerate(betas):
    _validation.check_range(f"{name} params['betas'][{i}]", b, 0.0, 1.0,
                            high_inclusive=False)
  return tuple(betas)


def _scale_by_adagrad_torch(initial_accumulator_value: float,
                            eps: float) -> optax.GradientTransformation:
  """``g / (sqrt(sum of g**2) + eps)``, torch's Adagrad (optax puts eps inside)."""

  def init_fn(params):
    return optax.ScaleByRssState(sum_of_squares=jax.tree.map(
        lambda p: jnp.full(jnp.shape(p), initial_accumulator_value,
                           jnp.promote_types(p.dtype, jnp.float32)), params))

  def update_fn(updates, state, params=None):
    del params
    sums = jax.tree.map(lambda g, s: s + jnp.square(g.astype(s.dtype)),
                        updates, state.sum_of_squares)
    updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, sums)
    return updates, optax.ScaleByRssState(sum_of_squares=sums)

  return optax.GradientTransformation(init_fn, update_fn)


def _as_kernel_float(value: Any) -> Any:
  """A Python number rounded to float32, as the FusedLamb kernel receives it."""
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    return float(np.float32(value))
  return value


def _scale_by_lamb_moments(b1: Any, b2: Any, eps: Any,
                           eps_inside_sqrt: bool) -> optax.GradientTransformation:
  """``m / (sqrt(v) + eps)`` (or ``m / sqrt(v + eps)``), moments uncorrected."""

  def init_fn(params):
    def zeros(p):
      return jnp.zeros_like(p, jnp.promote_types(p.dtype, jnp.float32))

    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                  mu=jax.tree.map(zeros, params),
                                  nu=jax.tree.map(zeros, params))

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda g, m: b1 * m + (1.0 - b1) * g.astype(m.dtype),
                      updates, state.mu)
    nu = jax.tree.map(
        lambda g, v: b2 * v + (1.0 - b2) * jnp.square(g.astype(v.dtype)),
        updates, state.nu)
    if eps_inside_sqrt:
      u = jax.tree.map(lambda m, v: m / jnp.sqrt(v + eps), mu, nu)
    else:
      u = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
    return u, optax.ScaleByAdamState(count=optax.safe_increment(state.count),
                                     mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def _scale_by_clamped_trust_ratio(
    min_coeff: Any, max_coeff: Any) -> optax.GradientTransformation:
  """Scales each leaf by ``||w|| / ||u||`` clamped, 1 where either norm is 0."""

  def norm(x):
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return jnp.sqrt(jnp.sum(x * x))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError("scale_by_fused_lamb needs the params: call "
                       "update(updates, state, params).")

    def scale(u, w):
      w_norm, u_norm = norm(w), norm(u)
      one = jnp.ones_like(u_norm)
      ratio = w_norm / jnp.where(u_norm == 0, one, u_norm)
      # The kernel bounds by max_coeff first, so min_coeff wins if they cross.
      ratio = jnp.maximum(jnp.minimum(ratio, max_coeff), min_coeff)
      coeff = jnp.where((w_norm != 0) & (u_norm != 0), ratio, one)
      return (coeff * u).astype(u.dtype)

    return jax.tree.map(scale, updates, params), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update_fn)


def _scale_by_lamb_step_size(b1: Any, b2: Any) -> optax.GradientTransformation:
  """Multiplies by ``sqrt(1 - b2^t) / (1 - b1^t)`` at step ``t = count + 1``."""

  def step_size(count):
    t = jnp.asarray(count, jnp.float32) + 1.0
    return (jnp.sqrt(one_minus_power(b2, t)) /
            one_minus_power(b1, t))

  return optax.scale_by_schedule(step_size)


def scale_by_fused_lamb(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    *,
    eps_inside_sqrt: bool = False,
    bias_correction: bool = True,
    weight_decay: float = 0.0,
    max_coeff: float = 10.0,
    min_coeff: float = 0.01,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  r"""Rescales updates as DeepSpeed's ``FusedLamb`` CUDA kernel does.

  For each parameter tensor ``w`` separately, at step ``t``:

  .. math::
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    u_t &= \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda w
      \quad\left(\frac{m_t}{\sqrt{v_t + \epsilon}} + \lambda w
      \text{ with eps\_inside\_sqrt}\right) \\
    r_t &= \begin{cases}
      \max\left(\min\left(\frac{\lVert w \rVert_2}{\lVert u_t \rVert_2},
        c_{\max}\right), c_{\min}\right)
        & \lVert w \rVert_2 \ne 0 \text{ and } \lVert u_t \rVert_2 \ne 0 \\
      1 & \text{otherwise}
    \end{cases} \\
    \text{out} &= s_t \, r_t \, u_t, \qquad
    s_t = \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
      \ (1 \text{ without bias\_correction})

  followed by ``-lr`` (:func:`bertadam_optax.transforms.scale_by_learning_rate`)
  it is the kernel's ``p -= step_size * lamb_coeff * update``. DeepSpeed's
  quirks, reproduced: the bias correction scales the step, not the moments, so
  it stays outside the trust ratio, multiplies the weight decay term too, and
  ``eps`` is never corrected; the decay joins the update before the norms
  (``weight_decay_mask`` leaves still get the trust ratio); the bounds apply
  ``max_coeff`` first, so ``min_coeff`` wins when ``min_coeff > max_coeff``.
  The kernel receives ``b1``/``b2`` as float32, and so does this.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)`` (to ``v`` with ``eps_inside_sqrt``), >= 0.
    eps_inside_sqrt: FusedLamb's ``eps_inside_sqrt`` (its ``eps_mode`` 0).
    bias_correction: scale the step by ``sqrt(1 - b2^t) / (1 - b1^t)``.
    weight_decay: ``lambda``, >= 0, added to the update inside the trust ratio.
    max_coeff: upper bound of the trust ratio, >= 0.
    min_coeff: lower bound of the trust ratio, >= 0.
    weight_decay_mask: which leaves decay (pytree of bools or a function of
      the params, as ``optax.add_decayed_weights``); ``None`` decays all.

  Returns:
    An ``optax.GradientTransformation`` (a chain: moments, decay, trust ratio,
    step size). It needs ``params`` in ``update``.

  References:
    You et al., 2020, `Large Batch Optimization for Deep Learning: Training
    BERT in 76 minutes <https://arxiv.org/abs/1904.00962>`_; DeepSpeed
    ``deepspeed/ops/lamb/fused_lamb.py`` and
    ``deepspeed/ops/csrc/lamb/fused_lamb_cuda_kernel.cu``.
  """
  _validation.check_range("b1", b1, 0.0, 1.0, high_inclusive=False)
  _validation.check_range("b2", b2, 0.0, 1.0, high_inclusive=False)
  for name, value in (("eps", eps), ("weight_decay", weight_decay),
                      ("max_coeff", max_coeff), ("min_coeff", min_coeff)):
    _validation.check_non_negative(name, value)
  b1, b2 = _as_kernel_float(b1), _as_kernel_float(b2)
  if isinstance(weight_decay, (int, float)) and weight_decay == 0:
    decay = optax.identity()
  else:
    decay = optax.add_decayed_weights(weight_decay, weight_decay_mask)
  step_size = (_scale_by_lamb_step_size(b1, b2) if bias_correction else
               optax.identity())
  return optax.chain(_scale_by_lamb_moments(b1, b2, eps, eps_inside_sqrt),
                     decay, _scale_by_clamped_trust_ratio(min_coeff, max_coeff),
                     step_size)


def _optimizer_spec(name: str, params: Mapping[str, Any]) -> dict:
  """The optimizer's math and hyperparameters, DeepSpeed's defaults filled in.

  ``math`` is ``"adam"``, ``"lamb"``, ``"lion"`` or ``"adagrad"``; the other
  keys are the hyperparameters that math takes.
  """
  kind = name.lower()
  label = f"optimizer {name!r}"
  for key in params:
    _validation.check_choice(f"{label} params key", key, _PARAMS[kind])
  lr = params.get("lr", 1e-2 if kind == "adagrad" else 1e-3)
  _validation.check_non_negative(f"{label} params['lr']", lr)
  weight_decay = params.get("weight_decay")
  if weight_decay is not None:
    _validation.check_non_negative(f"{label} params['weight_decay']",
                                   weight_decay)

  if kind == "lion":
    b1, b2 = _betas(label, params, (0.9, 0.999))
    return dict(math="lion", lr=lr, b1=b1, b2=b2,
                weight_decay=weight_decay or 0.0, decoupled=True)

  if kind == "adagrad":
    for key, allowed in (("lr_decay", 0), ("maximize", False),
                         ("differentiable", False)):
      if params.get(key, allowed) != allowed:
        raise ValueError(f"{label} params[{key!r}]={params[key]!r} is not "
                         f"supported; expected {allowed!r}.")
    eps = params.get("eps", 1e-10)
    _validation.check_non_negative(f"{label} params['eps']", eps)
    init = params.get("initial_accumulator_value", 0.0)
    _validation.check_non_negative(
        f"{label} params['initial_accumulator_value']", init)
    # torch's Adagrad adds the L2 term to the gradient before the sums.
    return dict(math="adagrad", lr=lr, eps=eps, initial_accumulator_value=init,
                weight_decay=weight_decay or 0.0, decoupled=False)

  b1, b2 = _betas(label, params, (0.9, 0.999))
  eps = params.get("eps", 1e-8)
  _validation.check_non_negative(f"{label} params['eps']", eps)
  if params.get("amsgrad", False):
    raise ValueError(f"{label} params['amsgrad']=True is not supported "
                     "(DeepSpeed's fused and CPU optimizers refuse it too).")
  lamb = kind in ("lamb", "onebitlamb")
  if kind in _COMPRESSED:
    warnings.warn(
        f"from_deepspeed_config: {_COMPRESSED[kind]} is run as its "
        f"uncompressed math ({'Lamb' if lamb else 'Adam'} without bias "
        "correction, weight decay added to the update); the compression only "
        "changes the communication.",
        stacklevel=4)
    if params.get("eps_inside_sqrt", False):
      raise ValueError(f"{label} params['eps_inside_sqrt']=True is not "
                       "supported; expected false.")
  if lamb:
    bounds = {}
    for key, default in (("max_coeff", 10.0), ("min_coeff", 0.01)):
      bounds[key] = params.get(key, default)
      _validation.check_non_negative(f"{label} params[{key!r}]", bounds[key])
    # The 1-bit Lamb's uncompressed stage neither corrects the bias nor reads
    # eps_inside_sqrt.
    return dict(math="lamb", lr=lr, b1=b1, b2=b2, eps=eps,
                eps_inside_sqrt=(kind == "lamb" and _flag(
                    label, params, "eps_inside_sqrt", False)),
                bias_correction=(kind == "lamb" and _flag(
                    label, params, "bias_correction", True)),
                weight_decay=weight_decay or 0.0, **bounds)
  if kind in _COMPRESSED:
    return dict(math="adam", lr=lr, b1=b1, b2=b2, eps=eps,
                bias_correction=False, decoupled=True,
                weight_decay=weight_decay or 0.0)
  torch_adam = params.get("torch_adam", False)
  decoupled = kind == "adamw" or bool(params.get("adam_w_mode", True))
  if torch_adam and "bias_correction" in params:
    raise ValueError(
        f"{label} params['bias_correction']={params['bias_correction']!r} "
        "with torch_adam: torch.optim.Adam/AdamW take no bias_correction.")
  bias_correction = _flag(label, params, "bias_correction", True)
  if weight_decay is None:
    # torch.optim.AdamW defaults to weight_decay=0.01; DeepSpeed's own Adams
    # (and torch's Adam) to 0.
    weight_decay = 0.01 if torch_adam and decoupled else 0.0
  return dict(math="adam", lr=lr, b1=b1, b2=b2, eps=eps,
              bias_correction=bias_correction, decoupled=decoupled,
              weight_decay=weight_decay)


def _flag(label: str, params: Mapping[str, Any], key: str, default: bool):
  value = params.get(key, default)
  if not isinstance(value, bool):
    raise ValueError(f"{label} params[{key!r}]={value!r} is not a bool.")
  return value


def _optimizer_core(spec: Mapping[str, Any], mask: Any,
                    beta1: optax.Schedule | None) -> optax.GradientTransformation:
  """The optimizer between the clip and the learning rate.

  ``beta1`` is OneCycle's momentum schedule, or None.
  """
  if spec["math"] == "lamb":
    kwargs = {k: spec[k] for k in ("eps", "eps_inside_sqrt", "bias_correction",
                                   "weight_decay", "max_coeff", "min_coeff")}
    if beta1 is None:
      return scale_by_fused_lamb(spec["b1"], spec["b2"],
                                 weight_decay_mask=mask, **kwargs)
    # Only beta1 moves; the rest stay Python numbers (float32 bias corrections
    # from expm1, no decay stage when weight_decay is 0).
    return optax.inject_hyperparams(
        scale_by_fused_lamb, static_args=LAMB_STATIC_ARGS)(
            b1=beta1, b2=deepspeed_runtime.ONE_CYCLE_BETA2,
            weight_decay_mask=mask, **kwargs)
  if spec["weight_decay"] == 0:
    decay = optax.identity()
  else:
    decay = optax.add_decayed_weights(spec["weight_decay"], mask)
  if spec["math"] == "adagrad":
    return optax.chain(decay, _scale_by_adagrad_torch(
        spec["initial_accumulator_value"], spec["eps"]))
  if spec["math"] == "lion":
    if beta1 is None:
      core = optax.scale_by_lion(spec["b1"], spec["b2"])
    else:
      core = optax.inject_hyperparams(optax.scale_by_lion)(
          b1=beta1, b2=deepspeed_runtime.ONE_CYCLE_BETA2)
    return optax.chain(core, decay)
  if beta1 is None:
    moments = transforms.scale_by_bertadam(
        spec["b1"], spec["b2"], spec["eps"],
        bias_correction=spec["bias_correction"])
  else:
    moments = optax.inject_hyperparams(
        transforms.scale_by_bertadam, static_args=("bias_correction",))(
            b1=beta1, b2=deepspeed_runtime.ONE_CYCLE_BETA2, eps=spec["eps"],
            bias_correction=spec["bias_correction"])
  if spec["decoupled"]:
    return optax.chain(moments, decay)
  return optax.chain(decay, moments)


def _optimizer_name(section: Any) -> tuple[str, dict]:
  if not isinstance(section, Mapping) or "type" not in section:
    raise ValueError(f"config['optimizer']={section!r}: expected "
                     "{'type': ..., 'params': {...}}.")
  name = section["type"]
  by_lower = {n.lower(): n for n in DEEPSPEED_OPTIMIZERS}
  if not isinstance(name, str) or name.lower() not in by_lower:
    _validation.check_choice("config['optimizer']['type']", name,
                             DEEPSPEED_OPTIMIZERS)
  params = section.get("params") or {}
  if not isinstance(params, Mapping):
    raise ValueError(f"config['optimizer']['params']={params!r} is not an "
                     "object.")
  # DeepSpeed's engine refuses it for every optimizer type.
  if "max_grad_norm" in params:
    raise ValueError(
        f"config['optimizer']['params']['max_grad_norm']="
        f"{params['max_grad_norm']!r}: DeepSpeed refuses it; use the "
        "top-level 'gradient_clipping'.")
  return name, dict(params)


def _scheduler_section(section: Any, total_steps: int | None) -> dict | None:
  """The "scheduler" section, ``total_num_steps`` filled from total_steps."""
  if section is None:
    return None
  if not isinstance(section, Mapping) or "type" not in section:
    raise ValueError(f"config['scheduler']={section!r}: expected "
                     "{'type': ..., 'params': {...}}.")
  params = dict(section.get("params") or {})
  if (section["type"] in ("WarmupDecayLR", "WarmupCosineLR") and
      params.get("total_num_steps") is None and total_steps is not None):
    params["total_num_steps"] = total_steps
  return {"type": section["type"], "params": params}


def from_deepspeed_config(
    config: Mapping[str, Any] | str | os.PathLike,
    *,
    total_steps: int | None = None,
    data_parallel_size: int = 1,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  r"""The optax optimizer that takes the steps a ``ds_config.json`` describes.

  .. math::
    g &= \tfrac1A \textstyle\sum_{a=1}^{A} g_a, \qquad
    g \leftarrow g \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right) \\
    p &\leftarrow p - \eta_k \, \mathrm{opt}(g, p)

  with ``A`` the accumulation steps, ``c`` = ``gradient_clipping`` (0: none),
  ``eta_k`` the scheduler's learning rate of DeepSpeed's ``k``-th optimizer
  step, and ``opt`` the optimizer's update:

  * ``Adam``/``AdamW``: DeepSpeed's rule, type ``Adam`` means decoupled
    weight decay (AdamW) unless ``adam_w_mode`` is false (then L2: the decay
    joins the gradient); ``bias_correction`` (default true) as FusedAdam;
    ``torch_adam`` gives torch's Adam/AdamW, whose AdamW decays 0.01 by
    default. ``Adam`` with ``bias_correction: false`` is BertAdam with global
    clipping, built from the same blocks as :func:`bertadam_optax.bertadam`.
  * ``Lamb``: FusedLamb's kernel, :func:`scale_by_fused_lamb` (per-tensor
    trust ratio clamped to ``[min_coeff, max_coeff]``, default
    ``[0.01, 10]``; bias correction on the step size; decay inside the trust
    ratio).
  * ``Lion``: FusedLion (betas default ``(0.9, 0.999)``, decoupled decay).
  * ``Adagrad``: torch's Adagrad (L2 decay, ``eps`` outside the square root).
  * ``OneBitAdam``/``ZeroOneAdam``/``OneBitLamb``: their uncompressed math,
    Adam (Lamb) without bias correction and with the decay added to the
    update, with a warning. The 1-bit optimizers' first step, which only
    initializes the moments, is not reproduced.

  With a ``OneCycle`` scheduler and an optimizer with betas, beta1 follows
  :func:`~bertadam_optax.schedules.one_cycle_momentum` and beta2 is 0.99, as
  DeepSpeed writes them into the param groups.

  Args:
    config: a ds_config dict or the path of its JSON file.
    total_steps: fills the scheduler's ``total_num_steps`` when the config
      leaves it out (WarmupDecayLR, WarmupCosineLR).
    data_parallel_size: DeepSpeed's world size, for the batch-size triple.
    weight_decay_mask: which leaves decay (pytree of bools or a function of
      the params, e.g. :func:`bertadam_optax.bert_weight_decay_mask` for
      bing_bert's no-decay groups); ``None`` decays every leaf.

  Returns:
    An ``optax.GradientTransformation``; ``optax.MultiSteps``' when the config
    accumulates gradients.

  Raises:
    ValueError: naming the key and its value, for an unknown optimizer or
      scheduler type (with the closest name), a missing required scheduler
      parameter, a negative learning rate, an inconsistent batch-size triple
      or an unreadable file.

  References:
    DeepSpeed, ``deepspeed/runtime/engine.py`` (``_configure_basic_optimizer``,
    ``_take_model_step``), ``deepspeed/runtime/config.py`` (batch sizes),
    ``deepspeed/ops/adam/fused_adam.py``, ``deepspeed/ops/lamb/fused_lamb.py``.
  """
  plan = _plan(config, total_steps, data_parallel_size)
  core = _optimizer_core(plan["optimizer"], weight_decay_mask, plan["beta1"])
  inner = optax.chain(transforms.clip_by_global_norm_torch(plan["clip"]), core,
                      transforms.scale_by_learning_rate(plan["schedule"]))
  if plan["accumulation_steps"] == 1:
    return inner
  return optax.MultiSteps(inner, every_k_schedule=plan["accumulation_steps"],
                          use_grad_mean=True).gradient_transformation()


def _plan(config, total_steps=None, data_parallel_size=1) -> dict:
  """What a ds_config asks for, checked, with DeepSpeed's defaults filled in.

  Keys: ``optimizer`` (type name in ``type`` plus :func:`_optimizer_spec`),
  ``clip``, ``accumulation_steps``, ``scheduler`` (None, or ``type`` and
  ``params`` with ``total_num_steps`` filled), ``schedule``, ``beta1``.
  """
  config = load_config(config)
  _check_top_level(config)
  steps = accumulation_steps(config, data_parallel_size)
  clip = config.get("gradient_clipping", 0.0)
  _validation.check_non_negative("config['gradient_clipping']", clip)
  if "optimizer" not in config:
    raise ValueError("config has no 'optimizer' section; expected "
                     "{'type': ..., 'params': {...}}.")
  name, params = _optimizer_name(config["optimizer"])
  spec = dict(_optimizer_spec(name, params), type=name)
  scheduler = _scheduler_section(config.get("scheduler"), total_steps)
  if scheduler is None:
    schedule, beta1 = spec["lr"], None
  else:
    schedule = deepspeed_runtime.deepspeed_schedule(
        scheduler["type"], scheduler["params"], learning_rate=spec["lr"])
    # OneCycle cycles the momentum only of optimizers with betas.
    beta1 = None if spec["math"] == "adagrad" else (
        deepspeed_runtime.deepspeed_momentum_schedule(scheduler["type"],
                                                      scheduler["params"]))
  return dict(optimizer=spec, clip=clip, accumulation_steps=steps,
              scheduler=scheduler, schedule=schedule, beta1=beta1)
