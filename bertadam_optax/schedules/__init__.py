"""Learning-rate schedules: pure, jittable ``count -> value`` functions.

Three families, one module each:

* :mod:`~bertadam_optax.schedules.deepspeed`: the six BertAdam schedules of
  DeepSpeed's bing_bert (``SCHEDULES``) and their Optax factory
  :func:`bert_schedule`.
* :mod:`~bertadam_optax.schedules.pretrained_bert`: the original
  pytorch-pretrained-bert 0.6.2 schedules (their names overlap the DeepSpeed
  ones, so they stay in their own namespace).
* :mod:`~bertadam_optax.schedules.modern`: the schedules of
  ``transformers.get_scheduler`` (:func:`get_schedule`) and
  :func:`linear_warmup_cosine_decay`.

plus :mod:`~bertadam_optax.schedules.deepspeed_runtime`, the schedulers of
``deepspeed.runtime.lr_schedules`` that a ``ds_config.json`` names, and
:mod:`~bertadam_optax.schedules.registry`, one table of all of them (with
family-qualified names where names collide) that the command line uses.
"""

from bertadam_optax.schedules import deepspeed
from bertadam_optax.schedules import deepspeed_runtime
from bertadam_optax.schedules import modern
from bertadam_optax.schedules import pretrained_bert
from bertadam_optax.schedules import registry
from bertadam_optax.schedules.deepspeed import *  # noqa: F401,F403
from bertadam_optax.schedules.deepspeed_runtime import *  # noqa: F401,F403
from bertadam_optax.schedules.modern import *  # noqa: F401,F403
from bertadam_optax.schedules.pretrained_bert import *  # noqa: F401,F403
from bertadam_optax.schedules.registry import *  # noqa: F401,F403
from bertadam_optax.schedules.megatron import *  # noqa: F401,F403,E402

__all__ = (
    ["deepspeed", "deepspeed_runtime", "modern", "pretrained_bert", "registry"]
    + list(deepspeed.__all__)
    + list(deepspeed_runtime.__all__)
    + list(modern.__all__)
    + list(pretrained_bert.__all__)
    + list(registry.__all__)
    + ["megatron"] + list(megatron.__all__)  # noqa: F405
)
