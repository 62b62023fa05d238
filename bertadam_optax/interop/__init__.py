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
* :mod:`bertadam_optax.interop.megatron`: a Megatron-LM command line
  (:func:`plan_megatron_args`, :func:`from_megatron_args`).
* :mod:`bertadam_optax.interop.bing_bert`: a DeepSpeedExamples bing_bert run,
  its ``--cf`` file and ds_config (:func:`plan_bing_bert`,
  :func:`from_bing_bert`).
* :mod:`bertadam_optax.interop.launch_script`: a bash launch script
  (:func:`parse_launch_script`, :func:`plan_launch_script`,
  :func:`from_launch_script`).
* :mod:`bertadam_optax.interop.hf_deepspeed`: a ds_config's ``"auto"`` values
  filled as the transformers Trainer fills them (:func:`fill_deepspeed_auto`).
* :mod:`bertadam_optax.interop.detect`: what a run's files are
  (:func:`detect_run_kind`).

:func:`reduce_lr_on_plateau`, :func:`greedy` (now in
:mod:`bertadam_optax.transforms`) and :func:`trainer_weight_decay_mask` (now in
:mod:`bertadam_optax.masks`) stay importable from here.
"""

from bertadam_optax.interop import specs
from bertadam_optax.interop.bing_bert import BingBertPlan
from bertadam_optax.interop.bing_bert import from_bing_bert
from bertadam_optax.interop.bing_bert import plan_bing_bert
from bertadam_optax.interop.deepspeed_config import from_deepspeed_config
from bertadam_optax.interop.deepspeed_config import plan_deepspeed_config
from bertadam_optax.interop.detect import RunKind
from bertadam_optax.interop.detect import detect_run_kind
from bertadam_optax.interop.hf_deepspeed import fill_deepspeed_auto
from bertadam_optax.interop.launch_script import LaunchCommand
from bertadam_optax.interop.launch_script import from_launch_script
from bertadam_optax.interop.launch_script import parse_launch_script
from bertadam_optax.interop.launch_script import plan_launch_script
from bertadam_optax.interop.megatron import MegatronPlan
from bertadam_optax.interop.megatron import from_megatron_args
from bertadam_optax.interop.megatron import megatron_weight_decay_mask
from bertadam_optax.interop.megatron import plan_megatron_args
from bertadam_optax.interop.specs import Plan
from bertadam_optax.interop.torch import bert_mapping
from bertadam_optax.interop.torch import from_torch
from bertadam_optax.interop.torch import match_by_name
from bertadam_optax.interop.torch import params_from_torch
from bertadam_optax.interop.torch import params_to_torch
from bertadam_optax.interop.torch import to_torch
from bertadam_optax.interop.training_arguments import from_training_arguments
from bertadam_optax.interop.training_arguments import plan_training_arguments
from bertadam_optax.masks import trainer_weight_decay_mask
from bertadam_optax.transforms import greedy
from bertadam_optax.transforms import reduce_lr_on_plateau

__all__ = [
  "BingBertPlan",
  "LaunchCommand",
  "MegatronPlan",
  "Plan",
  "RunKind",
  "bert_mapping",
  "detect_run_kind",
  "fill_deepspeed_auto",
  "from_bing_bert",
  "from_deepspeed_config",
  "from_launch_script",
  "from_megatron_args",
  "from_torch",
  "from_training_arguments",
  "greedy",
  "match_by_name",
  "megatron_weight_decay_mask",
  "params_from_torch",
  "params_to_torch",
  "parse_launch_script",
  "plan_bing_bert",
  "plan_deepspeed_config",
  "plan_launch_script",
  "plan_megatron_args",
  "plan_training_arguments",
  "reduce_lr_on_plateau",
  "specs",
  "to_torch",
  "trainer_weight_decay_mask",
]
