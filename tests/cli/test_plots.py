"""Tests of bertadam_optax/cli/plots.py and of the ``plot`` command."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from bertadam_optax.cli import plots
from bertadam_optax.schedules import registry
from tests.references import require

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _options(**overrides):
  options = dict(
    lr=1e-3,
    t_total=200,
    warmup=0.1,
    warmup_steps=None,
    min_lr=None,
    decay_rate=None,
    decay_steps=None,
  )
  options.update(overrides)
  return options


def _bing_bert_warmup_linear(steps, lr, t_total, warmup):
  # DeepSpeed bing_bert warmup_linear in float64: x/w, then 1 - x.
  x = np.asarray(steps, dtype=np.float64) / t_total
  return lr * np.where(x < warmup, x / warmup, 1.0 - x)


def _transformers_linear(steps, lr, t_total, warmup_steps):
  # transformers' get_linear_schedule_with_warmup in float64.
  s = np.asarray(steps, dtype=np.float64)
  return lr * np.where(
    s < warmup_steps,
    s / max(1, warmup_steps),
    np.maximum(0.0, (t_total - s) / max(1, t_total - warmup_steps)),
  )


def test_plot_command_writes_png(tmp_path):
  require("matplotlib")
  out = tmp_path / "new" / "dir" / "schedules.png"
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "bertadam_optax",
      "plot",
      "warmup_linear",
      "pretrained_bert.warmup_linear",
      "transformers.cosine",
      "--warmup",
      "0.2",
      "--t-total",
      "500",
      "-o",
      str(out),
    ],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == f"wrote {out}"
  assert out.read_bytes()[:8] == PNG_MAGIC
  assert os.listdir(out.parent) == ["schedules.png"]


def test_schedule_figure_curves_and_warmup_marks():
  plt = require("matplotlib.pyplot")
  options = _options(warmup=0.1)
  schedules = [
    (name, registry.make_schedule(name, **options))
    for name in (
      "warmup_linear",
      "transformers.linear",
      "transformers.constant",
    )
  ]
  figure = plots.schedule_figure(schedules, options)
  try:
    axes = figure.axes[0]
    curves = {
      line.get_label(): line
      for line in axes.get_lines()
      if not line.get_label().startswith("warmup end")
    }
    steps = np.arange(201)
    np.testing.assert_array_equal(curves["warmup_linear"].get_xdata(), steps)
    np.testing.assert_allclose(
      curves["warmup_linear"].get_ydata(),
      _bing_bert_warmup_linear(steps, 1e-3, 200, 0.1),
      rtol=1e-5,
      atol=1e-11,
    )
    np.testing.assert_allclose(
      curves["transformers.linear"].get_ydata(),
      _transformers_linear(steps, 1e-3, 200, 20),
      rtol=1e-5,
      atol=1e-11,
    )
    marks = {
      line.get_label(): line.get_xdata()[0]
      for line in axes.get_lines()
      if line.get_label().startswith("warmup end")
    }
    # Both warmups end at step 20, the first step with s / 200 >= 0.1.
    assert marks == {"warmup end (step 20)": 20}
    assert axes.get_xlabel() == "step"
    assert axes.get_ylabel() == "learning rate"
  finally:
    plt.close(figure)


def test_schedule_figure_without_warmup_has_no_mark():
  plt = require("matplotlib.pyplot")
  options = _options()
  figure = plots.schedule_figure(
    [
      (
        "transformers.constant",
        registry.make_schedule("transformers.constant", **options),
      )
    ],
    options,
  )
  try:
    labels = [line.get_label() for line in figure.axes[0].get_lines()]
  finally:
    plt.close(figure)
  assert labels == ["transformers.constant"]


def test_schedule_values_match_formula():
  schedule = registry.make_schedule(
    "transformers.linear", **_options(warmup=None, warmup_steps=7)
  )
  np.testing.assert_allclose(
    plots.schedule_values(schedule, 200),
    _transformers_linear(np.arange(201), 1e-3, 200, 7),
    rtol=1e-5,
    atol=1e-11,
  )


@pytest.mark.parametrize(
  "options,expected",
  [
    (
      _options(warmup=0.1),
      [
        ("start", 0),
        ("last warmup step", 19),
        ("warmup end", 20),
        ("25%", 50),
        ("50%", 100),
        ("75%", 150),
        ("last step", 199),
        ("t_total", 200),
      ],
    ),
    (
      _options(warmup=None, warmup_steps=50),
      [
        ("start", 0),
        ("last warmup step", 49),
        ("warmup end", 50),
        ("50%", 100),
        ("75%", 150),
        ("last step", 199),
        ("t_total", 200),
      ],
    ),
    (
      _options(warmup=0.0),
      [
        ("start", 0),
        ("25%", 50),
        ("50%", 100),
        ("75%", 150),
        ("last step", 199),
        ("t_total", 200),
      ],
    ),
    (
      _options(t_total=3, warmup=0.5),
      [
        ("start", 0),
        ("last warmup step", 1),
        ("warmup end", 2),
        ("t_total", 3),
      ],
    ),
  ],
)
def test_key_points(options, expected):
  assert plots.key_points("warmup_linear", options) == expected


def test_save_figure_leaves_nothing_on_failure(tmp_path):
  plt = require("matplotlib.pyplot")
  target = tmp_path / "out.png"
  target.write_bytes(b"old")
  figure = plt.figure()

  def fail(*args, **kwargs):
    del args, kwargs
    raise RuntimeError("disk full")

  figure.savefig = fail
  try:
    with pytest.raises(RuntimeError):
      plots.save_figure(figure, target)
  finally:
    plt.close(figure)
  assert os.listdir(tmp_path) == ["out.png"]
  assert target.read_bytes() == b"old"


def test_training_figure():
  plt = require("matplotlib.pyplot")
  rng = np.random.default_rng(0)
  loss = list(7.0 - np.linspace(0, 2, 40) + rng.normal(0, 0.1, 40))
  lr = list(np.linspace(0, 1e-3, 40))
  run = {
    "schedule": "warmup_linear",
    "loss": loss,
    "lr": lr,
    "initial_eval_loss": 7.1,
    "final_eval_loss": 5.2,
  }
  figure = plots.training_figure([run], baseline=5.5)
  try:
    loss_ax, lr_ax = figure.axes
    lines = {line.get_label(): line for line in loss_ax.get_lines()}
    smoothed = lines["warmup_linear (train, smoothed)"].get_ydata()
    # Trailing mean over the last len(loss) // 20 = 2 steps.
    expected = [np.mean(loss[max(0, i - 1) : i + 1]) for i in range(40)]
    np.testing.assert_allclose(smoothed, expected, rtol=1e-12)
    held_out = lines["warmup_linear (held out)"]
    np.testing.assert_array_equal(held_out.get_xdata(), [0, 40])
    np.testing.assert_array_equal(held_out.get_ydata(), [7.1, 5.2])
    assert lines["unigram entropy 5.50"].get_ydata()[0] == 5.5
    np.testing.assert_array_equal(lr_ax.get_lines()[0].get_ydata(), lr)
  finally:
    plt.close(figure)


@pytest.mark.parametrize(
  "t_total,boundaries",
  [
    (1999, [200]),
    (2000, [200]),
    (10**6 + 7, [100001]),
    (2**31 - 1, [214748365]),
    (2**31 - 1, []),
    (5000, [1]),
    (5000, [4999]),
  ],
)
def test_plot_steps_are_bounded_and_keep_the_edges(t_total, boundaries):
  steps = plots.plot_steps(t_total, boundaries)
  if t_total + 1 <= plots.MAX_PLOT_POINTS:
    np.testing.assert_array_equal(steps, np.arange(t_total + 1))
    return
  assert len(steps) <= plots.MAX_PLOT_POINTS
  assert len(steps) >= plots.MAX_PLOT_POINTS - 10
  assert np.all(np.diff(steps) > 0)
  assert steps[0] == 0 and steps[-1] == t_total
  assert t_total - 1 in steps
  for b in boundaries:
    assert b - 1 in steps and b in steps
  # Evenly spread: no gap much wider than t_total / MAX_PLOT_POINTS.
  assert np.max(np.diff(steps)) <= 2 * t_total / plots.MAX_PLOT_POINTS


def test_schedule_figure_of_a_long_run_evaluates_a_bounded_number_of_steps():
  plt = require("matplotlib.pyplot")
  total = 10**6 + 7
  options = _options(t_total=total, warmup=None, warmup_steps=123457)
  schedules = [
    (name, registry.make_schedule(name, **options))
    for name in ("transformers.linear", "warmup_linear")
  ]
  figure = plots.schedule_figure(schedules, options)
  try:
    curves = {
      line.get_label(): line
      for line in figure.axes[0].get_lines()
      if not line.get_label().startswith("warmup end")
    }
  finally:
    plt.close(figure)
  steps = np.asarray(curves["transformers.linear"].get_xdata())
  assert len(steps) <= plots.MAX_PLOT_POINTS
  for step in (0, 123456, 123457, total - 1, total):
    assert step in steps
  np.testing.assert_allclose(
    curves["transformers.linear"].get_ydata(),
    _transformers_linear(steps, 1e-3, total, 123457),
    rtol=1e-4,
    atol=1e-9,
  )
  np.testing.assert_array_equal(curves["warmup_linear"].get_xdata(), steps)


def test_schedule_table_evaluates_only_its_rows(monkeypatch):
  seen = []
  evaluate = plots.schedule_values_at

  def counting(schedule, steps):
    seen.append(list(steps))
    return evaluate(schedule, steps)

  monkeypatch.setattr(plots, "schedule_values_at", counting)
  options = _options(t_total=2**31 - 1)
  text = plots.schedule_table(
    "transformers.constant",
    registry.make_schedule("transformers.constant", **options),
    options,
  )
  assert seen == [[0, 536870911, 1073741823, 1610612735, 2**31 - 2, 2**31 - 1]]
  assert "2147483647" in text
