"""Tests of bertadam_optax/schedules/registry.py.

The registry only names and dispatches: each schedule's values are tested
against its reference in its family's tests. Here every entry is compared
with its family's factory called by hand with the translated keywords, a few
end to end with the real pytorch-pretrained-bert schedules and with a float64
formula, and the warmup boundary with a float64 brute force.
"""

from __future__ import annotations

import doctest
import importlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax.schedules import bing_bert
from bertadam_optax.schedules import deepspeed_runtime
from bertadam_optax.schedules import megatron
from bertadam_optax.schedules import pretrained_bert
from bertadam_optax.schedules import registry
from bertadam_optax.schedules import transformers
from tests.references import require

NAMES = tuple(registry.SCHEDULE_REGISTRY)
LR, T, WARMUP, W = 1e-3, 200, 0.1, 20
MIN_LR, RATE, DECAY = 1e-5, 0.5, 40
OPTIONS = dict(
  lr=LR,
  t_total=T,
  warmup=WARMUP,
  min_lr=MIN_LR,
  decay_rate=RATE,
  decay_steps=DECAY,
)
STEPS = np.arange(0, T + 30)

# Each registry name built directly from its family's API, with the uniform
# options of OPTIONS translated by hand (W = WARMUP * T warmup steps).
DIRECT = {
  **{
    name: (
      lambda name=name: bing_bert.bert_schedule(
        name,
        LR,
        T,
        WARMUP,
        **(
          {"decay_rate": RATE, "decay_steps": DECAY}
          if "decay_exp" in name
          else {}
        ),
      )
    )
    for name in bing_bert.SCHEDULES
  },
  "pretrained_bert.none": lambda: pretrained_bert.pretrained_bert_schedule(
    "none", LR, -1
  ),
  **{
    f"pretrained_bert.{name}": (
      lambda name=name: pretrained_bert.pretrained_bert_schedule(
        name, LR, T, WARMUP
      )
    )
    for name in pretrained_bert.PRETRAINED_BERT_SCHEDULES
    if name != "none"
  },
  "transformers.linear": lambda: transformers.get_schedule("linear", LR, W, T),
  "transformers.cosine": lambda: transformers.get_schedule("cosine", LR, W, T),
  "transformers.cosine_with_restarts": lambda: transformers.get_schedule(
    "cosine_with_restarts", LR, W, T
  ),
  "transformers.polynomial": lambda: transformers.get_schedule(
    "polynomial", LR, W, T, lr_end=MIN_LR
  ),
  "transformers.constant": lambda: transformers.get_schedule("constant", LR),
  "transformers.constant_with_warmup": lambda: transformers.get_schedule(
    "constant_with_warmup", LR, W
  ),
  "transformers.inverse_sqrt": lambda: transformers.get_schedule(
    "inverse_sqrt", LR, W
  ),
  "transformers.cosine_with_min_lr": lambda: transformers.get_schedule(
    "cosine_with_min_lr", LR, W, T, min_lr=MIN_LR
  ),
  "transformers.cosine_warmup_with_min_lr": lambda: transformers.get_schedule(
    "cosine_warmup_with_min_lr", LR, W, T, min_lr=MIN_LR
  ),
  "transformers.warmup_stable_decay": lambda: transformers.get_schedule(
    "warmup_stable_decay",
    LR,
    W,
    T,
    num_decay_steps=DECAY,
    min_lr_ratio=MIN_LR / LR,
  ),
  "modern.linear_warmup_cosine_decay": lambda: (
    transformers.linear_warmup_cosine_decay(LR, W, T, MIN_LR)
  ),
  "deepspeed_runtime.WarmupLR": lambda: deepspeed_runtime.warmup_lr(
    warmup_min_lr=MIN_LR, warmup_max_lr=LR, warmup_num_steps=W
  ),
  "deepspeed_runtime.WarmupDecayLR": lambda: deepspeed_runtime.warmup_decay_lr(
    T, warmup_min_lr=MIN_LR, warmup_max_lr=LR, warmup_num_steps=W
  ),
  "deepspeed_runtime.WarmupCosineLR": lambda: (
    deepspeed_runtime.warmup_cosine_lr(
      T, warmup_num_steps=W, cos_min_ratio=MIN_LR / LR, learning_rate=LR
    )
  ),
  "deepspeed_runtime.OneCycle": lambda: deepspeed_runtime.one_cycle(
    MIN_LR,
    LR,
    decay_lr_rate=RATE,
    cycle_first_step_size=W,
    decay_step_size=DECAY,
  ),
  "deepspeed_runtime.LRRangeTest": lambda: deepspeed_runtime.lr_range_test(
    lr_range_test_min_lr=LR
  ),
  **{
    f"megatron.{style}": (
      lambda style=style: megatron.megatron_lr_schedule(
        LR,
        MIN_LR,
        W,
        T,
        style,
        **(
          {"wsd_decay_steps": T // 10, "lr_wsd_decay_style": "linear"}
          if style == "WSD"
          else {}
        ),
      )
    )
    for style in megatron.LR_DECAY_STYLES
  },
  "megatron.wd_constant": lambda: megatron.megatron_wd_schedule(
    MIN_LR, MIN_LR, T, "constant"
  ),
  **{
    f"megatron.wd_{style}": (
      lambda style=style: megatron.megatron_wd_schedule(MIN_LR, LR, T, style)
    )
    for style in ("linear", "cosine")
  },
}


def _values(schedule, steps=STEPS):
  return np.asarray(
    jax.vmap(schedule)(jnp.asarray(steps, jnp.int32)), dtype=np.float64
  )


def test_every_family_name_is_registered_once():
  expected = (
    list(bing_bert.SCHEDULES)
    + [
      f"pretrained_bert.{n}" for n in pretrained_bert.PRETRAINED_BERT_SCHEDULES
    ]
    + [f"transformers.{n}" for n in transformers.TRANSFORMERS_SCHEDULES]
    + ["modern.linear_warmup_cosine_decay"]
    + [f"deepspeed_runtime.{n}" for n in deepspeed_runtime.DEEPSPEED_SCHEDULERS]
    + [f"megatron.{n}" for n in megatron.LR_DECAY_STYLES]
    + [f"megatron.wd_{n}" for n in megatron.WD_INCR_STYLES]
  )
  assert sorted(NAMES) == sorted(expected)
  assert set(DIRECT) == set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_entry_fields(name):
  info = registry.schedule_info(name)
  assert info.name == name
  assert info.family in registry.FAMILIES
  assert name == (
    info.source
    if info.family == "deepspeed"
    else f"{info.family}.{info.source}"
  )
  assert info.formula and "\n" not in info.formula
  assert (
    set(info.required)
    <= set(info.options)
    <= {"lr", "t_total", "warmup", "min_lr", "decay_rate", "decay_steps"}
  )


def test_registry_is_read_only():
  with pytest.raises(TypeError):
    registry.SCHEDULE_REGISTRY["mine"] = registry.SCHEDULE_REGISTRY[NAMES[0]]


@pytest.mark.parametrize("name", NAMES)
def test_make_schedule_equals_family_factory(name):
  np.testing.assert_array_equal(
    _values(registry.make_schedule(name, **OPTIONS)), _values(DIRECT[name]())
  )


@pytest.mark.parametrize(
  "name", [n for n in NAMES if "warmup" in registry.schedule_info(n).options]
)
def test_warmup_fraction_and_steps_agree(name):
  by_fraction = registry.make_schedule(name, **OPTIONS)
  options = dict(OPTIONS, warmup=None, warmup_steps=W)
  by_steps = registry.make_schedule(name, **options)
  np.testing.assert_array_equal(_values(by_fraction), _values(by_steps))
  assert registry.warmup_boundary(name, t_total=T, warmup=WARMUP) == W
  assert registry.warmup_boundary(name, t_total=T, warmup_steps=W) == W


@pytest.mark.parametrize("warmup", [0.1, 0.01, 0.3, 0.07, 0.002, 0.0])
@pytest.mark.parametrize("t_total", [100, 1000, 999, 7])
def test_warmup_boundary_matches_float64_progress(warmup, t_total):
  # The first step whose progress s / t_total (float64) is not below warmup.
  expected = next(s for s in range(t_total + 1) if s / t_total >= warmup)
  for name in (
    "warmup_constant",
    "pretrained_bert.warmup_constant",
    "transformers.linear",
  ):
    assert (
      registry.warmup_boundary(name, t_total=t_total, warmup=warmup) == expected
    )
  schedule = registry.make_schedule(
    "warmup_constant", lr=1.0, t_total=t_total, warmup=warmup
  )
  assert float(schedule(expected)) == 1.0
  if expected > 0:
    assert float(schedule(expected - 1)) < 1.0


@pytest.mark.parametrize(
  "name",
  [
    "transformers.constant",
    "deepspeed_runtime.LRRangeTest",
    "pretrained_bert.none",
  ],
)
def test_no_warmup_boundary_without_warmup(name):
  assert registry.warmup_boundary(name, t_total=T, warmup=WARMUP) is None


@pytest.mark.parametrize(
  "name", ["warmup_linear", "warmup_cosine", "warmup_constant"]
)
def test_pretrained_bert_names_match_original(name):
  ppb = require("pytorch_pretrained_bert.optimization")
  reference = ppb.SCHEDULES[name](warmup=WARMUP, t_total=T)
  theirs = [LR * reference.get_lr(s) for s in range(T + 1)]
  ours = _values(
    registry.make_schedule(
      f"pretrained_bert.{name}", lr=LR, t_total=T, warmup=WARMUP
    ),
    np.arange(T + 1),
  )
  np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=1e-11)


