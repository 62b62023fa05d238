r"""Adam's moments as BertAdam computes them: no bias correction."""

from __future__ import annotations

from typing import Any

import optax

from bertadam_optax.transforms._adam import ScaleByAdamTorchState
from bertadam_optax.transforms._adam import scale_by_adam_torch

__all__ = ["ScaleByBertAdamState", "scale_by_bertadam"]

ScaleByBertAdamState = ScaleByAdamTorchState
"""State of :func:`scale_by_bertadam` (the class of
:func:`~bertadam_optax.transforms.scale_by_adam_torch`'s state)."""


def scale_by_bertadam(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-6,
  *,
  bias_correction: bool = False,
  mu_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""Rescales updates by BertAdam's moments, without bias correction.

  .. math::
    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \qquad
    u_t = \frac{m_t}{\sqrt{v_t} + \epsilon}

  :func:`~bertadam_optax.transforms.scale_by_adam_torch` with BertAdam's
  defaults (``eps = 1e-6``, no bias correction, ``eps`` outside the root).
  With ``bias_correction=True`` it is torch's Adam.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)``, >= 0.
    bias_correction: apply Adam's bias correction (the original does not).
    mu_dtype: optional floating dtype of the first moment.

  Returns:
    An ``optax.GradientTransformation`` with a :class:`ScaleByBertAdamState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_bertadam()
    >>> g = {'w': jnp.array([1.0])}
    >>> u, _ = tx.update(g, tx.init(g))
    >>> round(float(u['w'][0]), 5)  # 0.1 / (sqrt(0.001) + 1e-6)
    3.16218

  References:
    Devlin et al., 2019, BERT (``optimization.py`` of google-research/bert);
    pytorch-pretrained-bert 0.6.2 ``BertAdam``.
  """
  return scale_by_adam_torch(
    b1, b2, eps, bias_correction=bias_correction, mu_dtype=mu_dtype
  )
