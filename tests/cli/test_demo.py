"""Tests of bertadam_optax/cli/demo.py and of the ``demo`` command.

The demo runs as a subprocess, as a user runs it, with the small ``micro``
model and few steps, except the test that the loss really falls, which
trains the default ``tiny`` model long enough to beat the corpus's unigram
entropy.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.references import require

require("flax")
require("tqdm")
require("matplotlib")
require("orbax.checkpoint")

from bertadam_optax import checkpoint  # pylint: disable=wrong-import-position
from bertadam_optax.cli import demo  # pylint: disable=wrong-import-position

DATA_DIR = os.path.join(os.path.dirname(demo.__file__), "data")


def run_demo(out, *args):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "bertadam_optax",
      "demo",
      "--out",
      str(out),
      "--no-progress",
      *args,
    ],
    capture_output=True,
    text=True,
    timeout=600,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  with open(os.path.join(out, "metrics.json"), encoding="utf-8") as f:
    return result, json.load(f)


MICRO = (
  "--model",
  "micro",
  "--steps",
  "20",
  "--batch-size",
  "8",
  "--seed",
  "3",
  "--warmup",
  "0.25",
)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("micro") / "demo-out"
  return out, *run_demo(out, *MICRO)


def test_corpus_is_the_file_the_readme_describes():
  with open(os.path.join(DATA_DIR, "README.md"), encoding="utf-8") as f:
    readme = f.read()
  digest = re.search(r"SHA-256 of the file:\s*`([0-9a-f]{64})`", readme)
  with open(os.path.join(DATA_DIR, demo.CORPUS_FILE), "rb") as f:
    raw = f.read()
  assert hashlib.sha256(raw).hexdigest() == digest.group(1)
  text = demo.load_corpus()
  assert text == raw.decode("ascii")
  lines = text.splitlines()
  assert len(lines) == 2746  # The verses of Genesis (1533) and Exodus (1213).
  assert lines[0] == ("In the beginning God created the heaven and the earth.")
  assert 200_000 < len(raw) < 1_000_000


def test_tokenizer():
  text = "The LORD said, Let there be light: and there was light. Zebulun's"
  tokenizer = demo.WordTokenizer.from_text(text, vocab_size=8)
  # Specials first, then by decreasing count, ties alphabetical.
  assert tokenizer.vocab == (
    "[MASK]",
    "[UNK]",
    "light",
    "there",
    ",",
    ".",
    ":",
    "and",
  )
  ids = tokenizer.encode("there was LIGHT, and there")
  assert ids.dtype == np.int32
  assert tokenizer.decode(ids) == "there [UNK] light , and there"
  corpus = demo.WordTokenizer.from_text(demo.load_corpus())
  assert len(corpus.vocab) == demo.VOCAB_SIZE
  assert corpus.vocab[2:5] == (",", "and", "the")


def _unigram_entropy():
  """The corpus's unigram entropy in nats, over the demo's tokens."""
  text = demo.load_corpus()
  tokenizer = demo.WordTokenizer.from_text(text)
  counts = collections.Counter(tokenizer.encode(text).tolist())
  total = sum(counts.values())
  return -sum(c / total * math.log(c / total) for c in counts.values())


def test_micro_run_outputs(micro_run):
  out, result, metrics = micro_run
  assert sorted(os.listdir(out)) == ["checkpoint", "curves.png", "metrics.json"]
  with open(out / "curves.png", "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  # Nothing left beside the output directory.
  assert os.listdir(out.parent) == [out.name]
  (run,) = metrics["runs"]
  assert run["schedule"] == "warmup_linear"
  for key in ("loss", "accuracy", "lr"):
    assert len(run[key]) == 20
  assert metrics["corpus"]["unigram_entropy"] == pytest.approx(
    _unigram_entropy(), rel=1e-9
  )
  assert "held-out masked-LM loss" in result.stdout
  assert "wall time" in result.stdout


def test_micro_run_applies_the_schedule(micro_run):
  _, _, metrics = micro_run
  # DeepSpeed bing_bert warmup_linear in float64, at every step the
  # optimizer took: lr * (x / w if x < w else 1 - x), x = step / 20.
  x = np.arange(20) / 20
  expected = 5e-3 * np.where(x < 0.25, x / 0.25, 1 - x)
  np.testing.assert_allclose(
    metrics["runs"][0]["lr"], expected, rtol=1e-5, atol=1e-12
  )


def test_micro_run_checkpoint_holds_final_state(micro_run):
  out, _, metrics = micro_run
  config = demo.MODEL_PRESETS["micro"]
  model = demo.tiny_bert.TinyBertMLM(config)
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  params_like = model.init(
    jax.random.PRNGKey(0), jnp.zeros((1, demo.SEQ_LEN), jnp.int32)
  )["params"]
  optimizer = demo.make_optimizer(lambda count: 0.0)
  params, opt_state = checkpoint.restore_checkpoint(
    out / "checkpoint", None, params_like, optimizer.init(params_like)
  )
  text = demo.load_corpus()
  data = demo.CorpusData(demo.WordTokenizer.from_text(text), text)
  loss, accuracy = demo.loss_and_accuracy(model, params, *data.eval_batch)
  run = metrics["runs"][0]
  assert float(loss) == pytest.approx(run["final_eval_loss"], rel=1e-6)
  assert float(accuracy) == pytest.approx(run["final_eval_accuracy"], rel=1e-6)
  counts = [
    int(leaf)
    for path, leaf in jax.tree_util.tree_flatten_with_path(opt_state)[0]
    if getattr(path[-1], "name", None) == "count"
  ]
  assert counts and set(counts) == {20}


def test_compare_and_same_seed_same_numbers(micro_run, tmp_path):
  _, _, first = micro_run
  out = tmp_path / "compare"
  _, metrics = run_demo(out, *MICRO, "--compare", "transformers.cosine")
  names = [run["schedule"] for run in metrics["runs"]]
  assert names == ["warmup_linear", "transformers.cosine"]
  assert sorted(os.listdir(out / "checkpoint")) == sorted(names)
  # Another process, the same seed: the same numbers.
  for key in (
    "loss",
    "accuracy",
    "lr",
    "initial_eval_loss",
    "final_eval_loss",
    "final_eval_accuracy",
  ):
    assert metrics["runs"][0][key] == first["runs"][0][key]
  # The same initialization and batches for every schedule: the same loss
  # while the learning rate is still 0 (step 0), different ones after.
  cosine = metrics["runs"][1]
  # (Equal up to rounding: the two steps compile into different programs.)
  assert cosine["initial_eval_loss"] == pytest.approx(
    first["runs"][0]["initial_eval_loss"], rel=1e-6
  )
  assert cosine["loss"][0] == pytest.approx(
    first["runs"][0]["loss"][0], rel=1e-6
  )
  assert cosine["lr"] != first["runs"][0]["lr"]
  assert cosine["loss"][-1] != first["runs"][0]["loss"][-1]


def test_other_seed_other_numbers(micro_run):
  _, _, first = micro_run
  text = demo.load_corpus()
  tokenizer = demo.WordTokenizer.from_text(text)
  result = demo.train(
    "warmup_linear",
    lambda count: 0.0,
    steps=1,
    batch_size=8,
    seed=4,
    model_config=demo.MODEL_PRESETS["micro"],
    tokenizer=tokenizer,
    data=demo.CorpusData(tokenizer, text),
    progress=False,
  )
  # Seed 3's first loss is that of another initialization and batch.
  assert result.loss[0] != pytest.approx(first["runs"][0]["loss"][0], rel=1e-3)


def test_loss_really_falls(tmp_path):
  # Two thirds of the default run, with the learning rate held after warmup
  # (a decaying one is low by the time the model leaves the unigram plateau,
  # after a few hundred steps).
  _, metrics = run_demo(
    tmp_path / "tiny",
    "--steps",
    "400",
    "--schedule",
    "warmup_constant",
    "--lr",
    "3e-3",
  )
  (run,) = metrics["runs"]
  entropy = _unigram_entropy()
  # At initialization the prediction is close to uniform over the vocabulary.
  assert run["initial_eval_loss"] > math.log(demo.VOCAB_SIZE) - 0.5
  assert run["final_eval_loss"] < run["initial_eval_loss"] - 2.0
  # Below the best loss without context: the model uses the context.
  assert run["final_eval_loss"] < entropy - 0.2
  assert run["final_eval_accuracy"] > 2 * run["initial_eval_accuracy"] + 0.15
