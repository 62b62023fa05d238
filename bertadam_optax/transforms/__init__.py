r"""Every gradient transformation of the package, by concept.

* Clipping (torch's ``clip_grad_norm_`` rule): :func:`clip_by_norm_per_tensor`
  (each tensor on its own, as the original BertAdam),
  :func:`clip_by_global_norm_torch` (the whole tree, DeepSpeed's
  ``gradient_clipping``) and the coefficient both use,
  :func:`torch_clip_coefficient`.
* The Adam family: :func:`scale_by_adam_torch` (torch/DeepSpeed Adam moments:
  ``bias_correction``, ``eps_inside_sqrt``, ``mu_dtype``) and its BertAdam
  specialisation :func:`scale_by_bertadam`.
* Lamb: :func:`scale_by_fused_lamb` (DeepSpeed's ``FusedLamb`` kernel) and its
  :func:`scale_by_clamped_trust_ratio`.
* :func:`scale_by_adagrad_torch`: torch's ``Adagrad``.
* The learning rate: :func:`scale_by_learning_rate` (a schedule; its state is
  what :func:`bertadam_optax.get_lr` reads) and the loss-driven stages
  :func:`reduce_lr_on_plateau` (torch's ``ReduceLROnPlateau``) and
  :func:`greedy` (transformers' ``GreedyLR``).
* Weight decay: :func:`add_scheduled_decayed_weights` (decoupled decay whose
  coefficient follows a schedule, Megatron-LM's ``--weight-decay-incr-style``)
  and its reader :func:`get_weight_decay`.
* :func:`checked_mask`: a weight-decay mask checked against the parameters.
* DeepSpeed's 1-bit optimizers as one worker computes them:
  :func:`scale_by_onebit_adam`, :func:`scale_by_zero_one_adam`,
  :func:`scale_by_onebit_lamb`.
"""

from bertadam_optax.transforms._adagrad import scale_by_adagrad_torch
from bertadam_optax.transforms._adam import ScaleByAdamTorchState
from bertadam_optax.transforms._adam import scale_by_adam_torch
from bertadam_optax.transforms._bertadam import ScaleByBertAdamState
from bertadam_optax.transforms._bertadam import scale_by_bertadam
from bertadam_optax.transforms._clipping import TORCH_CLIP_EPS
from bertadam_optax.transforms._clipping import clip_by_global_norm_torch
from bertadam_optax.transforms._clipping import clip_by_norm_per_tensor
from bertadam_optax.transforms._clipping import torch_clip_coefficient
from bertadam_optax.transforms._lamb import FUSED_LAMB_STATIC_ARGS
from bertadam_optax.transforms._lamb import scale_by_clamped_trust_ratio
from bertadam_optax.transforms._lamb import scale_by_fused_lamb
from bertadam_optax.transforms._learning_rate import ScaleByLearningRateState
from bertadam_optax.transforms._learning_rate import scale_by_learning_rate
from bertadam_optax.transforms._masking import checked_mask
from bertadam_optax.transforms._metric import GreedyState
from bertadam_optax.transforms._metric import ReduceLROnPlateauState
from bertadam_optax.transforms._metric import greedy
from bertadam_optax.transforms._metric import reduce_lr_on_plateau
from bertadam_optax.transforms._onebit import ScaleByOneBitAdamState
from bertadam_optax.transforms._onebit import ScaleByOneBitLambState
from bertadam_optax.transforms._onebit import ScaleByZeroOneAdamState
from bertadam_optax.transforms._onebit import scale_by_onebit_adam
from bertadam_optax.transforms._onebit import scale_by_onebit_lamb
from bertadam_optax.transforms._onebit import scale_by_zero_one_adam
from bertadam_optax.transforms._weight_decay import (
  AddScheduledDecayedWeightsState,
)
from bertadam_optax.transforms._weight_decay import (
  add_scheduled_decayed_weights,
)
from bertadam_optax.transforms._weight_decay import get_weight_decay

__all__ = [
  "FUSED_LAMB_STATIC_ARGS",
  "TORCH_CLIP_EPS",
  "AddScheduledDecayedWeightsState",
  "GreedyState",
  "ReduceLROnPlateauState",
  "ScaleByAdamTorchState",
  "ScaleByBertAdamState",
  "ScaleByLearningRateState",
  "ScaleByOneBitAdamState",
  "ScaleByOneBitLambState",
  "ScaleByZeroOneAdamState",
  "add_scheduled_decayed_weights",
  "checked_mask",
  "clip_by_global_norm_torch",
  "clip_by_norm_per_tensor",
  "get_weight_decay",
  "greedy",
  "reduce_lr_on_plateau",
  "scale_by_adagrad_torch",
  "scale_by_adam_torch",
  "scale_by_bertadam",
  "scale_by_clamped_trust_ratio",
  "scale_by_fused_lamb",
  "scale_by_learning_rate",
  "scale_by_onebit_adam",
  "scale_by_onebit_lamb",
  "scale_by_zero_one_adam",
  "torch_clip_coefficient",
]
