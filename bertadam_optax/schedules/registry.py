r"""One registry of every schedule, with a uniform way to build each one.

The four schedule modules name their schedules as their sources do, and the
names collide: DeepSpeed's bing_bert ``warmup_linear`` is ``1 - x`` after
warmup, pytorch-pretrained-bert's decays from the end of warmup. Here every
schedule has one unambiguous name:

=====================  ======================================  ==============================
family                 names                                   source
=====================  ======================================  ==============================
``deepspeed``          ``warmup_linear``, ... (bare)           DeepSpeed bing_bert
``pretrained_bert``    ``pretrained_bert.warmup_linear``, ...  pytorch-pretrained-bert 0.6.2
``transformers``       ``transformers.cosine``, ...            ``transformers.get_scheduler``
``modern``             ``modern.linear_warmup_cosine_decay``   LLM pretraining recipes
``deepspeed_runtime``  ``deepspeed_runtime.WarmupLR``, ...     ``ds_config.json`` schedulers
=====================  ======================================  ==============================

The bing_bert schedules keep their bare names: they are what ``bertadam``
itself takes as ``schedule=``.

:func:`make_schedule` builds any of them from one set of options (the ones the
command line takes): a peak ``lr``, ``t_total`` steps, a warmup given as a
fraction of ``t_total`` (``warmup``) or as a step count (``warmup_steps``), a
floor ``min_lr``, and ``decay_rate`` / ``decay_steps``. Each entry maps them
onto its family's own keywords, and takes any other keyword of its factory
as is. The registry is read-only.
"""

from __future__ import annotations

import difflib
import numbers
import types
from typing import Any, Callable, Mapping, NamedTuple

import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _common
from bertadam_optax.schedules import deepspeed
from bertadam_optax.schedules import deepspeed_runtime
from bertadam_optax.schedules import modern
from bertadam_optax.schedules import pretrained_bert

__all__ = [
    "FAMILIES",
    "OPTION_NAMES",
    "SCHEDULE_REGISTRY",
    "MissingScheduleOptionError",
    "ScheduleInfo",
    "make_schedule",
    "schedule_info",
    "warmup_boundary",
]

FAMILIES = ("deepspeed", "pretrained_bert", "transformers", "modern",
            "deepspeed_runtime")
"""The schedule families, in the order :data:`SCHEDULE_REGISTRY` lists them."""

OPTION_NAMES = ("lr", "t_total", "warmup", "warmup_steps", "min_lr",
                "decay_rate", "decay_steps")
"""The uniform options of :func:`make_schedule` (``warmup`` and
``warmup_steps`` are one option, ``warmup``, in
:attr:`ScheduleInfo.options`)."""

class MissingScheduleOptionError(ValueError):
  """A schedule needs an option that was not given (``option`` names it)."""

  def __init__(self, schedule: str, option: str):
    self.schedule = schedule
    self.option = option
    what = "warmup or warmup_steps" if option == "warmup" else option
    super().__init__(f"schedule {schedule!r} requires {what}.")


class _Options(NamedTuple):
  """The uniform options, validated; ``warmup`` is a fraction of ``t_total``."""
  lr: float
  t_total: int | None
  warmup: float | None
  warmup_steps: int | None
  min_lr: float | None
  decay_rate: float | None
  decay_steps: int | None


class ScheduleInfo(NamedTuple):
  """One registry entry.

  Attributes:
    name: the registry name (``warmup_linear``, ``transformers.cosine``).
    family: one of :data:`FAMILIES`.
    source: the name in its family's own API (the ``schedule=`` of bing_bert
      and pytorch-pretrained-bert, the ``get_scheduler`` name, the DeepSpeed
      scheduler ``type``, or the function name).
    formula: the learning rate at step ``s`` in one line; ``x = s / T`` is the
      progress, ``T = t_total``, ``w`` the warmup fraction, ``W`` the warmup
      steps.
    options: the uniform options this schedule reads (see
      :func:`make_schedule`).
    required: those of ``options`` it cannot do without.
  """
  name: str
  family: str
  source: str
  formula: str
  options: tuple[str, ...]
  required: tuple[str, ...]
  build: Callable[[_Options, dict[str, Any]], optax.Schedule]


