r"""One registry of every schedule, with a uniform way to build each one.

The lineage modules name their schedules as their sources do, and the names
collide: DeepSpeed's bing_bert ``warmup_linear`` is ``1 - x`` after warmup,
pytorch-pretrained-bert's decays from the end of warmup. Here every schedule
has one unambiguous name:

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

This module only aggregates: each entry is made in its lineage module (its
``ENTRIES``), from the schedule's function (formula from its docstring,
options from its signature, see ``_table.entry``). A new lineage is one module
exporting ``ENTRIES`` plus one line in :data:`_LINEAGES`.

:func:`make_schedule` builds any of them from one set of options (the ones the
command line takes): a peak ``lr``, ``t_total`` steps, a warmup given as a
fraction of ``t_total`` (``warmup``) or as a step count (``warmup_steps``), a
floor ``min_lr``, and ``decay_rate`` / ``decay_steps``. Each entry maps them
onto its family's own keywords, and takes any other keyword of its factory
as is. The registry is read-only.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from typing import Any

import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _common
from bertadam_optax.schedules import _table
from bertadam_optax.schedules import bing_bert
from bertadam_optax.schedules import deepspeed_runtime
from bertadam_optax.schedules import megatron
from bertadam_optax.schedules import pretrained_bert
from bertadam_optax.schedules import transformers
from bertadam_optax.schedules._table import ScheduleInfo

__all__ = [
  "FAMILIES",
  "SCHEDULE_REGISTRY",
  "ScheduleInfo",
  "make_schedule",
  "schedule_info",
  "warmup_boundary",
]

# The lineage modules, in registry order. Adding one (e.g. Megatron-LM) is a
# module with ``ENTRIES`` and one line here.
_LINEAGES = (
  bing_bert,
  pretrained_bert,
  transformers,
  deepspeed_runtime,
  megatron,
)

_ENTRIES: tuple[ScheduleInfo, ...] = tuple(
  e for module in _LINEAGES for e in module.ENTRIES
)

FAMILIES = tuple(dict.fromkeys(e.family for e in _ENTRIES))
"""The schedule families, in the order :data:`SCHEDULE_REGISTRY` lists them."""

# What make_schedule raises for a missing option; imported by the command
# line, which names the flag (not in ``__all__``: the class lives in _table).
MissingScheduleOptionError = _table.MissingScheduleOptionError


SCHEDULE_REGISTRY: Mapping[str, ScheduleInfo] = types.MappingProxyType(
  {entry.name: entry for entry in _ENTRIES}
)
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
  close = difflib.get_close_matches(
    key.lower(), list(by_source), n=1, cutoff=0.6
  )
  return by_source[close[0]] if close else None


def schedule_info(name: str) -> ScheduleInfo:
  """The registry entry of ``name``.

  Args:
    name: a registry name (see :data:`SCHEDULE_REGISTRY`).

  Returns:
    Its :class:`ScheduleInfo`.


  Examples:
    >>> from bertadam_optax.schedules import schedule_info
    >>> info = schedule_info("transformers.cosine")
    >>> info.family, info.source, info.required
    ('transformers', 'cosine', ('lr', 't_total', 'warmup'))

  Raises:
    ValueError: for an unknown name, suggesting the closest one (a name given
      without its family, ``cosine``, suggests ``transformers.cosine``).
  """
  if name in SCHEDULE_REGISTRY:
    return SCHEDULE_REGISTRY[name]
  close = _suggestion(name)
  hint = f" Did you mean {close!r}?" if close else ""
  raise ValueError(
    f"schedule={name!r} is not a known schedule; expected a "
    f"name of SCHEDULE_REGISTRY (one per line in "
    f"`bertadam-optax list`).{hint}"
  )


def _step_count(name: str, value: Any, low: int) -> int | None:
  return None if value is None else _validation.check_int(name, value, low)


def _options(
  lr, t_total, warmup, warmup_steps, min_lr, decay_rate, decay_steps
) -> _table.Options:
  _validation.check_number("lr", lr, 0)
  lr = _common.static_float(lr)
  t_total = _step_count("t_total", t_total, 1)
  if warmup is not None and warmup_steps is not None:
    raise ValueError(
      f"warmup={warmup!r}, warmup_steps={warmup_steps!r}: "
      "give at most one of them."
    )
  if warmup is not None:
    warmup = _common.static_float(bing_bert.check_warmup(warmup))
  warmup_steps = _step_count("warmup_steps", warmup_steps, 0)
  if (
    warmup_steps is not None
    and t_total is not None
    and (warmup_steps >= t_total)
  ):
    raise ValueError(
      f"warmup_steps={warmup_steps!r} is out of range; "
      f"expected 0 <= warmup_steps < t_total={t_total!r}."
    )
  if min_lr is not None:
    _validation.check_number(
      "min_lr", min_lr, 0, lr if _validation.is_number(lr) else None
    )
    min_lr = _common.static_float(min_lr)
  if decay_rate is not None:
    decay_rate = _common.static_float(
      _validation.check_number("decay_rate", decay_rate, 0)
    )
  decay_steps = _step_count("decay_steps", decay_steps, 0)
  return _table.Options(
    lr, t_total, warmup, warmup_steps, min_lr, decay_rate, decay_steps
  )


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


  Examples:
    >>> from bertadam_optax.schedules import make_schedule
    >>> options = dict(lr=1e-3, t_total=1000, warmup=0.1)
    >>> bing_bert = make_schedule("warmup_linear", **options)
    >>> original = make_schedule("pretrained_bert.warmup_linear", **options)
    >>> round(float(bing_bert(100)), 7), round(float(original(100)), 7)
    (0.0009, 0.001)

  Raises:
    MissingScheduleOptionError: a required option is missing.
    ValueError: an unknown name (with the closest one) or an option out of
      range, naming it.
  """
  entry = schedule_info(name)
  opts = _options(
    lr, t_total, warmup, warmup_steps, min_lr, decay_rate, decay_steps
  )
  for option in entry.required:
    given = getattr(opts, option) is not None or (
      option == "warmup" and opts.warmup_steps is not None
    )
    if not given:
      raise _table.missing_option(name, option)
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

  Examples:
    >>> from bertadam_optax.schedules import warmup_boundary
    >>> warmup_boundary("transformers.linear", t_total=1000, warmup=0.1)
    100
    >>> # The first s with s / 1000 >= 0.0015.
    >>> warmup_boundary("warmup_linear", t_total=1000, warmup=0.0015)
    2
    >>> warmup_boundary("transformers.linear", warmup_steps=50)
    50
    >>> print(warmup_boundary("transformers.constant", t_total=1000,
    ...                       warmup=0.1))
    None
  """
  entry = schedule_info(name)
  if "warmup" not in entry.options:
    return None
  if warmup_steps is not None:
    return _validation.check_int("warmup_steps", warmup_steps, 0)
  if warmup is None or t_total is None:
    return None
  bing_bert.check_warmup(warmup)
  if warmup <= 0:
    return 0
  return _common.first_step_at_or_above(
    float(warmup), _validation.check_int("t_total", t_total, 1)
  )
