"""``bertadam-optax demo``: pretrain a tiny BERT masked LM with ``bertadam``.

The model is :class:`~bertadam_optax.examples.tiny_bert.TinyBertMLM`, the
data the books of Genesis and Exodus of the King James Version (public domain;
``cli/data/README.md`` says where the file comes from), cut into a word-level
vocabulary. Training is BERT's masked-LM recipe: 15% of the positions are
selected, 80% of those replaced by ``[MASK]``, 10% by a random word and 10%
left as they are, and the loss is the cross-entropy on the selected positions.
Everything random (initialization, batches, masks) derives from one seed, and
each step is one compiled XLA computation, so the same seed gives the same
numbers. The held-out loss is measured on every 20th verse, never trained
on, with fixed masks.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib.resources
import json
import os
import re
import shutil
import sys
import tempfile
import time
import types
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from bertadam_optax import alias
from bertadam_optax import checkpoint
from bertadam_optax import masks
from bertadam_optax.cli import plots
from bertadam_optax.examples import tiny_bert
from bertadam_optax.schedules import registry

__all__ = [
  "CORPUS_FILE",
  "MODEL_PRESETS",
  "CorpusData",
  "RunResult",
  "WordTokenizer",
  "load_corpus",
  "loss_and_accuracy",
  "make_optimizer",
  "run",
  "train",
  "unigram_entropy",
  "words",
]

CORPUS_FILE = "kjv_genesis_exodus.txt"
"""The corpus, in ``bertadam_optax/cli/data/``: one verse per line."""

VOCAB_SIZE = 1024
SEQ_LEN = 16
HELD_OUT_EVERY = 20
EVAL_MASKINGS = 4
MASK_RATE = 0.15
DEMO_B2 = 0.98

MODEL_PRESETS = types.MappingProxyType(
  {
    "tiny": tiny_bert.TinyBertConfig(
      vocab_size=VOCAB_SIZE,
      hidden_size=64,
      num_layers=2,
      num_heads=4,
      intermediate_size=256,
      max_len=SEQ_LEN,
    ),
    "micro": tiny_bert.TinyBertConfig(
      vocab_size=VOCAB_SIZE,
      hidden_size=32,
      num_layers=1,
      num_heads=2,
      intermediate_size=64,
      max_len=SEQ_LEN,
    ),
  }
)
"""The ``--model`` choices."""

# Lower-cased words (with an apostrophe inside, as "lord's") and single
# punctuation marks; the KJV text has no digits.
_TOKEN_PATTERN = re.compile(r"[a-z]+(?:'[a-z]+)?|[^\sa-z]")


def load_corpus() -> str:
  """The bundled corpus text."""
  data = importlib.resources.files("bertadam_optax.cli") / "data" / CORPUS_FILE
  return data.read_text(encoding="utf-8")


def words(text: str) -> list[str]:
  """``text`` split into the tokenizer's words (lower-cased)."""
  return _TOKEN_PATTERN.findall(text.lower())


