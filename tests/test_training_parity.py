"""A real training loop, trained twice: PyTorch BertAdam and bertadam.

A tiny BERT-like MLM (``bertadam_optax.examples.tiny_bert.TinyBertMLM`` with
one layer) and its PyTorch twin, defined here with the same architecture and
given the Flax initial weights, are trained 100 steps on the same random
batches: the torch one with pytorch-pretrained-bert 0.6.2's ``BertAdam`` and
DeepSpeed's no-decay param groups and warmup_linear schedule, the Flax one
with :func:`bertadam_optax.bertadam` and
:func:`bertadam_optax.bert_weight_decay_mask`. The losses must agree at every
step.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax

import bertadam_optax
from bertadam_optax.examples import tiny_bert
from tests import bertadam_reference
from tests.references import require

STEPS = 100
BATCH, LENGTH = 8, 16
CONFIG = tiny_bert.TinyBertConfig(
  vocab_size=64,
  hidden_size=32,
  num_layers=1,
  num_heads=4,
  intermediate_size=64,
  max_len=LENGTH,
)
LR, WARMUP, WEIGHT_DECAY, MAX_GRAD_NORM = 5e-3, 0.1, 0.01, 1.0


def _batches():
  rng = np.random.RandomState(0)
  batches = []
  for _ in range(STEPS):
    # Runs of consecutive tokens: a masked one follows from its neighbours.
    start = rng.randint(0, CONFIG.vocab_size, size=(BATCH, 1))
    targets = (start + np.arange(LENGTH)) % (CONFIG.vocab_size - 1) + 1
    weights = (rng.uniform(size=(BATCH, LENGTH)) < 0.25).astype(np.float32)
    tokens = np.where(weights > 0, 0, targets)  # token 0 plays [MASK]
    batches.append((tokens.astype(np.int32), targets.astype(np.int32), weights))
  return batches


def _torch_twin(torch):
  """TinyBertMLM in torch, module for module, with the same names."""
  nn = torch.nn
  c = CONFIG

  class Block(nn.Module):
    def __init__(self):
      super().__init__()
      for name in ("query", "key", "value", "attention_output"):
        setattr(self, name, nn.Linear(c.hidden_size, c.hidden_size))
      self.attention_LayerNorm = nn.LayerNorm(
        c.hidden_size, eps=c.layer_norm_eps
      )
      self.intermediate = nn.Linear(c.hidden_size, c.intermediate_size)
      self.output = nn.Linear(c.intermediate_size, c.hidden_size)
      self.output_LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
      b, t, _ = x.shape
      head_dim = c.hidden_size // c.num_heads
      heads = lambda y: y.reshape(b, t, c.num_heads, head_dim)
      q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
      logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / head_dim**0.5
      weights = torch.softmax(logits, dim=-1)
      attended = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, -1)
      x = self.attention_LayerNorm(x + self.attention_output(attended))
      h = self.output(torch.nn.functional.gelu(self.intermediate(x)))
      return self.output_LayerNorm(x + h)

  class TinyBert(nn.Module):
    def __init__(self):
      super().__init__()
      self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
      self.position_embeddings = nn.Embedding(c.max_len, c.hidden_size)
      self.embeddings_LayerNorm = nn.LayerNorm(
        c.hidden_size, eps=c.layer_norm_eps
      )
      self.layer_0 = Block()
      self.head_transform = nn.Linear(c.hidden_size, c.hidden_size)
      self.head_LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
      self.decoder = nn.Linear(c.hidden_size, c.vocab_size)

    def forward(self, tokens):
      positions = torch.arange(tokens.shape[1])[None, :]
      x = self.word_embeddings(tokens) + self.position_embeddings(positions)
      x = self.layer_0(self.embeddings_LayerNorm(x))
      h = torch.nn.functional.gelu(self.head_transform(x))
      return self.decoder(self.head_LayerNorm(h))

  return TinyBert()


def _copy_flax_weights(torch, model, flax_params):
  """Flax ``kernel`` is torch's ``weight`` transposed; the rest maps 1:1."""
  state = {}
  for path, value in jax.tree_util.tree_flatten_with_path(
    flax_params["params"]
  )[0]:
    name = bertadam_optax.path_to_name(path)
    *modules, leaf = name.split(".")
    value = np.asarray(value)
    if leaf == "kernel":
      value = value.T
    leaf = {"kernel": "weight", "scale": "weight", "embedding": "weight"}.get(
      leaf, leaf
    )
    state[".".join(modules + [leaf])] = torch.tensor(value)
  assert set(state) == {n for n, _ in model.named_parameters()}
  model.load_state_dict(state)


