"""The PyTorch side of the BertAdam comparisons.

pytorch-pretrained-bert 0.6.2's ``BertAdam.step`` is the same as the one of
DeepSpeed's bing_bert fork, but its schedules are not. Its ``BertAdam`` accepts
any ``_LRSchedule`` object and asks it ``schedule.get_lr(state['step'])`` for
the multiplier of each update, so :func:`deepspeed_lr_schedule` plugs the
DeepSpeed formulas in, evaluated here in Python float64 from their definitions
(independently of ``bertadam_optax``).
"""

from __future__ import annotations

import math

from tests.references import require

DEEPSPEED_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")
"""bing_bert's ``no_decay`` substrings on torch parameter names."""


def deepspeed_decays(torch_name: str) -> bool:
  """DeepSpeed's rule: decayed unless a ``no_decay`` substring occurs."""
  return not any(nd in torch_name for nd in DEEPSPEED_NO_DECAY)


def deepspeed_multiplier(
  name: str, step: int, t_total: float, warmup: float, **kw
) -> float:
  """DeepSpeed bing_bert's schedule ``name`` at integer ``step``, in float64."""
  x = step / t_total
  if name == "warmup_cosine":
    return x / warmup if x < warmup else 0.5 * (1.0 + math.cos(math.pi * x))
  if name == "warmup_constant":
    return x / warmup if x < warmup else 1.0
  if name == "warmup_linear":
    if warmup == 0.0:
      return 1.0
    return x / warmup if x < warmup else 1.0 - x
  if name in ("warmup_linear_decay_exp", "warmup_exp_decay_exp"):
    if warmup == 0.0:
      return 1.0
    if x < warmup:
      degree = kw.get("degree", 2.0) if name == "warmup_exp_decay_exp" else 1.0
      return (x / warmup) ** degree
    return kw["decay_rate"] ** ((step - warmup * t_total) / kw["decay_steps"])
  if name == "warmup_exp_decay_poly":
    if x < warmup:
      return (x / warmup) ** kw.get("warm_degree", 1.5)
    return (1.0 - x) ** kw.get("degree", 2.0)
  raise KeyError(name)


def deepspeed_lr_schedule(
  name: str, warmup: float, t_total: float, offset: float = 0.0, **kw
):
  """A pytorch-pretrained-bert ``_LRSchedule`` running DeepSpeed's ``name``.

  ``warmup`` is kept as given: the base class clamps -1 to 0, but DeepSpeed's
  formulas see the -1 (``x < -1`` is never true, ``warmup == 0`` is false).
  ``offset`` is added to the multiplier: with ``offset = lr_offset / lr`` the
  rate is bing_bert's ``lr * f + lr_offset``.
  """
  ppb_optimization = require("pytorch_pretrained_bert.optimization")

  class DeepSpeedSchedule(ppb_optimization._LRSchedule):
    def __init__(self):
      super().__init__(warmup=max(warmup, 0.0), t_total=t_total)
      self.ds_warmup = warmup

    def get_lr(self, step, nowarn=False):
      del nowarn
      if self.t_total < 0:
        return 1.0
      return (
        deepspeed_multiplier(name, step, self.t_total, self.ds_warmup, **kw)
        + offset
      )

    def get_lr_(self, progress):
      raise AssertionError("BertAdam asks get_lr(step), never get_lr_")

  return DeepSpeedSchedule()
