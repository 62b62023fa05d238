r"""transformers ``TrainingArguments`` as one optax optimizer.

:func:`from_training_arguments` builds the optimizer that the transformers
``Trainer`` creates from its arguments (``create_optimizer`` and
``create_scheduler``), as

``MultiSteps(clip -> optimizer -> learning rate)``

* ``max_grad_norm``: torch's ``clip_grad_norm_`` over all parameters.
* ``gradient_accumulation_steps``: ``optax.MultiSteps`` (mean of the micro-batch
  gradients, the Trainer's loss division).
* ``optim``: the ``adamw_torch`` family (``torch.optim.AdamW``), ``sgd`` and
  ``adagrad`` (with ``optim_args``), weight decay on the Trainer's parameters
  (:func:`trainer_weight_decay_mask`).
* ``lr_scheduler_type``: :func:`bertadam_optax.schedules.get_schedule`, or the
  two metric-driven names as transformations that read the loss,
  :func:`reduce_lr_on_plateau` (torch's ``ReduceLROnPlateau``) and
  :func:`greedy` (transformers' ``GreedyLR``).

transformers itself is imported only to read an instance given to it.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Any, Mapping, NamedTuple, Sequence

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax import masks
from bertadam_optax import transforms
from bertadam_optax.interop import deepspeed_config
from bertadam_optax.schedules import modern

__all__ = [
    "GreedyState",
    "ReduceLROnPlateauState",
    "SUPPORTED_OPTIMS",
    "TRAINER_NO_DECAY_PATTERNS",
    "from_training_arguments",
    "greedy",
    "reduce_lr_on_plateau",
    "trainer_weight_decay_mask",
]

SUPPORTED_OPTIMS = ("adamw_torch", "adamw_torch_fused", "sgd", "adagrad")
"""``TrainingArguments.optim`` values supported."""

_METRIC_DRIVEN = ("reduce_lr_on_plateau", "greedy")

# TrainingArguments' defaults (transformers 5) for the fields read here.
_DEFAULTS = {
    "learning_rate": 5e-5,
    "weight_decay": 0.0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "max_grad_norm": 1.0,
    "gradient_accumulation_steps": 1,
    "optim": "adamw_torch_fused",
    "optim_args": None,
    "lr_scheduler_type": "linear",
    "lr_scheduler_kwargs": None,
    "warmup_steps": 0,
    "warmup_ratio": 0.0,
}

TRAINER_NO_DECAY_PATTERNS: tuple[str, ...] = (
    r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)",
    r"_norm(?:$|\.)",
)
"""The Trainer's ``forbidden_name_patterns`` (``re.search`` on the lower-cased
dotted name) of ``Trainer.get_decay_parameter_names``."""


def trainer_weight_decay_mask(
    params: Any = None,
    *,
    norm_modules: Sequence[str] = (),
) -> Any:
  r"""The transformers ``Trainer``'s weight-decay mask: ``True`` where decayed.

  A leaf is not decayed when one of :data:`TRAINER_NO_DECAY_PATTERNS` is
  found in its lower-cased dotted path (as the Trainer's name test), or when
  it sits in a LayerNorm module, which the Trainer tests by type
  (``nn.LayerNorm``): here a leaf named ``scale`` (what Flax norm layers
  hold) or one inside a module whose dotted name matches a ``norm_modules``
  regular expression (for torch-style names of norm layers the patterns miss,
  such as GPT-2's ``ln_f``).

  Args:
    params: a parameter pytree (Flax trees, or flat dicts keyed by torch-style
      dotted names); if ``None``, a function ``params -> mask``.
    norm_modules: regular expressions (``re.fullmatch``) for the dotted names
      of further LayerNorm modules.

  Returns:
    A pytree of bools like ``params``, or a function that builds one.

  References:
    transformers, ``trainer.py``: ``Trainer.get_decay_parameter_names``;
    ``trainer_pt_utils.py``: ``get_parameter_names``.
  """
  patterns = [re.compile(p) for p in TRAINER_NO_DECAY_PATTERNS]
  modules = [re.compile(p) for p in norm_modules]

  def in_norm_module(name: str) -> bool:
    parts = name.split(".")
    if parts[-1] == "scale":
      return True
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
    return any(m.fullmatch(prefix) for prefix in prefixes for m in modules)

  def build(tree: Any) -> Any:
    def decayed(path, leaf):
      del leaf
      name = masks.path_to_name(path)
      lowered = name.lower()
      return not (any(p.search(lowered) for p in patterns) or
                  in_norm_module(name))

    return jax.tree_util.tree_map_with_path(decayed, tree)

  return build if params is None else build(params)


def _is_metric_better(current, best, mode, threshold_mode, threshold):
  if mode == "min":
    bound = best * (1.0 - threshold) if threshold_mode == "rel" else (
        best - threshold)
    return current < bound
  bound = best * (1.0 + threshold) if threshold_mode == "rel" else (
      best + threshold)
  return current > bound


def _check_metric_args(mode, factor, threshold_mode, patience, cooldown,
                       min_lr, eps):
  _validation.check_choice("mode", mode, ("min", "max"))
  _validation.check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
  _validation.check_range("factor", factor, 0.0, 1.0, high_inclusive=False)
  for name, value in (("patience", patience), ("cooldown", cooldown)):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
      raise ValueError(f"{name}={value!r} is out of range; expected an "
                       "integer >= 0.")
  if isinstance(min_lr, (list, tuple)):
    raise ValueError(f"min_lr={min_lr!r}: per-param-group lists are not "
                     "supported; expected a single number.")
  _validation.check_non_negative("min_lr", min_lr)
  _validation.check_non_negative("eps", eps)


def _apply_lr(updates, lr):
  return jax.tree.map(lambda u: (-lr * u).astype(u.dtype), updates)


class ReduceLROnPlateauState(NamedTuple):
  """State of :func:`reduce_lr_on_plateau`."""

  best: chex.Array  # best loss so far (float32)
  num_bad_epochs: chex.Array  # int32
  cooldown_counter: chex.Array  # int32
  # ``learning_rate`` is the rate of the next update, read by ``get_lr``.
  scale: transforms.ScaleByLearningRateState


def reduce_lr_on_plateau(
    learning_rate: float,
    mode: str = "min",
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_lr: float = 0.0,
    eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
  r"""torch's ``ReduceLROnPlateau`` as the learning-rate stage of a chain.

  Scales the updates by ``-lr``, then reads the loss (``value=``) as
  ``scheduler.step(loss)`` after ``optimizer.step()`` does: when the loss has
  not improved on the best (by ``threshold``, relative or absolute) for more
  than ``patience`` updates, outside a ``cooldown``,

  .. math::
    \eta \leftarrow \max(\eta\,\text{factor}, \eta_{\min})
    \quad \text{if the change exceeds eps.}

  Args:
    learning_rate: the starting learning rate.
    mode: ``"min"`` (a loss) or ``"max"``.
    factor: in [0, 1).
    patience: updates without improvement tolerated.
    threshold: improvement needed.
    threshold_mode: ``"rel"`` or ``"abs"``.
    cooldown: updates after a reduction during which nothing is counted.
    min_lr: lower bound.
    eps: smallest change applied.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes
    ``value=`` (the loss of the micro-batch, or last micro-batch, of this
    update). Its state holds the next learning rate for
    :func:`bertadam_optax.get_lr`.

  References:
    PyTorch, ``torch/optim/lr_scheduler.py``: ``ReduceLROnPlateau``;
    transformers ``get_reduce_on_plateau_schedule``.
  """
  _check_metric_args(mode, factor, threshold_mode, patience, cooldown, min_lr,
                     eps)
  _validation.check_non_negative("learning_rate", learning_rate)
  worse = math.inf if mode == "min" else -math.inf

  def init_fn(params):
    del params
    return ReduceLROnPlateauState(
        best=jnp.asarray(worse, jnp.float32),
        num_bad_epochs=jnp.zeros([], jnp.int32),
        cooldown_counter=jnp.zeros([], jnp.int32),
        scale=transforms.ScaleByLearningRateState(
            count=jnp.zeros([], jnp.int32),
            learning_rate=jnp.asarray(learning_rate, jnp.float32)))

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params, extra_args
    lr = state.scale.learning_rate
    updates = _apply_lr(updates, lr)
    current = jnp.asarray(value, jnp.float32)
    better = _is_metric_better(current, state.best, mode, threshold_mode,
                               threshold)
    best = jnp.where(better, current, state.best)
    bad = jnp.where(better, 0, state.num_bad_epochs + 1)
    cooling = state.cooldown_counter > 0
    counter = jnp.where(cooling, state.cooldown_counter - 1,
                        state.cooldown_counter)
    bad = jnp.where(cooling, 0, bad)
    reduce = bad > patience
    reduced = jnp.maximum(lr * factor, min_lr)
    lr = jnp.where(reduce & (lr - reduced > eps), reduced, lr)
    counter = jnp.where(reduce, cooldown, counter)
    bad = jnp.where(reduce, 0, bad)
    return updates, ReduceLROnPlateauState(
        best=best, num_bad_epochs=bad, cooldown_counter=counter,
        scale=transforms.ScaleByLearningRateState(
            count=optax.safe_increment(state.scale.count), learning_rate=lr))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class GreedyState(NamedTuple):
  """State of :func:`greedy`."""

  best: chex.Array  # float32
  num_bad_epochs: chex.Array  # int32
  num_good_epochs: chex.Array  # int32
  cooldown_counter: chex.Array  # int32
  warmup_counter: chex.Array  # int32
  reset_start: chex.Array  # int32
  window: chex.Array  # the last ``window_size`` losses (smooth=True)
  window_count: chex.Array  # int32, losses in the window
  scale: transforms.ScaleByLearningRateState


def greedy(
    learning_rate: float,
    mode: str = "min",
    factor: float = 0.95,
    patience: int = 10,
    threshold: float = 1e-6,
    threshold_mode: str = "abs",
    cooldown: int = 0,
    warmup: int = 0,
    min_lr: float = 1e-3,
    max_lr: float = 1.0,
    eps: float = 1e-8,
    smooth: bool = False,
    window_size: int = 50,
    reset_start: int = 500,
) -> optax.GradientTransformationExtraArgs:
  r"""transformers' ``GreedyLR`` as the learning-rate stage of a chain.

  Scales the updates by ``-lr``, then reads the loss (``value=``; with
  ``smooth`` the mean of the last ``window_size`` losses). More than
  ``patience`` improvements in a row divide the rate by ``factor`` (up to
  ``max_lr``) and start a ``warmup`` pause; more than ``patience`` updates
  without improvement multiply it by ``factor`` (down to ``min_lr``) and
  start a ``cooldown``. After ``reset_start`` reductions that find the rate
  at ``min_lr`` it returns to ``learning_rate`` and forgets the best loss.
  transformers' defaults, including ``min_lr = 1e-3`` (which exceeds
  typical learning rates: the first reduction then *raises* the rate to
  1e-3, as in transformers).

  Args:
    learning_rate: the starting learning rate.
    mode, factor, patience, threshold, threshold_mode, cooldown, warmup,
    min_lr, max_lr, eps, smooth, window_size, reset_start: as ``GreedyLR``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes
    ``value=``; its state holds the next learning rate for
    :func:`bertadam_optax.get_lr`.

  References:
    transformers, ``optimization.py``: ``GreedyLR``.
  """
  _check_metric_args(mode, factor, threshold_mode, patience, cooldown, min_lr,
                     eps)
  _validation.check_non_negative("learning_rate", learning_rate)
  _validation.check_non_negative("max_lr", max_lr)
  for name, value, low in (("warmup", warmup, 0),
                           ("window_size", window_size, 1),
                           ("reset_start", reset_start, 0)):
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
      raise ValueError(f"{name}={value!r} is out of range; expected an "
                       f"integer >= {low}.")
  worse = math.inf if mode == "min" else -math.inf
  size = window_size if smooth else 1

  def fresh(lr, count, window, window_count, reset):
    return GreedyState(
        best=jnp.asarray(worse, jnp.float32),
        num_bad_epochs=jnp.zeros([], jnp.int32),
        num_good_epochs=jnp.zeros([], jnp.int32),
        cooldown_counter=jnp.zeros([], jnp.int32),
        warmup_counter=jnp.zeros([], jnp.int32),
        reset_start=jnp.asarray(reset, jnp.int32),
        window=window, window_count=window_count,
        scale=transforms.ScaleByLearningRateState(count=count,
                                                  learning_rate=lr))

  def init_fn(params):
    del params
    return fresh(jnp.asarray(learning_rate, jnp.float32),
                 jnp.zeros([], jnp.int32), jnp.zeros([size], jnp.float32),
                 jnp.zeros([], jnp.int32), reset_start)

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params, extra_args
    lr = state.scale.learning_rate
    updates = _apply_lr(updates, lr)
    current = jnp.asarray(value, jnp.float32)
    window, window_count = state.window, state.window_count
    if smooth:
      # A ring buffer: slot ``n % size`` holds the oldest of the window.
      window = window.at[window_count % size].set(current)
      window_count = window_count + 1
      current = jnp.sum(window) / jnp.minimum(window_count, size)
    cooling = state.cooldown_counter > 0
    warming = ~cooling & (state.warmup_counter > 0)
    active = ~cooling & ~warming
    better = _is_metric_better(current, state.best, mode, threshold_mode,
                               threshold)
    best = jnp.where(active & better, current, state.best)
    good = jnp.where(active & better, state.num_good_epochs + 1, 0)
    bad = jnp.where(active & ~better, state.num_bad_epochs + 1, 0)
    increase = active & (good > patience)
    decrease = active & ~increase & (bad > patience)

    raised = jnp.minimum(lr / factor, max_lr)
    lowered = jnp.maximum(lr * factor, min_lr)
    new_lr = jnp.where(increase & (raised - lr > eps), raised, lr)
    new_lr = jnp.where(decrease & (lr - lowered > eps), lowered, new_lr)
    cooldown_counter = jnp.where(cooling, state.cooldown_counter - 1,
                                 jnp.where(decrease, cooldown, 0))
    warmup_counter = jnp.where(
        cooling, state.warmup_counter,
        jnp.where(warming, state.warmup_counter - 1,
                  jnp.where(increase, warmup, 0)))
    good = jnp.where(increase, 0, good)
    bad = jnp.where(decrease, 0, bad)
    reset = jnp.where(increase, reset_start, state.reset_start)
    at_min = decrease & ~(new_lr > min_lr)
    reset = jnp.where(at_min, reset - 1, reset)
    count = optax.safe_increment(state.scale.count)
    stepped = GreedyState(
        best=best, num_bad_epochs=bad, num_good_epochs=good,
        cooldown_counter=cooldown_counter, warmup_counter=warmup_counter,
        reset_start=reset, window=window, window_count=window_count,
        scale=transforms.ScaleByLearningRateState(count=count,
                                                  learning_rate=new_lr))
    restarted = fresh(jnp.asarray(learning_rate, jnp.float32), count,
                      jnp.zeros_like(window), jnp.zeros_like(window_count),
                      reset_start)
    do_reset = at_min & (reset <= 0)
    return updates, jax.tree.map(lambda a, b: jnp.where(do_reset, a, b),
                                 restarted, stepped)

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _read_args(args: Any) -> dict:
  """The fields read here, from an instance or a mapping, with defaults."""
  if isinstance(args, Mapping):
    ignored = _validation.unknown_keys(args, _DEFAULTS,
                                      what="a TrainingArguments field")
    if ignored:
      warnings.warn(
          "from_training_arguments: fields that do not change the optimizer "
          f"math are ignored: {', '.join(repr(k) for k in ignored)}.",
          stacklevel=3)
    values = {k: args.get(k, v) for k, v in _DEFAULTS.items()}
  else:
    values = {k: getattr(args, k, v) for k, v in _DEFAULTS.items()}
  for key in ("optim", "lr_scheduler_type"):
    values[key] = getattr(values[key], "value", values[key])
  return values


def _warmup_steps(values: Mapping[str, Any], num_training_steps: int) -> int:
  steps, ratio = values["warmup_steps"], values["warmup_ratio"] or 0.0
  _validation.check_non_negative("warmup_steps", steps)
  _validation.check_range("warmup_ratio", ratio, 0.0, 1.0)
  if steps >= 1:
    return int(steps)
  if steps > 0:
    # transformers 5 reads a warmup_steps below 1 as a ratio.
    return math.ceil(num_training_steps * steps)
  return math.ceil(num_training_steps * ratio)


def _optim_args(text: Any) -> dict:
  if not text:
    return {}
  parsed = {}
  for item in str(text).replace(" ", "").split(","):
    key, sep, value = item.partition("=")
    if not sep:
      raise ValueError(f"optim_args={text!r}: {item!r} is not key=value.")
    parsed[key] = value
  return parsed


def _optimizer(values, mask):
  """The Trainer's optimizer between the clip and the learning rate."""
  optim = values["optim"]
  _validation.check_choice("optim", optim, SUPPORTED_OPTIMS)
  weight_decay = values["weight_decay"]
  _validation.check_non_negative("weight_decay", weight_decay)
  decay = (optax.identity() if weight_decay == 0 else
           optax.add_decayed_weights(weight_decay, mask))
  extra = _optim_args(values["optim_args"])
  if optim.startswith("adamw"):
    return optax.chain(
        transforms.scale_by_bertadam(values["adam_beta1"], values["adam_beta2"],
                                     values["adam_epsilon"],
                                     bias_correction=True),
        decay), None
  # The Trainer puts weight_decay in both param groups, so optim_args'
  # weight_decay never reaches torch: it is read and dropped here too.
  if optim == "sgd":
    for key in extra:
      _validation.check_choice("optim_args key", key,
                               ("momentum", "dampening", "weight_decay",
                                "nesterov"))
    momentum = float(extra.get("momentum", 0.0))
    _validation.check_range("optim_args momentum", momentum, 0.0, 1.0)
    if float(extra.get("dampening", 0.0)) != 0:
      raise ValueError(f"optim_args dampening={extra['dampening']!r} is not "
                       "supported; expected 0.")
    nesterov = extra.get("nesterov", "false").lower() in ("true", "1", "yes")
    if nesterov and momentum == 0:
      raise ValueError("optim_args nesterov=True needs momentum > 0, as "
                       "torch.optim.SGD requires.")
    moments = (optax.trace(momentum, nesterov=nesterov) if momentum
               else optax.identity())
    return optax.chain(decay, moments), None
  for key in extra:
    _validation.check_choice("optim_args key", key,
                             ("lr_decay", "weight_decay", "eps"))
  lr_decay = float(extra.get("lr_decay", 0.0))
  _validation.check_non_negative("optim_args lr_decay", lr_decay)
  eps = float(extra.get("eps", 1e-10))
  return optax.chain(decay, deepspeed_config._scale_by_adagrad_torch(0.0, eps)), (
      lr_decay or None)


def from_training_arguments(
    args: Any,
    *,
    num_training_steps: int,
    weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  r"""The optax optimizer the transformers ``Trainer`` builds from ``args``.

  .. math::
    g &= \tfrac1A \textstyle\sum_{a=1}^{A} g_a, \qquad
    g \leftarrow g \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right) \\
    p &\leftarrow p - \eta_k \, \mathrm{opt}(g, p)

  with ``A = gradient_accumulation_steps``, ``c = max_grad_norm`` (0 or None:
  no clipping), ``eta_k`` the ``lr_scheduler_type`` schedule with
  ``lr_scheduler_kwargs`` and the warmup of ``warmup_steps`` (a count, or a
  ratio of ``num_training_steps`` below 1; the older ``warmup_ratio`` when
  ``warmup_steps`` is 0), and ``opt``: ``torch.optim.AdamW`` (bias-corrected,
  decoupled decay) for the ``adamw_torch`` family, ``torch.optim.SGD`` (L2
  decay; ``momentum``/``nesterov`` from ``optim_args``) or
  ``torch.optim.Adagrad`` (L2 decay; ``lr_decay``/``eps`` from
  ``optim_args``; ``lr_decay`` divides the rate by ``1 + k lr_decay``).

  ``reduce_lr_on_plateau`` and ``greedy`` end the chain with
  :func:`reduce_lr_on_plateau` / :func:`greedy` instead, so ``update`` then
  needs ``value=loss``; the Trainer steps them only after evaluations, here
  they read every update's loss.

  Args:
    args: a ``transformers.TrainingArguments`` or a mapping of its field
      names; absent fields take TrainingArguments' defaults.
    num_training_steps: the optimizer steps of the run (the Trainer's
      ``max_steps``).
    weight_decay_mask: which leaves decay; ``None`` means the Trainer's rule,
      :func:`trainer_weight_decay_mask`.

  Returns:
    An ``optax.GradientTransformation`` (``GradientTransformationExtraArgs``
    for the metric-driven schedules); ``optax.MultiSteps``' when accumulating.

  Raises:
    ValueError: naming the field and its value, for an unsupported ``optim``
      (listing the supported ones), an unknown scheduler, a negative learning
      rate or a bad ``lr_scheduler_kwargs``.

  References:
    transformers, ``trainer.py`` (``create_optimizer``, ``create_scheduler``),
    ``trainer_optimizer.py``, ``training_args.py`` (``get_warmup_steps``).
  """
  values = _read_args(args)
  if (not isinstance(num_training_steps, int) or
      isinstance(num_training_steps, bool) or num_training_steps <= 0):
    raise ValueError(f"num_training_steps={num_training_steps!r} is out of "
                     "range; expected an integer > 0.")
  lr = values["learning_rate"]
  _validation.check_non_negative("learning_rate", lr)
  steps = values["gradient_accumulation_steps"]
  deepspeed_config._positive_int("gradient_accumulation_steps", steps)
  max_norm = values["max_grad_norm"]
  _validation.check_non_negative("max_grad_norm", max_norm or 0.0)
  mask = (trainer_weight_decay_mask() if weight_decay_mask is None
          else weight_decay_mask)
  core, lr_decay = _optimizer(values, mask)

  name = values["lr_scheduler_type"]
  kwargs = dict(values["lr_scheduler_kwargs"] or {})
  if name in _METRIC_DRIVEN:
    if lr_decay:
      raise ValueError("optim_args lr_decay with lr_scheduler_type="
                       f"{name!r} is not supported; expected lr_decay=0.")
    make = reduce_lr_on_plateau if name == "reduce_lr_on_plateau" else greedy
    try:
      stage = make(lr, **kwargs)
    except TypeError as e:
      raise ValueError(f"lr_scheduler_kwargs={kwargs!r} do not fit "
                       f"{name!r}: {e}.") from e
  else:
    schedule = modern.get_schedule(
        name, lr, _warmup_steps(values, num_training_steps),
        num_training_steps, **kwargs)
    if lr_decay:
      base = schedule
      schedule = lambda count: base(count) / (
          1.0 + jnp.asarray(count, jnp.float32) * lr_decay)
    stage = transforms.scale_by_learning_rate(schedule)
  clip = (transforms.clip_by_global_norm_torch(max_norm) if max_norm
          else optax.identity())
  inner = optax.chain(clip, core, stage)
  if steps == 1:
    return inner
  return optax.MultiSteps(inner, every_k_schedule=steps,
                          use_grad_mean=True).gradient_transformation()