def _need(name: str, opts: _Options, *options: str) -> None:
  for option in options:
    if option == "warmup":
      missing = opts.warmup is None and opts.warmup_steps is None
    else:
      missing = getattr(opts, option) is None
    if missing:
      raise MissingScheduleOptionError(name, option)


def _warmup_steps(name: str, opts: _Options) -> int:
  """The warmup as whole steps; a fraction needs ``t_total`` to become one."""
  _need(name, opts, "warmup")
  if opts.warmup_steps is not None:
    return opts.warmup_steps
  _need(name, opts, "t_total")
  if opts.warmup <= 0:  # -1 is the original's "no warmup".
    return 0
  return _common.first_step_at_or_above(opts.warmup, opts.t_total)


def _is_number(value: Any) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _ratio(min_lr: Any, lr: Any) -> Any:
  """``min_lr / lr`` for the families that take the floor as a ratio.

  A zero floor is the ratio 0 even when ``lr`` is 0 too (then ``min_lr``, in
  [0, lr], can only be 0); ``lr`` may be a tracer.
  """
  if _is_number(min_lr) and min_lr == 0:
    return 0.0
  return min_lr / lr


def _drop_none(**kwargs: Any) -> dict[str, Any]:
  return {k: v for k, v in kwargs.items() if v is not None}


def _fraction_or_default(opts: _Options) -> dict[str, float]:
  """The warmup fraction as a keyword; absent if unset (the factory default)."""
  if opts.warmup is not None:
    return {"warmup": opts.warmup}
  if opts.warmup_steps is not None:
    return {"warmup": opts.warmup_steps / opts.t_total}
  return {}


def _bing_bert(source: str) -> Callable:
  exp = source in ("warmup_linear_decay_exp", "warmup_exp_decay_exp")

  def build(opts: _Options, extra: dict[str, Any]) -> optax.Schedule:
    _need(source, opts, "t_total")
    if exp:
      _need(source, opts, "decay_rate", "decay_steps")
      extra = {"decay_rate": opts.decay_rate,
               "decay_steps": opts.decay_steps, **extra}
    return deepspeed.bert_schedule(source, opts.lr, opts.t_total,
                                   **_fraction_or_default(opts), **extra)

  return build


def _pretrained_bert(source: str) -> Callable:

  def build(opts: _Options, extra: dict[str, Any]) -> optax.Schedule:
    if source == "none":
      # The constant ignores t_total and warmup, as ConstantLR does.
      return pretrained_bert.pretrained_bert_schedule(source, opts.lr, -1,
                                                      **extra)
    _need("pretrained_bert." + source, opts, "t_total")
    return pretrained_bert.pretrained_bert_schedule(
        source, opts.lr, opts.t_total, **_fraction_or_default(opts), **extra)

  return build


# transformers' get_scheduler: which uniform options each name reads, and the
# scheduler-specific keyword that ``min_lr`` / ``decay_steps`` become.
_TRANSFORMERS = {
    "linear": ("warmup", "t_total"),
    "cosine": ("warmup", "t_total"),
    "cosine_with_restarts": ("warmup", "t_total"),
    "polynomial": ("warmup", "t_total"),
    "constant": (),
    "constant_with_warmup": ("warmup",),
    "inverse_sqrt": ("warmup",),
    "cosine_with_min_lr": ("warmup", "t_total", "min_lr"),
    "cosine_warmup_with_min_lr": ("warmup", "t_total", "min_lr"),
    "warmup_stable_decay": ("warmup", "t_total", "decay_steps"),
}


def _transformers(source: str) -> Callable:
  name = "transformers." + source
  needed = _TRANSFORMERS[source]

  def build(opts: _Options, extra: dict[str, Any]) -> optax.Schedule:
    _need(name, opts, *needed)
    steps = {}
    if "warmup" in needed:
      steps["num_warmup_steps"] = _warmup_steps(name, opts)
    if "t_total" in needed:
      steps["num_training_steps"] = opts.t_total
    if source == "polynomial" and opts.min_lr is not None:
      extra = {"lr_end": opts.min_lr, **extra}
    elif source in ("cosine_with_min_lr", "cosine_warmup_with_min_lr"):
      extra = {"min_lr": opts.min_lr, **extra}
    elif source == "warmup_stable_decay":
      extra = {"num_decay_steps": opts.decay_steps, **extra}
      if opts.min_lr is not None:
        extra = {"min_lr_ratio": _ratio(opts.min_lr, opts.lr), **extra}
    return modern.get_schedule(source, opts.lr, **steps, **extra)

  return build