class WordTokenizer:
  """A word-level tokenizer: the most frequent words, the rest ``[UNK]``.

  Id 0 is ``[MASK]``, id 1 ``[UNK]``; the words follow by decreasing count
  (ties alphabetically), so the vocabulary is a deterministic function of
  the text.
  """

  MASK = "[MASK]"
  UNK = "[UNK]"
  MASK_ID = 0
  UNK_ID = 1

  def __init__(self, vocab: Sequence[str]):
    self.vocab = tuple(vocab)
    self._ids = {word: i for i, word in enumerate(self.vocab)}

  @classmethod
  def from_text(cls, text: str, vocab_size: int = VOCAB_SIZE) -> WordTokenizer:
    counts = collections.Counter(words(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return cls([cls.MASK, cls.UNK] + [w for w, _ in ranked[: vocab_size - 2]])

  def encode(self, text: str) -> np.ndarray:
    return np.asarray(
      [self._ids.get(w, self.UNK_ID) for w in words(text)], dtype=np.int32
    )

  def decode(self, ids: Iterable[int]) -> str:
    return " ".join(self.vocab[i] for i in ids)


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
  """The entropy (nats) of the token frequencies: the best context-free loss."""
  p = np.bincount(ids, minlength=vocab_size) / len(ids)
  p = p[p > 0]
  return float(-(p * np.log(p)).sum())


def _mask(key, tokens, vocab_size: int):
  """BERT's masking: the model's inputs, targets and loss weights."""
  select_key, kind_key, word_key = jax.random.split(key, 3)
  selected = jax.random.uniform(select_key, tokens.shape) < MASK_RATE
  kind = jax.random.uniform(kind_key, tokens.shape)
  # Random replacements are real words, never [MASK] or [UNK].
  random_words = jax.random.randint(
    word_key, tokens.shape, WordTokenizer.UNK_ID + 1, vocab_size
  )
  inputs = jnp.where(
    selected & (kind < 0.8),
    WordTokenizer.MASK_ID,
    jnp.where(selected & (kind < 0.9), random_words, tokens),
  )
  return inputs, tokens, selected.astype(jnp.float32)


@dataclasses.dataclass
class RunResult:
  """One training run: per-step metrics, the held-out numbers, final state."""

  schedule: str
  loss: list[float]
  accuracy: list[float]
  lr: list[float]
  eval_loss: tuple[float, float]
  eval_accuracy: tuple[float, float]
  compile_seconds: float
  train_seconds: float
  params: Any
  opt_state: Any

  def metrics(self) -> dict[str, Any]:
    info = registry.schedule_info(self.schedule)
    return {
      "schedule": self.schedule,
      "family": info.family,
      "initial_eval_loss": self.eval_loss[0],
      "final_eval_loss": self.eval_loss[1],
      "initial_eval_accuracy": self.eval_accuracy[0],
      "final_eval_accuracy": self.eval_accuracy[1],
      "compile_seconds": self.compile_seconds,
      "train_seconds": self.train_seconds,
      "steps_per_second": len(self.loss) / self.train_seconds,
      "loss": self.loss,
      "accuracy": self.accuracy,
      "lr": self.lr,
    }


class CorpusData:
  """The token stream, split by verse into training text and held-out batches.

  Every ``HELD_OUT_EVERY``-th verse is held out, so the held-out text follows
  the same word distribution as the training text, and it is masked
  ``EVAL_MASKINGS`` times (with keys fixed whatever the seed, so runs with
  different seeds are compared on the same positions).
  """

  def __init__(self, tokenizer: WordTokenizer, text: str):
    verses = [tokenizer.encode(line) for line in text.splitlines()]
    ids = np.concatenate(verses)
    self.num_tokens = len(ids)
    self.coverage = float(np.mean(ids != tokenizer.UNK_ID))
    self.entropy = unigram_entropy(ids, len(tokenizer.vocab))
    held_out = np.concatenate(verses[HELD_OUT_EVERY - 1 :: HELD_OUT_EVERY])
    self.train = jnp.asarray(
      np.concatenate(
        [
          v
          for i, v in enumerate(verses)
          if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1
        ]
      )
    )
    rows = len(held_out) // SEQ_LEN
    tokens = jnp.asarray(held_out[: rows * SEQ_LEN].reshape(rows, SEQ_LEN))
    mask = jax.jit(jax.vmap(lambda k: _mask(k, tokens, len(tokenizer.vocab))))
    self.eval_batch = tuple(
      x.reshape(-1, SEQ_LEN)
      for x in mask(jax.random.split(jax.random.PRNGKey(0), EVAL_MASKINGS))
    )


def loss_and_accuracy(model, params, inputs, targets, weights):
  """The masked-LM loss and the accuracy on the masked positions."""
  logits = model.apply({"params": params}, inputs)
  loss = tiny_bert.mlm_loss(logits, targets, weights)
  hits = (jnp.argmax(logits, axis=-1) == targets) * weights
  return loss, jnp.sum(hits) / jnp.maximum(jnp.sum(weights), 1.0)


def _step_fn(
  model, optimizer, batch_size: int, data_key, vocab_size: int
) -> Callable:
  """The jitted step ``(params, opt_state, step, text) -> (..., metrics)``.

  The training text is an argument, not a constant folded into the program.
  """

  def step_fn(params, opt_state, step, text):
    batch_key, mask_key = jax.random.split(jax.random.fold_in(data_key, step))
    starts = jax.random.randint(
      batch_key, (batch_size,), 0, text.shape[0] - SEQ_LEN
    )
    tokens = jax.vmap(lambda s: jax.lax.dynamic_slice(text, (s,), (SEQ_LEN,)))(
      starts
    )
    inputs, targets, weights = _mask(mask_key, tokens, vocab_size)
    (loss, accuracy), grads = jax.value_and_grad(
      lambda p: loss_and_accuracy(model, p, inputs, targets, weights),
      has_aux=True,
    )(params)
    # The rate this update applies, read before the count moves on.
    lr = alias.get_lr(opt_state)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (
      optax.apply_updates(params, updates),
      opt_state,
      {"loss": loss, "accuracy": accuracy, "lr": lr},
    )

  return jax.jit(step_fn, donate_argnums=(0, 1))


def make_optimizer(schedule: optax.Schedule) -> optax.GradientTransformation:
  """The demo's optimizer: :func:`~bertadam_optax.bertadam` under ``schedule``.

  BERT's defaults (per-tensor clipping at 1, weight decay 0.01 except on
  biases and LayerNorm parameters, no bias correction) except ``b2``.

  Args:
    schedule: the learning rate.

  Returns:
    The optimizer.
  """
  # BertAdam has no bias correction, so its second moment starts near 0 and,
  # with BERT's b2 = 0.999, takes thousands of steps to catch up: the updates
  # of a few-hundred-step run are several times too large and the model
  # stalls at the unigram distribution. RoBERTa's b2 = 0.98 catches up in
  # about a hundred steps.
  return alias.bertadam(
    schedule,
    schedule=None,
    b2=DEMO_B2,
    weight_decay_mask=masks.bert_weight_decay_mask(),
  )


def train(
  schedule_name: str,
  schedule: optax.Schedule,
  *,
  steps: int,
  batch_size: int,
  seed: int,
  model_config: tiny_bert.TinyBertConfig,
  tokenizer: WordTokenizer,
  data: CorpusData,
  progress: bool = True,
) -> RunResult:
  """Trains the tiny BERT with ``bertadam`` under ``schedule`` for ``steps``.

  Args:
    schedule_name: the registry name (for the progress bar and the result).
    schedule: the learning rate as an Optax schedule.
    steps: number of updates.
    batch_size: sequences per update.
    seed: seed of the initialization and of every batch and mask.
    model_config: the model's size.
    tokenizer: the corpus tokenizer.
    data: the tokenized corpus.
    progress: show a tqdm progress bar on stderr.

  Returns:
    The run's metrics and final parameters and optimizer state.
  """
  start = time.perf_counter()
  model = tiny_bert.TinyBertMLM(model_config)
  init_key, data_key = jax.random.split(jax.random.PRNGKey(seed))
  # One compiled call instead of one dispatch (and compilation) per op.
  params = jax.jit(model.init)(init_key, jnp.zeros((1, SEQ_LEN), jnp.int32))[
    "params"
  ]
  optimizer = make_optimizer(schedule)
  opt_state = optimizer.init(params)
  evaluate = (
    jax.jit(lambda p, batch: loss_and_accuracy(model, p, *batch))
    .lower(params, data.eval_batch)
    .compile()
  )
  step_fn = (
    _step_fn(model, optimizer, batch_size, data_key, len(tokenizer.vocab))
    .lower(params, opt_state, jnp.int32(0), data.train)
    .compile()
  )
  compile_seconds = time.perf_counter() - start

  initial = [float(x) for x in evaluate(params, data.eval_batch)]
  history = {"loss": [], "accuracy": [], "lr": []}
  bar = tqdm.tqdm(
    total=steps,
    desc=schedule_name,
    unit="step",
    disable=not progress,
    file=sys.stderr,
    dynamic_ncols=True,
    leave=True,
  )
  start = time.perf_counter()
  with bar:
    for step in range(steps):
      params, opt_state, metrics = step_fn(
        params, opt_state, jnp.int32(step), data.train
      )
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      for key, value in metrics.items():
        history[key].append(value)
      bar.set_postfix(
        loss=f"{metrics['loss']:.3f}", lr=f"{metrics['lr']:.2e}", refresh=False
      )
      bar.update()
  train_seconds = time.perf_counter() - start
  final = [float(x) for x in evaluate(params, data.eval_batch)]
  return RunResult(
    schedule_name,
    history["loss"],
    history["accuracy"],
    history["lr"],
    (initial[0], final[0]),
    (initial[1], final[1]),
    compile_seconds,
    train_seconds,
    params,
    opt_state,
  )


def _staging_dir(out: str) -> str:
  """A fresh directory beside ``out`` (its nearest existing ancestor).

  Outputs are written there and moved into ``out`` once all are complete;
  being on the same file system, the move is a rename.
  """
  parent = os.path.dirname(out)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  staging = tempfile.mkdtemp(prefix=".bertadam-demo-", dir=parent)
  # mkdtemp makes it private (0700); the output directory gets the usual
  # permissions of a new directory.
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(staging, 0o777 & ~umask)
  return staging


def _publish(staging: str, out: str) -> None:
  """Moves the finished outputs from ``staging`` into ``out``."""
  if not os.path.exists(out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    os.rename(staging, out)
    return
  for name in os.listdir(staging):
    target = os.path.join(out, name)
    if os.path.isdir(target) and not os.path.islink(target):
      shutil.rmtree(target)
    os.replace(os.path.join(staging, name), target)
  os.rmdir(staging)


def _summary(
  results: Sequence[RunResult], data: CorpusData, wall_seconds: float
) -> str:
  lines = []
  for r in results:
    (l0, l1), (a0, a1) = r.eval_loss, r.eval_accuracy
    lines += [
      f"{r.schedule}:",
      f"  held-out masked-LM loss  {l0:.3f} -> {l1:.3f} nats "
      f"(unigram entropy {data.entropy:.3f})",
      f"  masked-token accuracy    {a0:.1%} -> {a1:.1%}",
      f"  last-step training loss  {r.loss[-1]:.3f}, lr {r.lr[-1]:.3g}",
      f"  compile {r.compile_seconds:.1f} s, train {r.train_seconds:.1f} s "
      f"({len(r.loss) / r.train_seconds:.1f} steps/s)",
    ]
  lines.append(f"wall time {wall_seconds:.1f} s")
  return "\n".join(lines)


def run(args: Any, names: Sequence[str], options: Mapping[str, Any]) -> int:
  """The ``demo`` command: trains with each schedule, then writes the outputs.

  Args:
    args: the parsed command line (``steps``, ``batch_size``, ``seed``,
      ``model``, ``out``, ``no_progress``).
    names: the schedules to train with, the first being ``--schedule``.
    options: the keyword arguments of ``registry.make_schedule``.

  Returns:
    The exit status.
  """
  start = time.perf_counter()
  out = os.path.abspath(args.out)
  staging = _staging_dir(out)
  try:
    text = load_corpus()
    tokenizer = WordTokenizer.from_text(text)
    data = CorpusData(tokenizer, text)
    config = MODEL_PRESETS[args.model]
    shapes = jax.eval_shape(
      tiny_bert.TinyBertMLM(config).init,
      jax.random.PRNGKey(0),
      jnp.zeros((1, SEQ_LEN), jnp.int32),
    )
    num_params = sum(x.size for x in jax.tree.leaves(shapes))
    layers = f"{config.num_layers} layer" + (
      "s" if config.num_layers > 1 else ""
    )
    print(
      f"bertadam demo: {args.model} BERT ({layers}, "
      f"hidden {config.hidden_size}, {num_params:,} parameters), "
      f"{args.steps} steps of "
      f"{args.batch_size} x {SEQ_LEN} tokens; corpus {data.num_tokens:,} "
      f"tokens, vocabulary {len(tokenizer.vocab):,} "
      f"({data.coverage:.1%} coverage)",
      flush=True,
    )
    results = []
    for name in names:
      schedule = registry.make_schedule(name, **options)
      results.append(
        train(
          name,
          schedule,
          steps=args.steps,
          batch_size=args.batch_size,
          seed=args.seed,
          model_config=config,
          tokenizer=tokenizer,
          data=data,
          progress=not args.no_progress,
        )
      )

    for r in results:
      directory = os.path.join(staging, "checkpoint")
      if len(results) > 1:
        directory = os.path.join(directory, r.schedule)
      checkpoint.save_checkpoint(directory, args.steps, r.params, r.opt_state)
    plots.plot_training(
      [r.metrics() for r in results],
      data.entropy,
      os.path.join(staging, "curves.png"),
    )
    wall_seconds = time.perf_counter() - start
    report = {
      "command": "demo",
      "config": {
        "schedules": list(names),
        "schedule_options": dict(options),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seq_len": SEQ_LEN,
        "seed": args.seed,
        "model": args.model,
        "model_config": dataclasses.asdict(config),
        "num_params": num_params,
      },
      "corpus": {
        "file": CORPUS_FILE,
        "tokens": data.num_tokens,
        "vocab_size": len(tokenizer.vocab),
        "coverage": data.coverage,
        "unigram_entropy": data.entropy,
        "held_out_every": HELD_OUT_EVERY,
      },
      "wall_seconds": wall_seconds,
      "runs": [r.metrics() for r in results],
    }
    with open(
      os.path.join(staging, "metrics.json"), "w", encoding="utf-8"
    ) as f:
      json.dump(report, f, indent=1)
    _publish(staging, out)
  finally:
    if os.path.exists(staging):
      shutil.rmtree(staging)
  print(_summary(results, data, wall_seconds))
  shown = (
    os.path.relpath(out) if not os.path.relpath(out).startswith("..") else out
  )
  print(f"wrote {shown}/: curves.png, metrics.json, checkpoint/")
  return 0
