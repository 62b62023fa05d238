"""Deprecated alias of :mod:`bertadam_optax.schedules.bing_bert`.

The module was named after DeepSpeed, but holds the schedules of
DeepSpeedExamples' bing_bert; import ``bertadam_optax.schedules.bing_bert``
(or the names from ``bertadam_optax.schedules``). This alias goes in the next
release.
"""

import warnings

from bertadam_optax.schedules.bing_bert import *  # noqa: F403
from bertadam_optax.schedules.bing_bert import __all__  # noqa: F401
from bertadam_optax.schedules.bing_bert import check_warmup  # noqa: F401

warnings.warn(
  "bertadam_optax.schedules.deepspeed is deprecated: it is now "
  "bertadam_optax.schedules.bing_bert (DeepSpeedExamples' bing_bert "
  "schedules).",
  DeprecationWarning,
  stacklevel=2,
)