def _linear_warmup_cosine_decay(opts: _Options,
                                extra: dict[str, Any]) -> optax.Schedule:
  name = "modern.linear_warmup_cosine_decay"
  _need(name, opts, "t_total")
  return modern.linear_warmup_cosine_decay(
      opts.lr, _warmup_steps(name, opts), opts.t_total,
      **_drop_none(min_lr=opts.min_lr), **extra)


def _runtime_params(source: str, opts: _Options) -> dict[str, Any]:
  """The ``ds_config.json`` params of ``source`` for the uniform options."""
  name = "deepspeed_runtime." + source
  if source == "LRRangeTest":
    return {"lr_range_test_min_lr": opts.lr}
  if source == "OneCycle":
    _need(name, opts, "min_lr")
    return _drop_none(cycle_min_lr=opts.min_lr, cycle_max_lr=opts.lr,
                      cycle_first_step_size=_warmup_steps(name, opts),
                      decay_lr_rate=opts.decay_rate,
                      decay_step_size=opts.decay_steps)
  warmup_steps = _warmup_steps(name, opts)
  if source == "WarmupLR":
    return _drop_none(warmup_min_lr=opts.min_lr, warmup_max_lr=opts.lr,
                      warmup_num_steps=warmup_steps)
  _need(name, opts, "t_total")
  if source == "WarmupDecayLR":
    return _drop_none(total_num_steps=opts.t_total, warmup_min_lr=opts.min_lr,
                      warmup_max_lr=opts.lr, warmup_num_steps=warmup_steps)
  # WarmupCosineLR: a ratio of the learning rate, so the floor is one too.
  ratio = None if opts.min_lr is None else _ratio(opts.min_lr, opts.lr)
  return _drop_none(total_num_steps=opts.t_total,
                    warmup_num_steps=warmup_steps, cos_min_ratio=ratio)


def _deepspeed_runtime(source: str) -> Callable:

  def build(opts: _Options, extra: dict[str, Any]) -> optax.Schedule:
    params = {**_runtime_params(source, opts), **extra}
    return deepspeed_runtime.deepspeed_schedule(source, params,
                                                learning_rate=opts.lr)

  return build


def _entry(family, source, formula, options, required, build) -> ScheduleInfo:
  name = source if family == "deepspeed" else f"{family}.{source}"
  return ScheduleInfo(name, family, source, formula, options, required, build)


_ST = ("lr", "t_total", "warmup")
_EXP = _ST + ("decay_rate", "decay_steps")