def test_bing_bert_warmup_linear_formula():
  # DeepSpeed's bing_bert warmup_linear, in float64: x/w, then 1 - x.
  x = np.arange(T + 1) / T
  expected = LR * np.where(x < WARMUP, x / WARMUP, 1.0 - x)
  ours = _values(
    registry.make_schedule("warmup_linear", lr=LR, t_total=T, warmup=WARMUP),
    np.arange(T + 1),
  )
  np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-11)


@pytest.mark.parametrize(
  "typo,suggestion",
  [
    ("warmup_linaer", "warmup_linear"),
    ("cosine", "transformers.cosine"),
    ("transformers.cosin", "transformers.cosine"),
    ("WarmupLr", "deepspeed_runtime.WarmupLR"),
    ("OneCycle", "deepspeed_runtime.OneCycle"),
    (
      "pretrained_bert.warmup_cosine_with_hard_restart",
      "pretrained_bert.warmup_cosine_with_hard_restarts",
    ),
    ("linear_warmup_cosine_decy", "modern.linear_warmup_cosine_decay"),
  ],
)
def test_unknown_name_suggests_closest(typo, suggestion):
  with pytest.raises(ValueError, match=f"Did you mean '{suggestion}'"):
    registry.schedule_info(typo)
  with pytest.raises(ValueError, match=f"schedule='{typo}'"):
    registry.make_schedule(typo, lr=LR, t_total=T)


