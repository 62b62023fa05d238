"""Writes the notebooks in this folder from the cells below, and executes them.

    python notebooks/build_notebooks.py            # full size, outputs kept
    python notebooks/build_notebooks.py --small    # the CI size, for a quick look

The notebooks are generated so that their code is reviewed as code; edit the
cells here, not the ``.ipynb`` files, then rerun this script. It executes each
notebook with an ipykernel of the interpreter running it and stores the
outputs, so the committed notebooks read well on a code host.
``tests/test_notebooks.py`` executes them again, small, in CI.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

import nbclient
import nbformat
from nbformat import v4

HERE = pathlib.Path(__file__).resolve().parent
SMALL_ENV = "BERTADAM_NOTEBOOK_SMALL"

SIZE = f'''\
import os

# {SMALL_ENV}=1 (set by the tests in CI) keeps the run small; the
# committed outputs are from the full size.
SMALL = os.environ.get("{SMALL_ENV}") == "1"'''

# --- 01: the schedules gallery ------------------------------------------------

GALLERY = [
    ("md", """\
# The schedules gallery

Every learning-rate schedule in `bertadam_optax.schedules`, in its three
families:

1. **DeepSpeed bing_bert** (`bert_schedule`): the six schedules of the BertAdam
   that DeepSpeed's BERT pretraining runs with, quirks included.
2. **pytorch-pretrained-bert 0.6.2** (`pretrained_bert_schedule`): the
   original BertAdam's schedules, which DeepSpeed forked and changed.
3. **Modern** (`get_schedule`, `linear_warmup_cosine_decay`): the schedules of
   `transformers.get_scheduler`, and the warmup + floored cosine of LLM recipes.

All are plotted as multipliers of a peak learning rate of 1, with the end of
warmup (dotted) and `t_total` (dashed) marked, and 30% past `t_total` to show
what each does there. Each schedule is a pure `count -> value` function; here it
is evaluated on the whole array of steps at once."""),
    ("code", SIZE + '''

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
  fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 2.6 * nrows),
                           sharex=True, squeeze=False)
  for ax, (name, values) in zip(axes.flat, curves.items()):
    ax.plot(steps, values)
    ax.set_ylim(-0.05, 1.08)
    ax.axvline(WARMUP_STEPS, color="gray", ls=":", lw=1)
    ax.axvline(T_TOTAL, color="gray", ls="--", lw=1)
    ax.set_title(name, fontsize=10)
  for ax in axes.flat[len(curves):]:
    ax.set_visible(False)
  fig.suptitle(title)
  fig.tight_layout()
  plt.show()'''),
    ("md", """\
## 1. DeepSpeed bing_bert: `bert_schedule`

The three progress-based schedules take `x = step / t_total`; the three
step-based ones also a decay rate and period (or degrees)."""),
    ("code", '''\
STEP_BASED = {
    "warmup_linear_decay_exp": dict(decay_rate=0.5,
                                    decay_steps=T_TOTAL // 5),
    "warmup_exp_decay_exp": dict(decay_rate=0.5, decay_steps=T_TOTAL // 5,
                                 degree=2.0),
    "warmup_exp_decay_poly": dict(warm_degree=1.5, degree=2.0),
}
deepspeed = {
    name: np.asarray(schedules.bert_schedule(
        name, 1.0, T_TOTAL, WARMUP, **STEP_BASED.get(name, {}))(steps))
    for name in schedules.SCHEDULES
}
gallery("DeepSpeed bing_bert BertAdam: bert_schedule(name, 1.0, "
        f"t_total={T_TOTAL}, warmup={WARMUP})", deepspeed)'''),
    ("md", """\
Two quirks of the original are reproduced on purpose:

* **`warmup_cosine`** is `0.5 (1 + cos(pi x))` of the progress over the *whole*
  run, not of the progress since the end of warmup: the warmup ramps to 1, and
  the first step after it is already on the way down.
