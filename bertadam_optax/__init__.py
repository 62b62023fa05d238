"""bertadam-optax: BertAdam and BERT/LLM learning-rate schedules for Optax.

The public API, flat as optax's:

* :func:`bertadam` and :func:`get_lr` (``alias``);
* the building blocks it is chained from (``transforms``);
* the weight-decay masks of each lineage (``masks``);
* every schedule, in :mod:`bertadam_optax.schedules`;

and, as submodules: :mod:`~bertadam_optax.interop` (PyTorch state, DeepSpeed
and transformers configs), :mod:`~bertadam_optax.checkpoint` (orbax, the
``checkpoint`` extra), :mod:`~bertadam_optax.flatten` (the packed fast path for
many small tensors). None of them imports an extra until it is used.
"""

from bertadam_optax import checkpoint
from bertadam_optax import flatten
from bertadam_optax import interop
from bertadam_optax import masks
from bertadam_optax import schedules
from bertadam_optax import transforms
from bertadam_optax.alias import bertadam
from bertadam_optax.alias import get_lr
from bertadam_optax.flatten import flat_bertadam
from bertadam_optax.masks import BERT_NO_DECAY_PATTERNS
from bertadam_optax.masks import TRAINER_NO_DECAY_PATTERNS
from bertadam_optax.masks import bert_weight_decay_mask
from bertadam_optax.masks import megatron_weight_decay_mask
from bertadam_optax.masks import path_to_name
from bertadam_optax.masks import trainer_weight_decay_mask
from bertadam_optax.schedules import bert_schedule
from bertadam_optax.transforms import ScaleByBertAdamState
from bertadam_optax.transforms import ScaleByLearningRateState
from bertadam_optax.transforms import clip_by_global_norm_torch
from bertadam_optax.transforms import clip_by_norm_per_tensor
from bertadam_optax.transforms import get_weight_decay
from bertadam_optax.transforms import scale_by_bertadam
from bertadam_optax.transforms import scale_by_learning_rate

__version__ = "0.1.0"

__all__ = [
  "BERT_NO_DECAY_PATTERNS",
  "TRAINER_NO_DECAY_PATTERNS",
  "ScaleByBertAdamState",
  "ScaleByLearningRateState",
  "bert_schedule",
  "bert_weight_decay_mask",
  "bertadam",
  "checkpoint",
  "clip_by_global_norm_torch",
  "clip_by_norm_per_tensor",
  "flat_bertadam",
  "flatten",
  "get_lr",
  "get_weight_decay",
  "interop",
  "masks",
  "megatron_weight_decay_mask",
  "path_to_name",
  "scale_by_bertadam",
  "scale_by_learning_rate",
  "schedules",
  "trainer_weight_decay_mask",
  "transforms",
]
