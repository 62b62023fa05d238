# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The schedules gallery
#
# Every learning-rate schedule in `bertadam_optax.schedules`, in its three
# families:
#
# 1. **DeepSpeed bing_bert** (`bert_schedule`): the six schedules of the
#    BertAdam that DeepSpeed's BERT pretraining runs with, quirks included.
# 2. **pytorch-pretrained-bert 0.6.2** (`pretrained_bert_schedule`): the
#    original BertAdam's schedules, which DeepSpeed forked and changed.
# 3. **Modern** (`get_schedule`, `linear_warmup_cosine_decay`): the schedules
#    of `transformers.get_scheduler`, and the warmup + floored cosine of LLM
#    recipes.
#
# All are plotted as multipliers of a peak learning rate of 1, with the end of
# warmup (dotted) and `t_total` (dashed) marked, and 30% past `t_total` to show
# what each does there. Each schedule is a pure `count -> value` function; here
# it is evaluated on the whole array of steps at once.

# %%
import os

# BERTADAM_NOTEBOOK_SMALL=1 (set by the tests in CI) keeps the run small; the
# committed outputs are from the full size.
SMALL = os.environ.get("BERTADAM_NOTEBOOK_SMALL") == "1"

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from bertadam_optax import schedules
from bertadam_optax.schedules import pretrained_bert

T_TOTAL = 100 if SMALL else 1000
WARMUP = 0.2  # BertAdam's convention: a fraction of t_total
WARMUP_STEPS = round(WARMUP * T_TOTAL)
steps = jnp.arange(round(1.3 * T_TOTAL))
plt.rcParams.update({"figure.dpi": 72, "axes.grid": True})