_ENTRIES = (
    _entry("deepspeed", "warmup_cosine",
           "lr * (x/w if x < w else 0.5 (1 + cos(pi x)))", _ST,
           ("lr", "t_total"), _bing_bert("warmup_cosine")),
    _entry("deepspeed", "warmup_constant", "lr * (x/w if x < w else 1)", _ST,
           ("lr", "t_total"), _bing_bert("warmup_constant")),
    _entry("deepspeed", "warmup_linear",
           "lr * (x/w if x < w else 1 - x); w = 0: lr", _ST, ("lr", "t_total"),
           _bing_bert("warmup_linear")),
    _entry("deepspeed", "warmup_linear_decay_exp",
           "lr * (x/w if x < w else decay_rate ** ((s - w T) / decay_steps))",
           _EXP, ("lr", "t_total", "decay_rate", "decay_steps"),
           _bing_bert("warmup_linear_decay_exp")),
    _entry("deepspeed", "warmup_exp_decay_exp",
           "lr * ((x/w)**degree if x < w else "
           "decay_rate ** ((s - w T) / decay_steps))",
           _EXP, ("lr", "t_total", "decay_rate", "decay_steps"),
           _bing_bert("warmup_exp_decay_exp")),
    _entry("deepspeed", "warmup_exp_decay_poly",
           "lr * ((x/w)**warm_degree if x < w else (1 - x)**degree)", _ST,
           ("lr", "t_total"), _bing_bert("warmup_exp_decay_poly")),
    _entry("pretrained_bert", "none", "lr", ("lr",), ("lr",),
           _pretrained_bert("none")),
    _entry("pretrained_bert", "warmup_constant", "lr * (x/w if x < w else 1)",
           _ST, ("lr", "t_total"), _pretrained_bert("warmup_constant")),
    _entry("pretrained_bert", "warmup_linear",
           "lr * (x/w if x < w else max((x - 1) / (w - 1), 0))", _ST,
           ("lr", "t_total"), _pretrained_bert("warmup_linear")),
    _entry("pretrained_bert", "warmup_cosine",
           "lr * (x/w if x < w else 0.5 (1 + cos(2 pi c q))), "
           "q = (x - w)/(1 - w), c = 0.5", _ST, ("lr", "t_total"),
           _pretrained_bert("warmup_cosine")),
    _entry("pretrained_bert", "warmup_cosine_with_hard_restarts",
           "lr * (x/w if x < w else 0.5 (1 + cos(pi frac(c q)))), c = 1", _ST,
           ("lr", "t_total"),
           _pretrained_bert("warmup_cosine_with_hard_restarts")),
    _entry("pretrained_bert", "warmup_cosine_with_warmup_restarts",
           "lr * c cycles, each a warmup over w then a half cosine to 0, c = 1",
           _ST, ("lr", "t_total"),
           _pretrained_bert("warmup_cosine_with_warmup_restarts")),
    _entry("transformers", "linear",
           "lr * (s/W if s < W else max(0, (T - s)/(T - W)))", _ST, _ST,
           _transformers("linear")),
    _entry("transformers", "cosine",
           "lr * (s/W if s < W else 0.5 (1 + cos(pi (s - W)/(T - W))))", _ST,
           _ST, _transformers("cosine")),
    _entry("transformers", "cosine_with_restarts",
           "lr * (s/W if s < W else 0.5 (1 + cos(pi frac(c p)))), "
           "p = (s - W)/(T - W), c = 1", _ST, _ST,
           _transformers("cosine_with_restarts")),
    _entry("transformers", "polynomial",
           "s/W lr if s < W else (lr - min_lr) (1 - p)**power + min_lr, "
           "p = (s - W)/(T - W)", _ST + ("min_lr",), _ST,
           _transformers("polynomial")),
    _entry("transformers", "constant", "lr", ("lr",), ("lr",),
           _transformers("constant")),
    _entry("transformers", "constant_with_warmup",
           "lr * (s/W if s < W else 1)", ("lr", "warmup"), ("lr", "warmup"),
           _transformers("constant_with_warmup")),
    _entry("transformers", "inverse_sqrt",
           "lr * (s/W if s < W else sqrt(tau / (s - W + tau))), tau = W",
           ("lr", "warmup"), ("lr", "warmup"), _transformers("inverse_sqrt")),
    _entry("transformers", "cosine_with_min_lr",
           "s/W lr if s < W else min_lr + (lr - min_lr) 0.5 (1 + cos(pi p)), "
           "p = (s - W)/(T - W)", _ST + ("min_lr",), _ST + ("min_lr",),
           _transformers("cosine_with_min_lr")),
    _entry("transformers", "cosine_warmup_with_min_lr",
           "as cosine_with_min_lr, both phases shifted one step "
           "(warmup never starts at 0)", _ST + ("min_lr",), _ST + ("min_lr",),
           _transformers("cosine_warmup_with_min_lr")),
    _entry("transformers", "warmup_stable_decay",
           "lr * (s/W if s < W, then 1, then a cosine to min_lr over the "
           "last decay_steps of T)", _ST + ("min_lr", "decay_steps"),
           _ST + ("decay_steps",), _transformers("warmup_stable_decay")),
    _entry("modern", "linear_warmup_cosine_decay",
           "s/W lr if s < W else min_lr + (lr - min_lr) 0.5 (1 + cos(pi p)), "
           "held at min_lr past T", _ST + ("min_lr",), _ST,
           _linear_warmup_cosine_decay),
    _entry("deepspeed_runtime", "WarmupLR",
           "min_lr + (lr - min_lr) log(s)/log(W) while s < W, then lr",
           ("lr", "warmup", "min_lr"), ("lr", "warmup"),
           _deepspeed_runtime("WarmupLR")),
    _entry("deepspeed_runtime", "WarmupDecayLR",
           "WarmupLR, then lr * (T - s)/(T - W) down to 0", _ST + ("min_lr",),
           _ST, _deepspeed_runtime("WarmupDecayLR")),
    _entry("deepspeed_runtime", "WarmupCosineLR",
           "lr * warmup ratio while s < W, then a cosine ratio down to "
           "min_lr/lr", _ST + ("min_lr",), _ST,
           _deepspeed_runtime("WarmupCosineLR")),
    _entry("deepspeed_runtime", "OneCycle",
           "min_lr up to lr over W steps, back over W more, then "
           "min_lr / (1 + decay_rate (s - 2W) / decay_steps)",
           ("lr", "warmup", "min_lr", "decay_rate", "decay_steps"),
           ("lr", "warmup", "min_lr"), _deepspeed_runtime("OneCycle")),
    _entry("deepspeed_runtime", "LRRangeTest",
           "lr * (1 + step_rate * s / step_size), growing without bound",
           ("lr",), ("lr",), _deepspeed_runtime("LRRangeTest")),
)

