"""Structural facts of the compiled optimizer step that its speed relies on.

The benchmark (``benchmarks/optimizer_step.py``) measures time; these tests
pin down what the time follows and what a change could silently break: the
bytes the step touches per parameter, no float64, the donated buffers reused,
no parameter-sized temporaries beyond one, one executable that never
retraces, and a packed step whose kernel count does not grow with the number
of tensors. No timings.
"""

from __future__ import annotations

import math
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax as bo
from bertadam_optax import flatten

# Several tensors of similar size, so no single one dominates the totals.
SHAPES = [(48, 32), (32, 48), (1536,), (24, 64), (40,), (7,)]
N_PARAMS = sum(math.prod(s) for s in SHAPES)

OPTIMIZERS = {
  "per_tensor": lambda: bo.bertadam(1e-3, 0.1, 100),
  "global": lambda: bo.bertadam(1e-3, 0.1, 100, clip="global"),
  "none": lambda: bo.bertadam(1e-3, 0.1, 100, clip="none"),
}

# Bytes per parameter XLA's cost analysis counts for the step of the current
# structure: per tensor one reduction for the clip norm and one kernel each
# for mu, nu and the parameter (44 bytes, over the 32-byte floor because
# XLA:CPU does not fuse kernels with several parameter-sized outputs), plus
# the reduction's operand accounting. A materialized clipped gradient, a
# float64 pass or a copy adds 8 or more. clip='global' still materializes it
# (optax.clip_by_global_norm's per-element division); with the scalar-factor
# clip of /work/fragments/perf.patch it drops to the per-tensor figure.
MAX_BYTES_PER_PARAM = {"per_tensor": 53, "global": 53, "none": 48}


def _tree(value):
  return {
    f"w{i}": jnp.full(s, value, jnp.float32) for i, s in enumerate(SHAPES)
  }


def _step_fn(opt):
  def step(params, grads, state):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  return step


def _compiled(opt, params=None):
  params = _tree(0.5) if params is None else params
  state = opt.init(params)
  return (
    jax.jit(_step_fn(opt), donate_argnums=(0, 2))
    .lower(params, params, state)
    .compile()
  )


def _cost(compiled):
  cost = compiled.cost_analysis()
  return cost[0] if isinstance(cost, list) else cost


def _entry_fusions(hlo: str) -> int:
  entry = hlo[hlo.index("\nENTRY") :]
  return len(re.findall(r"\bfusion\(", entry))


@pytest.mark.parametrize("clip", sorted(OPTIMIZERS))
@pytest.mark.parametrize("x64", [False, True])
def test_no_float64_in_the_compiled_step(clip, x64):
  with jax.enable_x64(x64):
    hlo = _compiled(OPTIMIZERS[clip]()).as_text()
  assert "f64" not in hlo


@pytest.mark.parametrize("clip", sorted(OPTIMIZERS))
def test_bytes_accessed_per_parameter(clip):
  per_param = _cost(_compiled(OPTIMIZERS[clip]()))["bytes accessed"] / N_PARAMS
  # Reading and writing parameters and both moments alone is 24 bytes.
  assert 24 <= per_param <= MAX_BYTES_PER_PARAM[clip]


@pytest.mark.parametrize("clip", sorted(OPTIMIZERS))
def test_donated_parameters_and_moments_are_updated_in_place(clip):
  compiled = _compiled(OPTIMIZERS[clip]())
  state_bytes = 3 * 4 * N_PARAMS  # params, mu, nu
  assert compiled.memory_analysis().alias_size_in_bytes >= state_bytes
  hlo = compiled.as_text()
  entry = hlo[hlo.index("\nENTRY") :]
  big_copies = [
    line
    for line in entry.splitlines()
    if re.search(r"= f32\[[0-9,]+\]\S* copy\(", line)
  ]
  assert not big_copies


_FULL_SIZE_SCRATCH = pytest.mark.xfail(
  strict=True,
  reason="XLA:CPU keeps a gradient-sized scratch buffer for "
  "every tensor (4 bytes/param, +25% over params+grads+mu+nu); the "
  "issue's memory target allows +10%",
)


@pytest.mark.parametrize(
  "clip",
  [
    "none",
    pytest.param("per_tensor", marks=_FULL_SIZE_SCRATCH),
    pytest.param("global", marks=_FULL_SIZE_SCRATCH),
  ],
)
def test_scratch_memory_within_ten_percent_of_the_state(clip):
  temp = _compiled(OPTIMIZERS[clip]()).memory_analysis().temp_size_in_bytes
  # params + grads + mu + nu, float32.
  assert temp <= 0.1 * 4 * 4 * N_PARAMS


def test_one_executable_no_retrace_as_the_count_advances():
  opt = OPTIMIZERS["per_tensor"]()
  step = jax.jit(
    chex.assert_max_traces(_step_fn(opt), n=1), donate_argnums=(0, 2)
  )
  params, grads = _tree(0.5), _tree(0.1)
  state = opt.init(params)
  for _ in range(12):  # through the warmup edge (10) and past it
    params, state = step(params, grads, state)
  assert int(state[1].count) == 12
  assert step._cache_size() == 1  # pylint: disable=protected-access


def test_packed_step_has_as_many_kernels_for_40_as_for_400_tensors():
  fusions = []
  for count in (40, 400):
    shapes = {
      f"t{i}": jax.ShapeDtypeStruct((1 + 37 * i % 300,), jnp.float32)
      for i in range(count)
    }
    layout = flatten.layout_of(shapes)
    params = jax.tree.map(
      lambda a: jnp.full(a.shape, 0.5, a.dtype),
      jax.eval_shape(
        lambda: flatten.pack(
          layout, jax.tree.map(lambda s: jnp.zeros(s.shape), shapes)
        )
      ),
    )
    opt = flatten.flat_bertadam(layout, 1e-3, 0.1, 100)
    fusions.append(_entry_fusions(_compiled(opt, params).as_text()))
  assert fusions[0] == fusions[1]


def test_packed_step_touches_as_few_bytes_as_the_tree_step():
  layout = flatten.layout_of(_tree(0.5))
  params = flatten.pack(layout, _tree(0.5))
  padded = sum(np.size(a) for a in params.values())
  packed = (
    _cost(_compiled(flatten.flat_bertadam(layout, 1e-3, 0.1, 100), params))[
      "bytes accessed"
    ]
    / padded
  )
  assert packed <= MAX_BYTES_PER_PARAM["per_tensor"]
