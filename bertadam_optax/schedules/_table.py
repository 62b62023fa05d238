"""The entry type of the schedule tables, and the uniform options they read.

Every lineage module (``bing_bert``, ``pretrained_bert``, ``transformers``,
``deepspeed_runtime``, ...) exports ``ENTRIES``: one :class:`ScheduleInfo` per
schedule, made by :func:`entry` from the schedule's own function. The
function's docstring gives the one-line formula (the text after
``In one line:``) and its signature gives the uniform options the schedule
reads, so nothing is restated by hand. :mod:`~bertadam_optax.schedules.registry`
only concatenates the modules' ``ENTRIES``.

The uniform options are the ones :func:`~bertadam_optax.schedules.make_schedule`
takes (a peak ``lr``, ``t_total``, a warmup fraction or step count, a floor
``min_lr``, ``decay_rate`` and ``decay_steps``); each lineage's ``build``
function translates them into its factory's own keywords.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple

import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _common

__all__ = [
  "UNIFORM_OPTIONS",
  "MissingScheduleOptionError",
  "Options",
  "ScheduleInfo",
  "drop_none",
  "entry",
  "formula",
  "fraction_or_default",
  "missing_option",
  "ratio",
  "warmup_steps",
]

UNIFORM_OPTIONS = (
  "lr",
  "t_total",
  "warmup",
  "min_lr",
  "decay_rate",
  "decay_steps",
)
"""The uniform options an entry may read, in the order entries list them."""


class Options(NamedTuple):
  """The uniform options, validated; ``warmup`` is a fraction of ``t_total``."""

  lr: Any
  t_total: int | None
  warmup: float | None
  warmup_steps: int | None
  min_lr: Any
  decay_rate: Any
  decay_steps: int | None


class ScheduleInfo(NamedTuple):
  """One registry entry.

  Attributes:
    name: the registry name (``warmup_linear``, ``transformers.cosine``).
    family: the family (``deepspeed``, ``pretrained_bert``, ...).
    source: the name in its family's own API (the ``schedule=`` of bing_bert
      and pytorch-pretrained-bert, the ``get_scheduler`` name, the DeepSpeed
      scheduler ``type``, or the function name).
    formula: the learning rate at step ``s`` in one line (from ``factory``'s
      docstring); ``x = s / T`` is the progress, ``T = t_total``, ``w`` the
      warmup fraction, ``W`` the warmup steps.
    options: the uniform options this schedule reads.
    required: those of ``options`` it cannot do without.
    build: ``(Options, extra keywords) -> optax.Schedule``.
    factory: the function that defines the schedule in its family's module.
  """

  name: str
  family: str
  source: str
  formula: str
  options: tuple[str, ...]
  required: tuple[str, ...]
  build: Callable[[Options, dict[str, Any]], optax.Schedule]
  factory: Callable[..., Any]


_FORMULA = re.compile(r"In one line:\s*``(.+?)``", re.DOTALL)


def formula(function: Callable[..., Any]) -> str:
  """The text after ``In one line:`` in ``function``'s docstring, joined."""
  match = _FORMULA.search(inspect.getdoc(function) or "")
  if match is None:
    raise ValueError(
      f"{function.__qualname__} has no 'In one line: ``...``' in its docstring."
    )
  return " ".join(match.group(1).split())


def entry(
  family: str,
  source: str,
  factory: Callable[..., Any],
  build: Callable[[Options, dict[str, Any]], optax.Schedule],
  *,
  keywords: Mapping[str, str],
  always: Iterable[str] = ("lr",),
  required: Iterable[str] = (),
  optional: Iterable[str] = (),
) -> ScheduleInfo:
  """A table entry for ``factory``, its options read from its signature.

  Args:
    family: the family; the registry name is ``family.source``, except for
      the bare bing_bert (``deepspeed``) names.
    source: the schedule's name in its family's API.
    factory: the schedule's function (its docstring holds the formula).
    build: the translation of the uniform options into the family's call.
    keywords: the factory's keyword -> the uniform option it is read from.
    always: uniform options read (and required) whatever the signature says.
    required: further options required although the factory has a default
      for them (e.g. ``t_total`` when a warmup fraction needs it).
    optional: further options read although the signature has no keyword
      for them.

  Returns:
    The :class:`ScheduleInfo`, options in :data:`UNIFORM_OPTIONS` order.
  """
  params = inspect.signature(factory).parameters
  read = set(always) | set(required) | set(optional)
  needed = set(always) | set(required)
  for key, param in params.items():
    if key in keywords:
      read.add(keywords[key])
      if param.default is inspect.Parameter.empty:
        needed.add(keywords[key])
  order = [o for o in UNIFORM_OPTIONS if o in read]
  name = source if family == "deepspeed" else f"{family}.{source}"
  return ScheduleInfo(
    name,
    family,
    source,
    formula(factory),
    tuple(order),
    tuple(o for o in order if o in needed),
    build,
    factory,
  )


class MissingScheduleOptionError(ValueError):
  """A schedule needs a uniform option that was not given.

  Attributes:
    schedule: the registry name.
    option: the uniform option (``warmup`` for ``warmup``/``warmup_steps``).
  """

  def __init__(self, schedule: str, option: str):
    self.schedule = schedule
    self.option = option
    what = "warmup or warmup_steps" if option == "warmup" else option
    super().__init__(f"schedule {schedule!r} requires {what}.")


def missing_option(schedule: str, option: str) -> MissingScheduleOptionError:
  """The error for a required uniform ``option`` that was not given."""
  return MissingScheduleOptionError(schedule, option)


def warmup_steps(name: str, opts: Options) -> int:
  """The warmup as whole steps; a fraction needs ``t_total`` to become one."""
  if opts.warmup_steps is not None:
    return opts.warmup_steps
  if opts.warmup is None:
    raise missing_option(name, "warmup")
  if opts.t_total is None:
    raise missing_option(name, "t_total")
  if opts.warmup <= 0:  # -1 is the original's "no warmup".
    return 0
  return _common.first_step_at_or_above(opts.warmup, opts.t_total)


def ratio(min_lr: Any, lr: Any) -> Any:
  """``min_lr / lr`` for the families that take the floor as a ratio.

  A zero floor is the ratio 0 even when ``lr`` is 0 too (then ``min_lr``, in
  [0, lr], can only be 0); ``lr`` may be a tracer.
  """
  if _validation.is_number(min_lr) and float(min_lr) == 0:
    return 0.0
  return min_lr / lr


def drop_none(**kwargs: Any) -> dict[str, Any]:
  return {k: v for k, v in kwargs.items() if v is not None}


def fraction_or_default(opts: Options) -> dict[str, float]:
  """The warmup fraction as a keyword; absent if unset (the factory default)."""
  if opts.warmup is not None:
    return {"warmup": opts.warmup}
  if opts.warmup_steps is not None:
    return {"warmup": opts.warmup_steps / opts.t_total}
  return {}
