"""Interoperability with PyTorch training runs and their configurations.

* :mod:`bertadam_optax.interop.torch`: BertAdam model and optimizer state
  dicts to and from ``(params, opt_state)`` (torch imported only when used).
* :mod:`bertadam_optax.interop.deepspeed_config`: a DeepSpeed
  ``ds_config.json`` as a :class:`~bertadam_optax.interop.specs.Plan`
  (:func:`plan_deepspeed_config`) or one optax optimizer
  (:func:`from_deepspeed_config`).
* :mod:`bertadam_optax.interop.training_arguments`: transformers
  ``TrainingArguments`` likewise (:func:`plan_training_arguments`,
  :func:`from_training_arguments`).
* :mod:`bertadam_optax.interop.specs`: the typed optimizer and schedule specs
  and the :class:`Plan` the readers return.

:func:`reduce_lr_on_plateau`, :func:`greedy` (now in
:mod:`bertadam_optax.transforms`) and :func:`trainer_weight_decay_mask` (now in
:mod:`bertadam_optax.masks`) stay importable from here.
"""

from bertadam_optax.interop import specs
from bertadam_optax.interop.torch import bert_mapping
from bertadam_optax.interop.torch import from_torch
from bertadam_optax.interop.torch import match_by_name
from bertadam_optax.interop.torch import params_from_torch
from bertadam_optax.interop.torch import params_to_torch
from bertadam_optax.interop.torch import to_torch
from bertadam_optax.interop.deepspeed_config import from_deepspeed_config
from bertadam_optax.interop.deepspeed_config import plan_deepspeed_config
from bertadam_optax.interop.specs import Plan
from bertadam_optax.interop.training_arguments import from_training_arguments
from bertadam_optax.interop.megatron import MegatronPlan
from bertadam_optax.interop.megatron import from_megatron_args
from bertadam_optax.interop.megatron import megatron_weight_decay_mask
from bertadam_optax.interop.megatron import plan_megatron_args
from bertadam_optax.interop.training_arguments import plan_training_arguments
from bertadam_optax.masks import trainer_weight_decay_mask
from bertadam_optax.transforms import greedy
from bertadam_optax.transforms import reduce_lr_on_plateau

__all__ = [
    "MegatronPlan",
    "Plan",
    "from_megatron_args",
    "megatron_weight_decay_mask",
    "plan_megatron_args",
    "bert_mapping",
    "from_deepspeed_config",
    "from_torch",
    "from_training_arguments",
    "greedy",
    "match_by_name",
    "params_from_torch",
    "params_to_torch",
    "plan_deepspeed_config",
    "plan_training_arguments",
    "reduce_lr_on_plateau",
    "specs",
    "to_torch",
    "trainer_weight_decay_mask",
]
