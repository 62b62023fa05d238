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
# # PyTorch parity: BertAdam in torch and in bertadam-optax
#
# The same training run twice, from the same weights and on the same batches:
# pytorch-pretrained-bert 0.6.2's `BertAdam` training a PyTorch model, and
# `bertadam` training its Flax twin. Then a run moved mid-way from PyTorch to
# JAX with `bertadam_optax.interop.torch.from_torch`.
#
# pytorch-pretrained-bert's `warmup_linear` is not DeepSpeed's (which `bertadam`
# names `schedule="warmup_linear"`), so the JAX side takes the original's
# schedule, `pretrained_bert_schedule`, as its learning rate.

# %%
import os

# BERTADAM_NOTEBOOK_SMALL=1 (set by the tests in CI) keeps the run small; the
# committed outputs are from the full size.
SMALL = os.environ.get("BERTADAM_NOTEBOOK_SMALL") == "1"

import warnings

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import torch
from pytorch_pretrained_bert import BertAdam

from bertadam_optax import bertadam
from bertadam_optax import get_lr
from bertadam_optax.examples.tiny_bert import TinyBertConfig
from bertadam_optax.examples.tiny_bert import TinyBertMLM
from bertadam_optax.examples.tiny_bert import mlm_loss
from bertadam_optax.examples.tiny_bert_torch import TinyBertMLMTorch
from bertadam_optax.examples.tiny_bert_torch import mlm_loss_torch
from bertadam_optax.interop.torch import from_torch
from bertadam_optax.interop.torch import match_by_name
from bertadam_optax.interop.torch import params_to_torch
from bertadam_optax.interop.torch import to_torch
from bertadam_optax.schedules.pretrained_bert import pretrained_bert_schedule

# pytorch-pretrained-bert 0.6.2 calls a deprecated overload of Tensor.add_.
warnings.filterwarnings("ignore", message="This overload of add_")

if SMALL:
  CONFIG = TinyBertConfig(
    vocab_size=32,
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    intermediate_size=32,
    max_len=16,
  )
  STEPS, BATCH = 20, 8
else:
  CONFIG = TinyBertConfig(
    vocab_size=64,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    intermediate_size=128,
    max_len=32,
  )
  STEPS, BATCH = 200, 16
HPARAMS = dict(lr=1e-3, warmup=0.1, t_total=STEPS)  # BertAdam's defaults else
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


batches = [
  b for _, b in zip(range(STEPS), mlm_batches(0, BATCH, CONFIG), strict=False)
]

# %% [markdown]
# ## Same weights, same batches
#
# The Flax model is initialised, and its weights copied into the PyTorch twin
# with `params_to_torch`. `match_by_name` maps the names (`layer.0.query.weight`
# is `layer_0.query.kernel`, transposed).

# %%
flax_model = TinyBertMLM(CONFIG)
init_params = jax.jit(flax_model.init)(
  jax.random.key(0), jnp.zeros((1, CONFIG.max_len), jnp.int32)
)["params"]
mapping = match_by_name(TinyBertMLMTorch(CONFIG).state_dict(), init_params)


def torch_run(batches, model_state_dict, optimizer_state_dict=None):
  model = TinyBertMLMTorch(CONFIG)
  model.load_state_dict(model_state_dict)
  optimizer = BertAdam(model.parameters(), **HPARAMS)
  if optimizer_state_dict is not None:
    optimizer.load_state_dict(optimizer_state_dict)
  losses, lrs = [], []
  for tokens, targets, weights in batches:
    loss = mlm_loss_torch(
      model(torch.as_tensor(tokens)),
      torch.as_tensor(targets),
      torch.as_tensor(weights),
    )
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    lrs.append(optimizer.get_lr()[0])  # the rate of the next step
  return model, optimizer, np.array(losses), np.array(lrs)


tx = bertadam(
  pretrained_bert_schedule(
    "warmup_linear", HPARAMS["lr"], STEPS, HPARAMS["warmup"]
  ),
  schedule=None,
)


@jax.jit
def jax_step(params, opt_state, tokens, targets, weights):
  def loss_fn(params):
    return mlm_loss(
      flax_model.apply({"params": params}, tokens), targets, weights
    )

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def jax_run(batches, params, opt_state):
  losses, lrs = [], []
  for batch in batches:
    params, opt_state, loss = jax_step(params, opt_state, *batch)
    losses.append(loss)
    lrs.append(get_lr(opt_state))  # the rate of the next step
  return params, opt_state, np.array(losses), np.array(lrs)