* **`warmup_linear`** ramps `x / w` to almost 1 and then continues with
  `1 - x`, which is `1 - w` at the end of warmup: the learning rate *jumps
  down* by `w` (20% of the peak here) and never reaches its peak.

The raw formulas also misbehave past `t_total` (`1 - x` goes negative);
`bert_schedule` holds the progress at 1 there (dashed: the raw formula)."""),
    ("code", '''\
w = WARMUP_STEPS
for name in ("warmup_linear", "warmup_cosine"):
  before, after = deepspeed[name][w - 1], deepspeed[name][w]
  print(f"{name:>14}: step {w - 1}: {before:.3f}  step {w}: {after:.3f}  "
        f"(jump {after - before:+.3f})")

raw = np.asarray(schedules.warmup_linear(steps / T_TOTAL, WARMUP))
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(steps, deepspeed["warmup_linear"], label="bert_schedule")
ax.plot(steps, raw, ls="--", label="raw formula warmup_linear(x)")
ax.axhline(0, color="black", lw=0.5)
ax.set_xlabel("step")
ax.legend()
plt.show()'''),
    ("md", """\
## 2. pytorch-pretrained-bert 0.6.2: `pretrained_bert_schedule`

The original's schedules, which DeepSpeed's fork changed: here `warmup_linear`
decays from the end of warmup (no jump) and the cosine starts after warmup.
Past `t_total` they do what the original does: the cosines keep going."""),
    ("code", '''\
original = {
    name: np.asarray(pretrained_bert.pretrained_bert_schedule(
        name, 1.0, T_TOTAL, WARMUP)(steps))
    for name in pretrained_bert.PRETRAINED_BERT_SCHEDULES
}
gallery("pytorch-pretrained-bert 0.6.2 BertAdam: pretrained_bert_schedule("
        f"name, 1.0, t_total={T_TOTAL}, warmup={WARMUP})", original)'''),
    ("md", """\
## 3. Modern: `get_schedule` and `linear_warmup_cosine_decay`

`get_schedule(name, lr, num_warmup_steps, num_training_steps, **kwargs)`
mirrors `transformers.get_scheduler`; warmup is a number of steps.
`linear_warmup_cosine_decay` starts its cosine at the end of warmup, ends at
its floor at `total_steps` and holds it past the end, where transformers'
`cosine` comes back up."""),
    ("code", '''\
MODERN_KWARGS = {
    "cosine_with_restarts": dict(num_cycles=2),
    "polynomial": dict(lr_end=0.1, power=2.0),
    "cosine_with_min_lr": dict(min_lr_rate=0.1),
    "cosine_warmup_with_min_lr": dict(min_lr_rate=0.1),
    "warmup_stable_decay": dict(num_decay_steps=T_TOTAL // 5),
}
modern = {
    name: np.asarray(schedules.get_schedule(
        name, 1.0, WARMUP_STEPS, T_TOTAL, **MODERN_KWARGS.get(name, {}))(steps))
    for name in schedules.TRANSFORMERS_SCHEDULES
}
modern["linear_warmup_cosine_decay"] = np.asarray(
    schedules.linear_warmup_cosine_decay(1.0, WARMUP_STEPS, T_TOTAL,
                                         min_lr=0.1)(steps))
gallery(f"transformers get_scheduler names, num_warmup_steps={WARMUP_STEPS}, "
        f"num_training_steps={T_TOTAL}", modern, ncols=4)'''),
    ("md", """\
## Side by side

The same intent ("linear warmup, then linear decay"; "linear warmup, then
cosine") in the three families."""),
    ("code", '''\
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5), sharey=True)
left.plot(steps, deepspeed["warmup_linear"], label="DeepSpeed warmup_linear")
left.plot(steps, original["warmup_linear"], ls="--",
          label="pytorch-pretrained-bert warmup_linear")
left.plot(steps, modern["linear"], ls=":", label="transformers linear")
left.set_title("linear decay")
right.plot(steps, deepspeed["warmup_cosine"], label="DeepSpeed warmup_cosine")
right.plot(steps, original["warmup_cosine"], ls="--",
           label="pytorch-pretrained-bert warmup_cosine")
right.plot(steps, modern["cosine"], ls=":", label="transformers cosine")
right.plot(steps, modern["linear_warmup_cosine_decay"], ls="-.",
           label="linear_warmup_cosine_decay (min_lr=0.1)")
right.set_title("cosine decay")
for ax in (left, right):
  ax.axvline(WARMUP_STEPS, color="gray", ls=":", lw=1)
  ax.axvline(T_TOTAL, color="gray", ls="--", lw=1)
  ax.set_xlabel("step")
  ax.legend(fontsize=8)
plt.show()'''),
]

