"""Interoperability with PyTorch training runs and their configurations.

* :mod:`bertadam_optax.interop.torch`: BertAdam model and optimizer state
  dicts to and from ``(params, opt_state)`` (torch imported only when used).
* :mod:`bertadam_optax.interop.deepspeed_config`: a DeepSpeed
  ``ds_config.json`` as one optax optimizer (:func:`from_deepspeed_config`).
* :mod:`bertadam_optax.interop.training_arguments`: transformers
  ``TrainingArguments`` as one optax optimizer
  (:func:`from_training_arguments`), and the metric-driven
  :func:`reduce_lr_on_plateau` and :func:`greedy`.
"""

from bertadam_optax.interop.torch import bert_mapping
from bertadam_optax.interop.torch import from_torch
from bertadam_optax.interop.torch import match_by_name
from bertadam_optax.interop.torch import params_from_torch
from bertadam_optax.interop.torch import params_to_torch
from bertadam_optax.interop.torch import to_torch
from bertadam_optax.interop.deepspeed_config import from_deepspeed_config
from bertadam_optax.interop.training_arguments import from_training_arguments
from bertadam_optax.interop.training_arguments import greedy
from bertadam_optax.interop.training_arguments import reduce_lr_on_plateau
from bertadam_optax.interop.training_arguments import trainer_weight_decay_mask
from bertadam_optax.interop.megatron import MegatronPlan, from_megatron_args, megatron_weight_decay_mask, plan_megatron_args  # noqa: E501

__all__ = [
    "MegatronPlan",
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
    "reduce_lr_on_plateau",
    "to_torch",
    "trainer_weight_decay_mask",
]