SCHEDULE_REGISTRY: Mapping[str, ScheduleInfo] = types.MappingProxyType(
    {entry.name: entry for entry in _ENTRIES})
"""Registry name -> :class:`ScheduleInfo`, for every schedule of every family.

Read-only; ordered by family (:data:`FAMILIES`), then as each family's module
lists them.
"""


def _suggestion(name: str) -> str | None:
  """The closest registry name to ``name``, matching family-less names too."""
  names = list(SCHEDULE_REGISTRY)
  by_source: dict[str, str] = {}
  for entry in _ENTRIES:
    by_source.setdefault(entry.source.lower(), entry.name)
  key = str(name).rsplit(".", 1)[-1]
  if key.lower() in by_source:
    return by_source[key.lower()]
  close = difflib.get_close_matches(str(name), names, n=1, cutoff=0.6)
  if close:
    return close[0]
  close = difflib.get_close_matches(key.lower(), list(by_source), n=1,
                                    cutoff=0.6)
  return by_source[close[0]] if close else None


def schedule_info(name: str) -> ScheduleInfo:
  """The registry entry of ``name``.

  Args:
    name: a registry name (see :data:`SCHEDULE_REGISTRY`).

  Returns:
    Its :class:`ScheduleInfo`.

  Raises:
    ValueError: for an unknown name, suggesting the closest one (a name given
      without its family, ``cosine``, suggests ``transformers.cosine``).
  """
  if name in SCHEDULE_REGISTRY:
    return SCHEDULE_REGISTRY[name]
  close = _suggestion(name)
  hint = f" Did you mean {close!r}?" if close else ""
  raise ValueError(f"schedule={name!r} is not a known schedule; expected a "
                   f"name of SCHEDULE_REGISTRY (one per line in "
                   f"`bertadam-optax list`).{hint}")


def _check_int(name: str, value: Any, low: int) -> int | None:
  if value is None:
    return None
  whole = isinstance(value, numbers.Integral) or (
      isinstance(value, float) and value.is_integer())
  if isinstance(value, bool) or not whole:
    raise ValueError(f"{name}={value!r} is not a whole number; expected an "
                     f"integer >= {low}.")
  return _validation.check_range(name, int(value), low, None)


def _options(lr, t_total, warmup, warmup_steps, min_lr, decay_rate,
             decay_steps) -> _Options:
  _validation.check_non_negative("lr", lr)
  t_total = _check_int("t_total", t_total, 1)
  if warmup is not None and warmup_steps is not None:
    raise ValueError(f"warmup={warmup!r}, warmup_steps={warmup_steps!r}: "
                     "give at most one of them.")
  if warmup is not None:
    deepspeed.check_warmup(warmup)
  warmup_steps = _check_int("warmup_steps", warmup_steps, 0)
  if warmup_steps is not None and t_total is not None and (
      warmup_steps >= t_total):
    raise ValueError(f"warmup_steps={warmup_steps!r} is out of range; "
                     f"expected 0 <= warmup_steps < t_total={t_total!r}.")
  if min_lr is not None:
    _validation.check_range("min_lr", min_lr, 0,
                            lr if _is_number(lr) else None)
  if decay_rate is not None:
    _validation.check_non_negative("decay_rate", decay_rate)
  decay_steps = _check_int("decay_steps", decay_steps, 0)
  return _Options(lr, t_total, warmup, warmup_steps, min_lr, decay_rate,
                  decay_steps)