# --- 02: pretraining a tiny BERT in Flax -------------------------------------

DATA = '''\
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
    yield tokens, targets, weights'''

PRETRAIN = [
    ("md", """\
# Pretraining a tiny BERT in Flax with `bertadam`

A BERT-style masked language model (`bertadam_optax.examples.tiny_bert`,
Flax Linen) trained with `bertadam` in a standard
`flax.training.train_state.TrainState` loop, with the BERT weight-decay mask
(no decay on biases and LayerNorm). Two schedules on the same batches:

* BertAdam's `warmup_linear` (DeepSpeed bing_bert's, with its drop at the end
  of warmup), the way BERT was pretrained;
* `linear_warmup_cosine_decay`, passed as `lr=` with `schedule=None`, the
  schedule of most recent pretraining recipes.

The data are synthetic (random patterns repeated) so that the notebook runs in
seconds on a CPU and the masked tokens are learnable."""),
    ("code", SIZE + '''

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from flax.training import train_state

from bertadam_optax import bert_weight_decay_mask, bertadam, get_lr
from bertadam_optax import path_to_name
from bertadam_optax.examples.tiny_bert import TinyBertConfig
from bertadam_optax.examples.tiny_bert import TinyBertMLM
from bertadam_optax.examples.tiny_bert import mlm_loss
from bertadam_optax.schedules import linear_warmup_cosine_decay

if SMALL:
  CONFIG = TinyBertConfig(vocab_size=32, hidden_size=32, num_layers=1,
                          num_heads=2, intermediate_size=64, max_len=16)
  STEPS, BATCH = 40, 16
else:
  CONFIG = TinyBertConfig(vocab_size=64, hidden_size=64, num_layers=2,
                          num_heads=4, intermediate_size=128, max_len=32)
  STEPS, BATCH = 600, 32
PEAK_LR, WARMUP = 2e-3, 0.1
plt.rcParams.update({"figure.dpi": 72, "axes.grid": True})'''),
    ("code", DATA),
    ("md", """\
## The two optimizers

Both are `bertadam` with BertAdam's defaults (`b1=0.9, b2=0.999, e=1e-6`,
per-tensor clipping at 1.0, decoupled weight decay 0.01) and the BERT
weight-decay mask; only the learning-rate schedule differs."""),
    ("code", '''\
model = TinyBertMLM(CONFIG)
params = jax.jit(model.init)(
    jax.random.key(0), jnp.zeros((1, CONFIG.max_len), jnp.int32))["params"]

optimizers = {
    "warmup_linear (BertAdam)": bertadam(
        PEAK_LR, warmup=WARMUP, t_total=STEPS, schedule="warmup_linear",
        weight_decay_mask=bert_weight_decay_mask),
    "linear_warmup_cosine_decay": bertadam(
        linear_warmup_cosine_decay(PEAK_LR, round(WARMUP * STEPS), STEPS,
                                   min_lr=PEAK_LR / 10),
        schedule=None, weight_decay_mask=bert_weight_decay_mask),
}

# The mask of one encoder layer: matrices decay, biases and LayerNorms don't.
mask = bert_weight_decay_mask(params)
for path, decayed in jax.tree_util.tree_leaves_with_path(mask["layer_0"]):
  print(f"layer_0.{path_to_name(path):<26} {'decay' if decayed else '-'}")'''),
    ("md", """\
## The Linen training loop

One jitted step; `get_lr(state.opt_state)` reads the learning rate the update
is about to apply from the optimizer state, inside `jit`."""),
    ("code", '''\
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
  state = train_state.TrainState.create(apply_fn=model.apply, params=params,
                                        tx=tx)
  losses, lrs = [], []
  for _, batch in zip(range(STEPS), mlm_batches(1, BATCH, CONFIG)):
    state, loss, lr = train_step(state, *batch)
    losses.append(loss)
    lrs.append(lr)
  history[name] = (np.asarray(losses), np.asarray(lrs))
  print(f"{name:>28}: loss {np.mean(losses[:10]):.3f} -> "
        f"{np.mean(losses[-10:]):.3f}, held-out masked accuracy "
        f"{masked_accuracy(state.params, *held_out):.1%}")'''),
    ("code", '''\
def smooth(x, window=max(1, STEPS // 30)):
  return np.convolve(x, np.ones(window) / window, mode="valid")


fig, (left, right) = plt.subplots(1, 2, figsize=(12, 3.5))
for name, (losses, lrs) in history.items():
  left.plot(smooth(losses), label=name)
  right.plot(lrs, label=name)
left.set(title="training loss (moving average)", xlabel="step",
         ylabel="masked-LM loss")
right.set(title="learning rate (get_lr)", xlabel="step")
left.legend()
right.legend()
plt.show()'''),
    ("md", """\
`warmup_linear` drops by `warmup * peak` at the end of warmup and decays to 0
at `t_total`; the cosine decays from the peak and holds its floor. The same
loop runs sharded on a mesh, and with `nnx.Optimizer`, unchanged: see the
README."""),
]

