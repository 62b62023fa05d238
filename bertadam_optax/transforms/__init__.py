r"""The gradient transformations BertAdam is chained from.

* :func:`clip_by_norm_per_tensor`: torch's ``clip_grad_norm_`` applied to each
  tensor on its own, as the original BertAdam does.
* :func:`clip_by_global_norm_torch`: the same rule over the whole tree
  (``clip_grad_norm_(model.parameters())``, DeepSpeed's ``gradient_clipping``).
* :func:`scale_by_bertadam`: Adam's moments without bias correction.
* :func:`scale_by_learning_rate`: the scheduled ``-lr`` whose state records the
  learning rate the *next* update applies, which is what
  :func:`bertadam_optax.get_lr` reads.
* :func:`scale_by_onebit_adam`, :func:`scale_by_zero_one_adam`,
  :func:`scale_by_onebit_lamb`: DeepSpeed's 1-bit Adam, 0/1 Adam and 1-bit
  Lamb as one worker computes them.
"""


from bertadam_optax.transforms._bertadam import ScaleByBertAdamState
from bertadam_optax.transforms._bertadam import scale_by_bertadam
from bertadam_optax.transforms._clipping import clip_by_global_norm_torch
from bertadam_optax.transforms._clipping import clip_by_norm_per_tensor
from bertadam_optax.transforms._learning_rate import ScaleByLearningRateState
from bertadam_optax.transforms._learning_rate import scale_by_learning_rate
from bertadam_optax.transforms._onebit import ScaleByOneBitAdamState
from bertadam_optax.transforms._onebit import ScaleByOneBitLambState
from bertadam_optax.transforms._onebit import ScaleByZeroOneAdamState
from bertadam_optax.transforms._onebit import scale_by_onebit_adam
from bertadam_optax.transforms._onebit import scale_by_onebit_lamb
from bertadam_optax.transforms._onebit import scale_by_zero_one_adam
from bertadam_optax.transforms._weight_decay import AddScheduledDecayedWeightsState, add_scheduled_decayed_weights, get_weight_decay  # noqa: E501

__all__ = [
    "AddScheduledDecayedWeightsState",
    "add_scheduled_decayed_weights",
    "get_weight_decay",
    "ScaleByBertAdamState",
    "ScaleByLearningRateState",
    "ScaleByOneBitAdamState",
    "ScaleByOneBitLambState",
    "ScaleByZeroOneAdamState",
    "clip_by_global_norm_torch",
    "clip_by_norm_per_tensor",
    "scale_by_bertadam",
    "scale_by_learning_rate",
    "scale_by_onebit_adam",
    "scale_by_onebit_lamb",
    "scale_by_zero_one_adam",
]
