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
# # Pretraining a tiny BERT in Flax with `bertadam`
#
# A BERT-style masked language model (`bertadam_optax.examples.tiny_bert`,
# Flax Linen) trained with `bertadam` in a standard
# `flax.training.train_state.TrainState` loop, with the BERT weight-decay mask
# (no decay on biases and LayerNorm). Two schedules on the same batches:
#
# * BertAdam's `warmup_linear` (DeepSpeed bing_bert's, with its drop at the end
#   of warmup), the way BERT was pretrained;
# * `linear_warmup_cosine_decay`, passed as `lr=` with `schedule=None`, the
#   schedule of most recent pretraining recipes.
#
# The data are synthetic (random patterns repeated) so that the notebook runs in
# seconds on a CPU and the masked tokens are learnable.

# %%
import os

# BERTADAM_NOTEBOOK_SMALL=1 (set by the tests in CI) keeps the run small; the
# committed outputs are from the full size.
SMALL = os.environ.get("BERTADAM_NOTEBOOK_SMALL") == "1"

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax.training import train_state

from bertadam_optax import bert_weight_decay_mask
from bertadam_optax import bertadam
from bertadam_optax import get_lr
from bertadam_optax import path_to_name
from bertadam_optax.examples.tiny_bert import TinyBertConfig
from bertadam_optax.examples.tiny_bert import TinyBertMLM
from bertadam_optax.examples.tiny_bert import mlm_loss
from bertadam_optax.schedules import linear_warmup_cosine_decay

if SMALL:
  CONFIG = TinyBertConfig(
    vocab_size=32,
    hidden_size=32,
    num_layers=1,
    num_heads=2,
    intermediate_size=64,
    max_len=16,
  )
  STEPS, BATCH = 40, 16
else:
  CONFIG = TinyBertConfig(
    vocab_size=64,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    intermediate_size=128,
    max_len=32,
  )
  STEPS, BATCH = 600, 32
PEAK_LR, WARMUP = 2e-3, 0.1
plt.rcParams.update({"figure.dpi": 72, "axes.grid": True})

# %%
MASK = 0  # token id of [MASK]; the sequences use ids 1 .. vocab_size - 1


def mlm_batches(seed, batch_size, config):
  """Masked-LM batches of random patterns repeated with a random period (2 to
  8), so that a masked token is predictable from the rest of the sequence."""
  rng = np.random.default_rng(seed)
  positions = np.arange(config.max_len)
  while True:
    period = rng.integers(2, 9, (batch_size, 1))
    pattern = rng.integers(1, config.vocab_size, (batch_size, 8))
    targets = np.take_along_axis(pattern, positions % period, axis=1)
    weights = (rng.random(targets.shape) < 0.15).astype(np.float32)
    tokens = np.where(weights > 0, MASK, targets)
    yield tokens, targets, weights


# %% [markdown]
# ## The two optimizers
#
# Both are `bertadam` with BertAdam's defaults (`b1=0.9, b2=0.999, e=1e-6`,
# per-tensor clipping at 1.0, decoupled weight decay 0.01) and the BERT
# weight-decay mask; only the learning-rate schedule differs.

# %%
model = TinyBertMLM(CONFIG)
params = jax.jit(model.init)(
  jax.random.key(0), jnp.zeros((1, CONFIG.max_len), jnp.int32)
)["params"]

optimizers = {
  "warmup_linear (BertAdam)": bertadam(
    PEAK_LR,
    warmup=WARMUP,
    t_total=STEPS,
    schedule="warmup_linear",
    weight_decay_mask=bert_weight_decay_mask,
  ),
  "linear_warmup_cosine_decay": bertadam(
    linear_warmup_cosine_decay(
      PEAK_LR, round(WARMUP * STEPS), STEPS, min_lr=PEAK_LR / 10
    ),
    schedule=None,
    weight_decay_mask=bert_weight_decay_mask,
  ),
}

# The mask of one encoder layer: matrices decay, biases and LayerNorms don't.
mask = bert_weight_decay_mask(params)
for path, decayed in jax.tree_util.tree_leaves_with_path(mask["layer_0"]):
  print(f"layer_0.{path_to_name(path):<26} {'decay' if decayed else '-'}")


# %% [markdown]
# ## The Linen training loop
#
# One jitted step; `get_lr(state.opt_state)` reads the learning rate the update
# is about to apply from the optimizer state, inside `jit`.


# %%
@jax.jit
def train_step(state, tokens, targets, weights):
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, tokens)
    return mlm_loss(logits, targets, weights)

  lr = get_lr(state.opt_state)
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss, lr


@jax.jit
def masked_accuracy(params, tokens, targets, weights):
  predictions = model.apply({"params": params}, tokens).argmax(-1)
  return jnp.sum((predictions == targets) * weights) / jnp.sum(weights)


held_out = next(mlm_batches(seed=123, batch_size=256, config=CONFIG))
history = {}
for name, tx in optimizers.items():
  state = train_state.TrainState.create(
    apply_fn=model.apply, params=params, tx=tx
  )
  losses, lrs = [], []
  batches = mlm_batches(1, BATCH, CONFIG)
  for _, batch in zip(range(STEPS), batches, strict=False):
    state, loss, lr = train_step(state, *batch)
    losses.append(loss)
    lrs.append(lr)
  history[name] = (np.asarray(losses), np.asarray(lrs))
  print(
    f"{name:>28}: loss {np.mean(losses[:10]):.3f} -> "
    f"{np.mean(losses[-10:]):.3f}, held-out masked accuracy "
    f"{masked_accuracy(state.params, *held_out):.1%}"
  )


# %%
WINDOW = max(1, STEPS // 30)


def smooth(x, window=WINDOW):
  return np.convolve(x, np.ones(window) / window, mode="valid")


fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5))
for name, (losses, lrs) in history.items():
  left.plot(smooth(losses), label=name)
  right.plot(lrs, label=name)
left.set(
  title="training loss (moving average)", xlabel="step", ylabel="masked-LM loss"
)
right.set(title="learning rate (get_lr)", xlabel="step")
left.legend()
right.legend()
plt.show()

# %% [markdown]
# `warmup_linear` drops by `warmup * peak` at the end of warmup and decays to 0
# at `t_total`; the cosine decays from the peak and holds its floor. The same
# loop runs sharded on a mesh, and with `nnx.Optimizer`, unchanged: see the
# README.