# --- 03: PyTorch parity --------------------------------------------------------

PARITY = [
    ("md", """\
# PyTorch parity: BertAdam in torch and in bertadam-optax

The same training run twice, from the same weights and on the same batches:
pytorch-pretrained-bert 0.6.2's `BertAdam` training a PyTorch model, and
`bertadam` training its Flax twin. Then a run moved mid-way from PyTorch to
JAX with `bertadam_optax.interop.torch.from_torch`.

pytorch-pretrained-bert's `warmup_linear` is not DeepSpeed's (which `bertadam`
names `schedule="warmup_linear"`), so the JAX side takes the original's
schedule, `pretrained_bert_schedule`, as its learning rate."""),
    ("code", SIZE + '''

import warnings

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
import torch
from pytorch_pretrained_bert import BertAdam

from bertadam_optax import bertadam, get_lr
from bertadam_optax.examples.tiny_bert import TinyBertConfig, TinyBertMLM
from bertadam_optax.examples.tiny_bert import mlm_loss
from bertadam_optax.examples.tiny_bert_torch import TinyBertMLMTorch
from bertadam_optax.examples.tiny_bert_torch import mlm_loss_torch
from bertadam_optax.interop.torch import from_torch, match_by_name
from bertadam_optax.interop.torch import params_to_torch, to_torch
from bertadam_optax.schedules.pretrained_bert import pretrained_bert_schedule

# pytorch-pretrained-bert 0.6.2 calls a deprecated overload of Tensor.add_.
warnings.filterwarnings("ignore", message="This overload of add_")

if SMALL:
  CONFIG = TinyBertConfig(vocab_size=32, hidden_size=16, num_layers=1,
                          num_heads=2, intermediate_size=32, max_len=16)
  STEPS, BATCH = 20, 8
else:
  CONFIG = TinyBertConfig(vocab_size=64, hidden_size=64, num_layers=2,
                          num_heads=4, intermediate_size=128, max_len=32)
  STEPS, BATCH = 200, 16
HPARAMS = dict(lr=1e-3, warmup=0.1, t_total=STEPS)  # BertAdam's defaults else
plt.rcParams.update({"figure.dpi": 72, "axes.grid": True})'''),
    ("code", DATA + '''


batches = [b for _, b in zip(range(STEPS), mlm_batches(0, BATCH, CONFIG))]'''),
    ("md", """\
## Same weights, same batches

The Flax model is initialised, and its weights copied into the PyTorch twin
with `params_to_torch`. `match_by_name` maps the names (`layer.0.query.weight`
is `layer_0.query.kernel`, transposed)."""),
    ("code", '''\
flax_model = TinyBertMLM(CONFIG)
init_params = jax.jit(flax_model.init)(
    jax.random.key(0), jnp.zeros((1, CONFIG.max_len), jnp.int32))["params"]
mapping = match_by_name(TinyBertMLMTorch(CONFIG).state_dict(), init_params)


def torch_run(batches, model_state_dict, optimizer_state_dict=None):
  model = TinyBertMLMTorch(CONFIG)
  model.load_state_dict(model_state_dict)
  optimizer = BertAdam(model.parameters(), **HPARAMS)
  if optimizer_state_dict is not None:
    optimizer.load_state_dict(optimizer_state_dict)
  losses, lrs = [], []
  for tokens, targets, weights in batches:
    loss = mlm_loss_torch(model(torch.as_tensor(tokens)),
                          torch.as_tensor(targets), torch.as_tensor(weights))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    lrs.append(optimizer.get_lr()[0])  # the rate of the next step
  return model, optimizer, np.array(losses), np.array(lrs)


tx = bertadam(pretrained_bert_schedule("warmup_linear", HPARAMS["lr"],
                                       STEPS, HPARAMS["warmup"]),
              schedule=None)


@jax.jit
def jax_step(params, opt_state, tokens, targets, weights):
  def loss_fn(params):
    return mlm_loss(flax_model.apply({"params": params}, tokens), targets,
                    weights)

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


def jax_run(batches, params, opt_state):
  losses, lrs = [], []
  for batch in batches:
    params, opt_state, loss = jax_step(params, opt_state, *batch)
    losses.append(loss)
    lrs.append(get_lr(opt_state))  # the rate of the next step
  return params, opt_state, np.array(losses), np.array(lrs)'''),
    ("code", '''\
torch_model, torch_optimizer, torch_losses, torch_lrs = torch_run(
    batches, params_to_torch(init_params, mapping))
params, opt_state, jax_losses, jax_lrs = jax_run(
    batches, init_params, tx.init(init_params))

names = [name for name, _ in torch_model.named_parameters()]
model_sd, optimizer_sd = to_torch(
    params, opt_state, mapping=mapping, param_names=names,
    param_groups=torch_optimizer.state_dict()["param_groups"])


def max_difference(ours, theirs):
  return max(float(np.max(np.abs(np.asarray(ours[k]) - np.asarray(theirs[k]))))
             for k in theirs)


torch_state = torch_optimizer.state_dict()["state"]
print(f"max |loss difference|          {np.max(np.abs(jax_losses - torch_losses)):.2e}"
      f"   (loss ~{torch_losses[-1]:.2f})")
print(f"max |learning-rate difference| {np.max(np.abs(jax_lrs - torch_lrs)):.2e}"
      f"   (peak {HPARAMS['lr']:.0e})")
print(f"max |parameter difference|     {max_difference(model_sd, torch_model.state_dict()):.2e}")
for key in ("next_m", "next_v"):
  ours = {i: s[key] for i, s in optimizer_sd["state"].items()}
  theirs = {i: s[key] for i, s in torch_state.items()}
  print(f"max |{key} difference|        {max_difference(ours, theirs):.2e}")'''),
    ("code", '''\
fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 3.5))
left.plot(torch_losses, label="PyTorch BertAdam", lw=3, alpha=0.5)
left.plot(jax_losses, "--", label="bertadam-optax")
left.set(title="training loss", xlabel="step")
difference = np.abs(jax_losses - torch_losses)
middle.semilogy(np.flatnonzero(difference), difference[difference > 0], ".")
middle.set(title="|loss difference| (where not 0)", xlabel="step",
           ylim=(1e-9, 1e-3))
right.plot(torch_lrs, label="BertAdam.get_lr()", lw=3, alpha=0.5)
right.plot(jax_lrs, "--", label="get_lr(opt_state)")
right.set(title="learning rate", xlabel="step")
left.legend()
right.legend()
plt.show()'''),
    ("md", """\
The differences are float32 rounding: the two frameworks sum in different
orders, and Adam's normalisation by `sqrt(v)` passes relative differences on
to the updates.

## Moving a run from PyTorch to JAX mid-way

Train half the steps in PyTorch, convert the model and optimizer state dicts
with `from_torch` (moments transposed where the layouts differ; the step count
and the learning rate carried over), and finish in JAX."""),
    ("code", '''\
half = STEPS // 2
first, first_optimizer, first_losses, _ = torch_run(
    batches[:half], params_to_torch(init_params, mapping))
moved_params, moved_state = from_torch(
    first.state_dict(), first_optimizer.state_dict(), params=init_params,
    optimizer=tx, mapping=mapping, param_names=names)
print(f"after {half} steps: torch get_lr() {first_optimizer.get_lr()[0]:.6g}, "
      f"get_lr(opt_state) {float(get_lr(moved_state)):.6g}")
_, _, second_losses, _ = jax_run(batches[half:], moved_params, moved_state)
moved_losses = np.concatenate([first_losses, second_losses])
print(f"max |loss difference| to the uninterrupted PyTorch run: "
      f"{np.max(np.abs(moved_losses - torch_losses)):.2e}")

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(torch_losses, label="PyTorch, uninterrupted", lw=3, alpha=0.5)
ax.plot(np.arange(half), first_losses, "--", label="PyTorch, first half")
ax.plot(np.arange(half, STEPS), second_losses, "--",
        label="bertadam-optax, after from_torch")
ax.axvline(half - 0.5, color="gray", ls=":")
ax.set(title="a run moved mid-way", xlabel="step", ylabel="loss")
ax.legend()
plt.show()'''),
]