# %%
torch_model, torch_optimizer, torch_losses, torch_lrs = torch_run(
  batches, params_to_torch(init_params, mapping)
)
params, opt_state, jax_losses, jax_lrs = jax_run(
  batches, init_params, tx.init(init_params)
)

names = [name for name, _ in torch_model.named_parameters()]
model_sd, optimizer_sd = to_torch(
  params,
  opt_state,
  mapping=mapping,
  param_names=names,
  param_groups=torch_optimizer.state_dict()["param_groups"],
)


def max_difference(ours, theirs):
  return max(
    float(np.max(np.abs(np.asarray(ours[k]) - np.asarray(theirs[k]))))
    for k in theirs
  )


torch_state = torch_optimizer.state_dict()["state"]
loss_difference = np.max(np.abs(jax_losses - torch_losses))
lr_difference = np.max(np.abs(jax_lrs - torch_lrs))
param_difference = max_difference(model_sd, torch_model.state_dict())
print(
  f"max |loss difference|          {loss_difference:.2e}"
  f"   (loss ~{torch_losses[-1]:.2f})"
)
print(
  f"max |learning-rate difference| {lr_difference:.2e}"
  f"   (peak {HPARAMS['lr']:.0e})"
)
print(f"max |parameter difference|     {param_difference:.2e}")
for key in ("next_m", "next_v"):
  ours = {i: s[key] for i, s in optimizer_sd["state"].items()}
  theirs = {i: s[key] for i, s in torch_state.items()}
  print(f"max |{key} difference|        {max_difference(ours, theirs):.2e}")

# %%
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 3.5))
left.plot(torch_losses, label="PyTorch BertAdam", lw=3, alpha=0.5)
left.plot(jax_losses, "--", label="bertadam-optax")
left.set(title="training loss", xlabel="step")
difference = np.abs(jax_losses - torch_losses)
middle.semilogy(np.flatnonzero(difference), difference[difference > 0], ".")
middle.set(
  title="|loss difference| (where not 0)", xlabel="step", ylim=(1e-9, 1e-3)
)
right.plot(torch_lrs, label="BertAdam.get_lr()", lw=3, alpha=0.5)
right.plot(jax_lrs, "--", label="get_lr(opt_state)")
right.set(title="learning rate", xlabel="step")
left.legend()
right.legend()
plt.show()

# %% [markdown]
# The differences are float32 rounding: the two frameworks sum in different
# orders, and Adam's normalisation by `sqrt(v)` passes relative differences on
# to the updates.
#
# ## Moving a run from PyTorch to JAX mid-way
#
# Train half the steps in PyTorch, convert the model and optimizer state dicts
# with `from_torch` (moments transposed where the layouts differ; the step count
# and the learning rate carried over), and finish in JAX.

# %%
half = STEPS // 2
first, first_optimizer, first_losses, _ = torch_run(
  batches[:half], params_to_torch(init_params, mapping)
)
moved_params, moved_state = from_torch(
  first.state_dict(),
  first_optimizer.state_dict(),
  params=init_params,
  optimizer=tx,
  mapping=mapping,
  param_names=names,
)
print(
  f"after {half} steps: torch get_lr() {first_optimizer.get_lr()[0]:.6g}, "
  f"get_lr(opt_state) {float(get_lr(moved_state)):.6g}"
)
_, _, second_losses, _ = jax_run(batches[half:], moved_params, moved_state)
moved_losses = np.concatenate([first_losses, second_losses])
print(
  f"max |loss difference| to the uninterrupted PyTorch run: "
  f"{np.max(np.abs(moved_losses - torch_losses)):.2e}"
)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(torch_losses, label="PyTorch, uninterrupted", lw=3, alpha=0.5)
ax.plot(np.arange(half), first_losses, "--", label="PyTorch, first half")
ax.plot(
  np.arange(half, STEPS),
  second_losses,
  "--",
  label="bertadam-optax, after from_torch",
)
ax.axvline(half - 0.5, color="gray", ls=":")
ax.set(title="a run moved mid-way", xlabel="step", ylabel="loss")
ax.legend()
plt.show()
