"""The command line's view of the schedule registry's uniform options.

``show``, ``plot`` and ``demo`` build any registry schedule from one set of
options (``--lr``, ``--t-total``, ``--warmup`` ...), the keyword arguments of
:func:`bertadam_optax.schedules.make_schedule`. This module holds what only
the command line needs about them: their names, and the error that says which
one a schedule is missing so that it can be reported as the flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bertadam_optax.schedules import registry
from bertadam_optax.schedules._table import MissingScheduleOptionError

__all__ = [
  "OPTION_NAMES",
  "MissingScheduleOptionError",
  "check_required",
]

OPTION_NAMES = (
  "lr",
  "t_total",
  "warmup",
  "warmup_steps",
  "min_lr",
  "decay_rate",
  "decay_steps",
)
"""The uniform options of ``make_schedule`` (``warmup`` and ``warmup_steps``
are one option, ``warmup``, in ``ScheduleInfo.options``)."""


def check_required(name: str, options: Mapping[str, Any]) -> None:
  """Raises :class:`MissingScheduleOptionError` for the first option that
  schedule ``name`` requires (``ScheduleInfo.required``) and ``options``
  lacks; ``warmup`` is given by either ``warmup`` or ``warmup_steps``.
  """
  for option in registry.schedule_info(name).required:
    given = options.get(option) is not None or (
      option == "warmup" and options.get("warmup_steps") is not None
    )
    if not given:
      raise MissingScheduleOptionError(name, option)