NOTEBOOKS = {
    "01_schedules_gallery.ipynb": GALLERY,
    "02_pretrain_tiny_bert.ipynb": PRETRAIN,
    "03_pytorch_parity.ipynb": PARITY,
}


def build(name: str, cells) -> nbformat.NotebookNode:
  nb = v4.new_notebook()
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                               "language": "python"}
  nb.metadata["language_info"] = {"name": "python"}
  stem = name.split("_")[0]
  for i, (kind, source) in enumerate(cells):
    cell = (v4.new_markdown_cell(source) if kind == "md"
            else v4.new_code_cell(source))
    cell["id"] = f"nb{stem}-{i:02d}"  # stable ids: no churn on rebuilds
    nb.cells.append(cell)
  return nb


def execute(nb: nbformat.NotebookNode, *, small: bool,
            timeout: int = 600) -> nbformat.NotebookNode:
  """Runs ``nb`` in place with an ipykernel of this interpreter."""
  import ipykernel.kernelspec  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as prefix:
    ipykernel.kernelspec.install(kernel_name="python3", prefix=prefix)
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", SMALL_ENV)}
    os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
    os.environ[SMALL_ENV] = "1" if small else "0"
    try:
      nbclient.NotebookClient(
          nb, timeout=timeout, kernel_name="python3", record_timing=False,
          resources={"metadata": {"path": str(HERE)}}).execute()
    finally:
      for key, value in saved.items():
        if value is None:
          os.environ.pop(key, None)
        else:
          os.environ[key] = value
  return nb


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--small", action="store_true",
                      help="execute at the CI size")
  parser.add_argument("--no-execute", action="store_true",
                      help="write the notebooks without outputs")
  parser.add_argument("names", nargs="*", help="only these notebooks")
  args = parser.parse_args(argv)
  for name, cells in NOTEBOOKS.items():
    if args.names and name not in args.names:
      continue
    nb = build(name, cells)
    if not args.no_execute:
      execute(nb, small=args.small)
    nbformat.write(nb, HERE / name)
    print(f"wrote {HERE / name}", file=sys.stderr)


if __name__ == "__main__":
  main()