def make_schedule(
    name: str,
    *,
    lr: float,
    t_total: int | None = None,
    warmup: float | None = None,
    warmup_steps: int | None = None,
    min_lr: float | None = None,
    decay_rate: float | None = None,
    decay_steps: int | None = None,
    **kwargs: Any,
) -> optax.Schedule:
  r"""Any registry schedule as an Optax schedule, from uniform options.

  .. math::
    \eta(s) = \text{formula}_{\text{name}}(s;\ \eta_{\text{peak}} = \text{lr},
    T = \text{t\_total}, \ldots)

  Each option is translated into the family's own keywords: ``warmup`` is a
  fraction for the bing_bert and pytorch-pretrained-bert schedules and is
  turned into whole steps (the first step at or past ``warmup * t_total``) for
  the step-based families; ``warmup_steps`` goes the other way. ``min_lr`` is
  transformers' ``min_lr`` / ``lr_end`` / ``min_lr_ratio * lr``, DeepSpeed's
  ``warmup_min_lr`` / ``cos_min_ratio * lr`` / ``cycle_min_lr``;
  ``decay_steps`` is also WSD's ``num_decay_steps``. Options a schedule does
  not read (:attr:`ScheduleInfo.options`) are ignored, so one set of options
  can build several schedules.

  Args:
    name: a registry name (:data:`SCHEDULE_REGISTRY`).
    lr: the peak learning rate (>= 0).
    t_total: total number of steps (integer >= 1).
    warmup: warmup as a fraction of ``t_total``, in [0, 1) or -1 for none.
    warmup_steps: warmup as a step count (integer in [0, t_total)); at most
      one of ``warmup`` and ``warmup_steps``.
    min_lr: the floor, in [0, lr].
    decay_rate: the bing_bert exponential decay's rate, OneCycle's
      ``decay_lr_rate`` (>= 0; each schedule narrows the range).
    decay_steps: the bing_bert exponential decay's period, OneCycle's
      ``decay_step_size``, WSD's ``num_decay_steps`` (integer >= 0; each
      schedule narrows the range).
    **kwargs: further keywords of the family's factory (``degree``,
      ``cycles``, ``num_cycles``, ``power``, ``warmup_type`` ...), passed on
      as they are.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Raises:
    MissingScheduleOptionError: a required option is missing.
    ValueError: an unknown name (with the closest one) or an option out of
      range, naming it.
  """
  entry = schedule_info(name)
  opts = _options(lr, t_total, warmup, warmup_steps, min_lr, decay_rate,
                  decay_steps)
  return entry.build(opts, dict(kwargs))


def warmup_boundary(
    name: str,
    *,
    t_total: int | None = None,
    warmup: float | None = None,
    warmup_steps: int | None = None,
) -> int | None:
  """The first step after the warmup of ``name`` under these options.

  Args:
    name: a registry name.
    t_total: as in :func:`make_schedule`.
    warmup: as in :func:`make_schedule`.
    warmup_steps: as in :func:`make_schedule`.

  Returns:
    The step count ``W`` at which the warmup ends, as the schedule decides it
    (for the fraction-based families, the first ``s`` with ``s / t_total >=
    warmup``); ``None`` if the schedule has no warmup or it is not set.
  """
  entry = schedule_info(name)
  if "warmup" not in entry.options:
    return None
  if warmup_steps is not None:
    return _check_int("warmup_steps", warmup_steps, 0)
  if warmup is None or t_total is None:
    return None
  deepspeed.check_warmup(warmup)
  if warmup <= 0:
    return 0
  return _common.first_step_at_or_above(warmup, _check_int("t_total",
                                                            t_total, 1))
