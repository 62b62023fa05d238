"""Learning-rate schedules: pure, jittable ``count -> value`` functions.

One module per lineage, each holding its factories and ``ENTRIES``, its rows
of the registry:

* :mod:`~bertadam_optax.schedules.bing_bert`: the six BertAdam schedules of
  DeepSpeedExamples' bing_bert (``SCHEDULES``) and their Optax factory
  :func:`bert_schedule`.
* :mod:`~bertadam_optax.schedules.pretrained_bert`: the original
  pytorch-pretrained-bert 0.6.2 schedules (their names overlap the bing_bert
  ones, so they stay in their own namespace).
* :mod:`~bertadam_optax.schedules.transformers`: the schedules of
  ``transformers.get_scheduler`` (:func:`get_schedule`) and
  :func:`linear_warmup_cosine_decay`.
* :mod:`~bertadam_optax.schedules.deepspeed_runtime`: the schedulers of
  ``deepspeed.runtime.lr_schedules`` that a ``ds_config.json`` names.
* :mod:`~bertadam_optax.schedules.megatron`: Megatron-LM's learning-rate and
  weight-decay schedules (``OptimizerParamScheduler``).
* :mod:`~bertadam_optax.schedules.modifiers`: a schedule shifted in the step
  (a restart) or divided by torch Adagrad's inverse-time ``lr_decay``.

:mod:`~bertadam_optax.schedules.registry` puts their entries in one table
(with family-qualified names where names collide) and builds any of them from
uniform options (:func:`make_schedule`). ``schedules.deepspeed`` and
``schedules.modern`` are deprecated aliases of ``bing_bert`` and
``transformers``.
"""

import importlib as _importlib

from bertadam_optax.schedules import bing_bert
from bertadam_optax.schedules import deepspeed_runtime
from bertadam_optax.schedules import megatron
from bertadam_optax.schedules import modifiers
from bertadam_optax.schedules import pretrained_bert
from bertadam_optax.schedules import registry
from bertadam_optax.schedules import transformers
from bertadam_optax.schedules.bing_bert import *  # noqa: F403
from bertadam_optax.schedules.deepspeed_runtime import *  # noqa: F403
from bertadam_optax.schedules.megatron import *  # noqa: F403
from bertadam_optax.schedules.modifiers import *  # noqa: F403
from bertadam_optax.schedules.pretrained_bert import *  # noqa: F403
from bertadam_optax.schedules.registry import *  # noqa: F403
from bertadam_optax.schedules.transformers import *  # noqa: F403

__all__ = (
  [
    "bing_bert",
    "deepspeed_runtime",
    "megatron",
    "modifiers",
    "pretrained_bert",
    "registry",
    "transformers",
  ]
  + list(bing_bert.__all__)
  + list(deepspeed_runtime.__all__)
  + list(pretrained_bert.__all__)
  + list(registry.__all__)
  + list(transformers.__all__)
  + list(megatron.__all__)
  + list(modifiers.__all__)
)

_DEPRECATED_MODULES = ("deepspeed", "modern")


def __getattr__(name):
  # ``schedules.deepspeed`` / ``schedules.modern`` without importing them
  # first: load the alias module (which warns once) on first use.
  if name in _DEPRECATED_MODULES:
    return _importlib.import_module(f"{__name__}.{name}")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