def test_unknown_name_without_close_match():
  with pytest.raises(ValueError) as e:
    registry.schedule_info("zzzz")
  assert "Did you mean" not in str(e.value)


@pytest.mark.parametrize(
  "name,options,missing",
  [
    (
      "warmup_linear_decay_exp",
      dict(t_total=T, decay_steps=DECAY),
      "decay_rate",
    ),
    ("warmup_exp_decay_exp", dict(t_total=T, decay_rate=RATE), "decay_steps"),
    ("warmup_linear", dict(), "t_total"),
    ("transformers.linear", dict(t_total=T), "warmup"),
    ("transformers.linear", dict(warmup=WARMUP), "t_total"),
    (
      "transformers.cosine_with_min_lr",
      dict(t_total=T, warmup=WARMUP),
      "min_lr",
    ),
    (
      "transformers.warmup_stable_decay",
      dict(t_total=T, warmup=WARMUP),
      "decay_steps",
    ),
    ("deepspeed_runtime.OneCycle", dict(t_total=T, warmup=WARMUP), "min_lr"),
    ("deepspeed_runtime.WarmupLR", dict(warmup=WARMUP), "t_total"),
  ],
)
def test_missing_option(name, options, missing):
  with pytest.raises(registry.MissingScheduleOptionError) as e:
    registry.make_schedule(name, lr=LR, **options)
  assert e.value.option == missing
  assert e.value.schedule == name
  assert isinstance(e.value, ValueError)


@pytest.mark.parametrize(
  "options,argument",
  [
    (dict(lr=-1.0), "lr"),
    (dict(t_total=0), "t_total"),
    (dict(t_total=10.5), "t_total"),
    (dict(warmup=1.5), "warmup"),
    (dict(warmup=-0.5), "warmup"),
    (dict(warmup=None, warmup_steps=T), "warmup_steps"),
    (dict(warmup=None, warmup_steps=-1), "warmup_steps"),
    (dict(warmup_steps=5), "warmup_steps"),
    (dict(min_lr=2 * LR), "min_lr"),
    (dict(decay_rate=-1.0), "decay_rate"),
    (dict(decay_steps=-3), "decay_steps"),
  ],
)
def test_out_of_range_option_names_it(options, argument):
  with pytest.raises(ValueError, match=f"{argument}="):
    registry.make_schedule(
      "transformers.cosine_with_min_lr", **dict(OPTIONS, **options)
    )


def test_extra_keywords_reach_the_factory():
  cubic = registry.make_schedule(
    "warmup_exp_decay_poly", lr=LR, t_total=T, warmup=WARMUP, degree=3.0
  )
  direct = bing_bert.bert_schedule(
    "warmup_exp_decay_poly", LR, T, WARMUP, degree=3.0
  )
  np.testing.assert_array_equal(_values(cubic), _values(direct))
  with pytest.raises(ValueError, match="no_such"):
    registry.make_schedule(
      "transformers.cosine", lr=LR, t_total=T, warmup=WARMUP, no_such=1
    )


