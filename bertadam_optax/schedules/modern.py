"""Deprecated alias of :mod:`bertadam_optax.schedules.transformers`.

The module holds the schedules of ``transformers.get_scheduler`` (and
:func:`linear_warmup_cosine_decay`); import
``bertadam_optax.schedules.transformers`` (or the names from
``bertadam_optax.schedules``). This alias goes in the next release.
"""

import warnings

from bertadam_optax.schedules.transformers import *  # noqa: F403
from bertadam_optax.schedules.transformers import __all__  # noqa: F401

warnings.warn(
  "bertadam_optax.schedules.modern is deprecated: it is now "
  "bertadam_optax.schedules.transformers.",
  DeprecationWarning,
  stacklevel=2,
)