def gallery(title, curves, ncols=3):
  """One panel per schedule; warmup's end dotted, t_total dashed."""
  nrows = -(-len(curves) // ncols)
  fig, axes = plt.subplots(
    nrows, ncols, figsize=(4 * ncols, 2.6 * nrows), sharex=True, squeeze=False
  )
  for ax, (name, values) in zip(axes.flat, curves.items(), strict=False):
    ax.plot(steps, values)
    ax.set_ylim(-0.05, 1.08)
    ax.axvline(WARMUP_STEPS, color="gray", ls=":", lw=1)
    ax.axvline(T_TOTAL, color="gray", ls="--", lw=1)
    ax.set_title(name, fontsize=10)
  for ax in axes.flat[len(curves) :]:
    ax.set_visible(False)
  fig.suptitle(title)
  fig.tight_layout()
  plt.show()


# %% [markdown]
# ## 1. DeepSpeed bing_bert: `bert_schedule`
#
# The three progress-based schedules take `x = step / t_total`; the three
# step-based ones also a decay rate and period (or degrees).

# %%
STEP_BASED = {
  "warmup_linear_decay_exp": dict(decay_rate=0.5, decay_steps=T_TOTAL // 5),
  "warmup_exp_decay_exp": dict(
    decay_rate=0.5, decay_steps=T_TOTAL // 5, degree=2.0
  ),
  "warmup_exp_decay_poly": dict(warm_degree=1.5, degree=2.0),
}
deepspeed = {
  name: np.asarray(
    schedules.bert_schedule(
      name, 1.0, T_TOTAL, WARMUP, **STEP_BASED.get(name, {})
    )(steps)
  )
  for name in schedules.SCHEDULES
}
gallery(
  "DeepSpeed bing_bert BertAdam: bert_schedule(name, 1.0, "
  f"t_total={T_TOTAL}, warmup={WARMUP})",
  deepspeed,
)

# %% [markdown]
# Two quirks of the original are reproduced on purpose:
#
# * **`warmup_cosine`** is `0.5 (1 + cos(pi x))` of the progress over the
#   *whole* run, not of the progress since the end of warmup: the warmup ramps
#   to 1, and the first step after it is already on the way down.
# * **`warmup_linear`** ramps `x / w` to almost 1 and then continues with
#   `1 - x`, which is `1 - w` at the end of warmup: the learning rate *jumps
#   down* by `w` (20% of the peak here) and never reaches its peak.
#
# The raw formulas also misbehave past `t_total` (`1 - x` goes negative);
# `bert_schedule` holds the progress at 1 there (dashed: the raw formula).

# %%
w = WARMUP_STEPS
for name in ("warmup_linear", "warmup_cosine"):
  before, after = deepspeed[name][w - 1], deepspeed[name][w]
  print(
    f"{name:>14}: step {w - 1}: {before:.3f}  step {w}: {after:.3f}  "
    f"(jump {after - before:+.3f})"
  )

raw = np.asarray(schedules.warmup_linear(steps / T_TOTAL, WARMUP))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, deepspeed["warmup_linear"], label="bert_schedule")
ax.plot(steps, raw, ls="--", label="raw formula warmup_linear(x)")
ax.axhline(0, color="black", lw=0.5)
ax.set_xlabel("step")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. pytorch-pretrained-bert 0.6.2: `pretrained_bert_schedule`
#
# The original's schedules, which DeepSpeed's fork changed: here `warmup_linear`
# decays from the end of warmup (no jump) and the cosine starts after warmup.
# Past `t_total` they do what the original does: the cosines keep going.

# %%
original = {
  name: np.asarray(
    pretrained_bert.pretrained_bert_schedule(name, 1.0, T_TOTAL, WARMUP)(steps)
  )
  for name in pretrained_bert.PRETRAINED_BERT_SCHEDULES
}
gallery(
  "pytorch-pretrained-bert 0.6.2 BertAdam: pretrained_bert_schedule("
  f"name, 1.0, t_total={T_TOTAL}, warmup={WARMUP})",
  original,
)

# %% [markdown]
# ## 3. Modern: `get_schedule` and `linear_warmup_cosine_decay`
#
# `get_schedule(name, lr, num_warmup_steps, num_training_steps, **kwargs)`
# mirrors `transformers.get_scheduler`; warmup is a number of steps.
# `linear_warmup_cosine_decay` starts its cosine at the end of warmup, ends at
# its floor at `total_steps` and holds it past the end, where transformers'
# `cosine` comes back up.

# %%
MODERN_KWARGS = {
  "cosine_with_restarts": dict(num_cycles=2),
  "polynomial": dict(lr_end=0.1, power=2.0),
  "cosine_with_min_lr": dict(min_lr_rate=0.1),
  "cosine_warmup_with_min_lr": dict(min_lr_rate=0.1),
  "warmup_stable_decay": dict(num_decay_steps=T_TOTAL // 5),
}
modern = {
  name: np.asarray(
    schedules.get_schedule(
      name, 1.0, WARMUP_STEPS, T_TOTAL, **MODERN_KWARGS.get(name, {})
    )(steps)
  )
  for name in schedules.TRANSFORMERS_SCHEDULES
}
modern["linear_warmup_cosine_decay"] = np.asarray(
  schedules.linear_warmup_cosine_decay(1.0, WARMUP_STEPS, T_TOTAL, min_lr=0.1)(
    steps
  )
)
gallery(
  f"transformers get_scheduler names, num_warmup_steps={WARMUP_STEPS}, "
  f"num_training_steps={T_TOTAL}",
  modern,
  ncols=4,
)

# %% [markdown]
# ## Side by side
#
# The same intent ("linear warmup, then linear decay"; "linear warmup, then
# cosine") in the three families.

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5), sharey=True)
left.plot(steps, deepspeed["warmup_linear"], label="DeepSpeed warmup_linear")
left.plot(
  steps,
  original["warmup_linear"],
  ls="--",
  label="pytorch-pretrained-bert warmup_linear",
)
left.plot(steps, modern["linear"], ls=":", label="transformers linear")
left.set_title("linear decay")
right.plot(steps, deepspeed["warmup_cosine"], label="DeepSpeed warmup_cosine")
right.plot(
  steps,
  original["warmup_cosine"],
  ls="--",
  label="pytorch-pretrained-bert warmup_cosine",
)
right.plot(steps, modern["cosine"], ls=":", label="transformers cosine")
right.plot(
  steps,
  modern["linear_warmup_cosine_decay"],
  ls="-.",
  label="linear_warmup_cosine_decay (min_lr=0.1)",
)
right.set_title("cosine decay")
for ax in (left, right):
  ax.axvline(WARMUP_STEPS, color="gray", ls=":", lw=1)
  ax.axvline(T_TOTAL, color="gray", ls="--", lw=1)
  ax.set_xlabel("step")
  ax.legend(fontsize=8)
plt.show()