def _torch_losses(torch, ppb, flax_params, batches):
  torch.manual_seed(0)
  model = _torch_twin(torch)
  _copy_flax_weights(torch, model, flax_params)
  named = list(model.named_parameters())
  decays = bertadam_reference.deepspeed_decays
  groups = [
    {
      "params": [p for n, p in named if decays(n)],
      "weight_decay": WEIGHT_DECAY,
    },
    {"params": [p for n, p in named if not decays(n)], "weight_decay": 0.0},
  ]
  optimizer = ppb.BertAdam(
    groups,
    lr=LR,
    max_grad_norm=MAX_GRAD_NORM,
    schedule=bertadam_reference.deepspeed_lr_schedule(
      "warmup_linear", WARMUP, STEPS
    ),
  )
  losses = []
  for tokens, targets, weights in batches:
    logits = model(torch.tensor(tokens))
    per_token = torch.nn.functional.cross_entropy(
      logits.reshape(-1, CONFIG.vocab_size),
      torch.tensor(targets).reshape(-1).long(),
      reduction="none",
    )
    w = torch.tensor(weights).reshape(-1)
    loss = (per_token * w).sum() / w.sum().clamp(min=1.0)
    optimizer.zero_grad()
    loss.backward()
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # 0.6.2's deprecated add_ overload
      optimizer.step()
    losses.append(loss.item())
  return np.asarray(losses)


def _jax_losses(flax_params, batches):
  model = tiny_bert.TinyBertMLM(CONFIG)
  tx = bertadam_optax.bertadam(
    LR,
    warmup=WARMUP,
    t_total=STEPS,
    schedule="warmup_linear",
    weight_decay=WEIGHT_DECAY,
    max_grad_norm=MAX_GRAD_NORM,
    weight_decay_mask=bertadam_optax.bert_weight_decay_mask(),
  )

  @jax.jit
  def train_step(params, opt_state, tokens, targets, weights):
    def loss_fn(params):
      logits = model.apply(params, tokens)
      return tiny_bert.mlm_loss(logits, targets, weights)

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  params, opt_state = flax_params, tx.init(flax_params)
  losses = []
  for batch in batches:
    params, opt_state, loss = train_step(params, opt_state, *batch)
    losses.append(loss)
  return np.asarray(losses)


def test_losses_match_pytorch_bertadam_at_every_step():
  torch = require("torch")
  ppb = require("pytorch_pretrained_bert")
  batches = _batches()
  model = tiny_bert.TinyBertMLM(CONFIG)
  flax_params = model.init(
    jax.random.PRNGKey(0), jnp.zeros((1, LENGTH), jnp.int32)
  )
  ours = _jax_losses(flax_params, batches)
  # One thread: on a shared CPU torch's idle OpenMP workers spin and cost more
  # than this tiny model's parallelism saves.
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  try:
    theirs = _torch_losses(torch, ppb, flax_params, batches)
  finally:
    torch.set_num_threads(threads)
  np.testing.assert_allclose(ours, theirs, rtol=1e-3)
  # The model learned, so the agreement covers a run that moved.
  assert theirs[-10:].mean() < 0.9 * theirs[:10].mean()