def test_unread_options_are_ignored():
  plain = registry.make_schedule(
    "transformers.linear", lr=LR, t_total=T, warmup=WARMUP
  )
  extra = registry.make_schedule("transformers.linear", **OPTIONS)
  np.testing.assert_array_equal(_values(plain), _values(extra))


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_no_retrace_float32(name):
  schedule = registry.make_schedule(name, **OPTIONS)
  steps = [0, 1, W - 1, W, W + 1, T // 2, T - 1, T, T + 1, T + 29]
  eager = [float(schedule(s)) for s in steps]

  @jax.jit
  @chex.assert_max_traces(n=1)
  def at(count):
    return schedule(count)

  chex.clear_trace_counter()
  jitted = [float(at(jnp.asarray(s, jnp.int32))) for s in steps]
  np.testing.assert_allclose(jitted, eager, rtol=1e-6, atol=1e-12)
  mapped = jax.jit(jax.vmap(schedule))(jnp.asarray(steps, jnp.int32))
  assert mapped.dtype == jnp.float32
  np.testing.assert_allclose(mapped, eager, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_vmap_over_learning_rates_and_grad(name):
  step = W + 5
  options = dict(OPTIONS, min_lr=MIN_LR / 100)

  def value(lr):
    return registry.make_schedule(name, **dict(options, lr=lr))(step)

  lrs = [1e-3, 2e-3, 4e-3]
  mapped = jax.vmap(value)(jnp.asarray(lrs))
  np.testing.assert_allclose(
    mapped, [float(value(lr)) for lr in lrs], rtol=1e-6
  )
  # d lr(step) / d lr, by a float64 central difference of the eager values.
  h = 1e-4
  numeric = (float(value(2e-3 + h)) - float(value(2e-3 - h))) / (2 * h)
  np.testing.assert_allclose(float(jax.grad(value)(2e-3)), numeric, rtol=1e-3)


def test_readme_snippet():
  # The README's registry snippet, verbatim.
  from bertadam_optax.schedules import registry  # pylint: disable=redefined-outer-name,reimported

  schedule = registry.make_schedule(
    "pretrained_bert.warmup_linear", lr=1e-4, t_total=10_000, warmup=0.1
  )
  print(schedule(1_000))  # 1e-4: warmup ends at step 1000
  info = registry.schedule_info("pretrained_bert.warmup_linear")
  print(info.family, info.formula)
  # pretrained_bert lr * (x/w if x < w else max((x - 1) / (w - 1), 0))

  assert float(schedule(1_000)) == pytest.approx(1e-4)
  assert float(schedule(5_500)) == pytest.approx(0.5e-4)


def test_docstring_examples_run():
  # The Examples: sections are the documentation users copy; they must run.
  module = importlib.import_module("bertadam_optax.schedules.registry")
  results = doctest.testmod(
    module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  )
  assert results.attempted > 0
  assert results.failed == 0


@pytest.mark.parametrize(
  "old,new", [("deepspeed", "bing_bert"), ("modern", "transformers")]
)
def test_deprecated_module_names_alias_the_lineage_modules(old, new):
  new_module = importlib.import_module(f"bertadam_optax.schedules.{new}")
  with pytest.warns(DeprecationWarning, match=f"schedules.{new}"):
    old_module = importlib.reload(
      importlib.import_module(f"bertadam_optax.schedules.{old}")
    )
  assert old_module.__all__ == new_module.__all__
  for name in new_module.__all__:
    assert getattr(old_module, name) is getattr(new_module, name)


def test_cli_option_types_live_in_the_cli_and_are_re_exported():
  from bertadam_optax.cli import schedule_options  # pylint: disable=import-outside-toplevel

  assert (
    registry.MissingScheduleOptionError
    is schedule_options.MissingScheduleOptionError
  )
  assert "MissingScheduleOptionError" not in registry.__all__
  assert "OPTION_NAMES" not in registry.__all__
  with pytest.raises(schedule_options.MissingScheduleOptionError) as e:
    schedule_options.check_required(
      "transformers.linear", {"lr": LR, "t_total": T}
    )
  assert e.value.option == "warmup"
  schedule_options.check_required(
    "transformers.linear", {"lr": LR, "t_total": T, "warmup_steps": 3}
  )


def test_each_lineage_table_is_read_from_its_functions():
  # One table per lineage module; the registry is their concatenation, each
  # entry's formula from its function's docstring and options from its
  # signature.
  lineages = (
    bing_bert,
    pretrained_bert,
    transformers,
    deepspeed_runtime,
    megatron,
  )
  entries = [e for module in lineages for e in module.ENTRIES]
  assert list(registry.SCHEDULE_REGISTRY.values()) == entries
  for entry in entries:
    assert entry.formula in " ".join(entry.factory.__doc__.split())
    assert entry.build is not None
