"""What ``plot``, ``show`` and ``demo`` draw and print.

:func:`schedule_table` (the ``show`` table) needs only jax; the figures need
matplotlib (the ``cli`` extra), imported when one is drawn, with the Agg
backend so that nothing ever opens a window. Every file is written to a
temporary name beside its destination and moved into place once complete.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bertadam_optax.cli import schedule_options
from bertadam_optax.schedules import registry

__all__ = [
  "MAX_PLOT_POINTS",
  "key_points",
  "plot_schedules",
  "plot_steps",
  "plot_training",
  "save_figure",
  "schedule_figure",
  "schedule_table",
  "schedule_values",
  "schedule_values_at",
  "training_figure",
]

MAX_PLOT_POINTS = 2000
"""The most steps a schedule figure evaluates, whatever ``t_total`` is."""


def schedule_values(schedule: Callable, num_steps: int) -> np.ndarray:
  """``schedule(s)`` for ``s = 0 .. num_steps``, one jitted, vmapped call.

  Its cost grows with ``num_steps``; the commands call
  :func:`schedule_values_at` with the steps they show instead.
  """
  return schedule_values_at(schedule, np.arange(num_steps + 1))


def schedule_values_at(schedule: Callable, steps: Sequence[int]) -> np.ndarray:
  """``schedule(s)`` for each ``s`` of ``steps`` (int32), one vmapped call."""
  steps = jnp.asarray(np.asarray(steps, dtype=np.int64), dtype=jnp.int32)
  return np.asarray(jax.jit(jax.vmap(schedule))(steps), dtype=np.float64)


def plot_steps(
  t_total: int,
  boundaries: Sequence[int] = (),
  max_points: int = MAX_PLOT_POINTS,
) -> np.ndarray:
  """The steps a figure over ``0 .. t_total`` evaluates, sorted, unique.

  Every step while ``t_total < max_points``; beyond, ``max_points`` of them:
  evenly spaced, plus the ends, the last step and each warmup boundary with
  the step before it, so that a sharp corner is drawn where it is and the
  cost does not grow with ``t_total``.
  """
  if t_total + 1 <= max_points:
    return np.arange(t_total + 1)
  marks = {0, t_total - 1, t_total}
  for b in boundaries:
    marks.update(s for s in (b - 1, b) if 0 <= s <= t_total)
  even = np.linspace(0, t_total, max_points - len(marks)).round()
  return np.union1d(even.astype(np.int64), np.fromiter(marks, np.int64))


def _boundary(name: str, options: Mapping[str, Any]) -> int | None:
  return registry.warmup_boundary(
    name,
    t_total=options.get("t_total"),
    warmup=options.get("warmup"),
    warmup_steps=options.get("warmup_steps"),
  )


def key_points(name: str, options: Mapping[str, Any]) -> list[tuple[str, int]]:
  """The labelled steps of the ``show`` table, in order, without repeats.

  The start, the last warmup step and the warmup boundary (the first step
  after warmup), the quarter points of ``t_total``, its last step and
  ``t_total`` itself.
  """
  total = options["t_total"]
  points = [("start", 0)]
  boundary = _boundary(name, options)
  if boundary:
    points += [("last warmup step", boundary - 1), ("warmup end", boundary)]
  points += [
    ("25%", total // 4),
    ("50%", total // 2),
    ("75%", (3 * total) // 4),
    ("last step", total - 1),
    ("t_total", total),
  ]
  seen, unique = set(), []
  for label, step in sorted(points, key=lambda p: p[1]):
    if step not in seen:
      seen.add(step)
      unique.append((label, step))
  return unique


def _describe(options: Mapping[str, Any]) -> str:
  parts = [f"lr={options['lr']:g}", f"t_total={options['t_total']}"]
  if options.get("warmup_steps") is not None:
    parts.append(f"warmup_steps={options['warmup_steps']}")
  elif options.get("warmup") is not None:
    parts.append(f"warmup={options['warmup']:g}")
  for key in ("min_lr", "decay_rate", "decay_steps"):
    if options.get(key) is not None:
      parts.append(f"{key}={options[key]:g}")
  parts += [
    f"{k}={v!r}"
    for k, v in options.items()
    if k not in schedule_options.OPTION_NAMES
  ]
  return "  ".join(parts)


def schedule_table(
  name: str, schedule: Callable, options: Mapping[str, Any]
) -> str:
  """The ``show`` text: the formula, then the rate at :func:`key_points`.

  Args:
    name: the registry name.
    schedule: its schedule, built from ``options``.
    options: the keyword arguments of :func:`registry.make_schedule`.

  Returns:
    Lines of text, ending without a newline.
  """
  info = registry.schedule_info(name)
  points = key_points(name, options)
  # Only the printed steps: t_total may be 2**31 - 1.
  values = schedule_values_at(schedule, [step for _, step in points])
  peak = options["lr"]
  label_w = max(len(label) for label, _ in points)
  step_w = max(4, len(str(options["t_total"])))
  lines = [
    f"{name}  ({info.family}: {info.source})",
    f"  {info.formula}",
    f"  {_describe(options)}",
    "",
    f"  {'point':<{label_w}}  {'step':>{step_w}}  {'lr':>11}  {'lr/peak':>8}",
  ]
  for (label, step), value in zip(points, values):
    ratio = f"{value / peak:8.4f}" if peak > 0 else f"{'-':>8}"
    lines.append(
      f"  {label:<{label_w}}  {step:>{step_w}}  {value:11.4e}  {ratio}"
    )
  return "\n".join(lines)


def _pyplot():
  import matplotlib  # pylint: disable=import-outside-toplevel

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  return plt


def save_figure(figure: Any, path: str | os.PathLike) -> str:
  """Saves ``figure`` as a PNG at ``path`` atomically; returns the path.

  The image is written to a temporary file in the destination's directory
  and renamed over ``path``, so an interrupted run leaves no partial PNG.
  """
  from bertadam_optax.cli import main  # pylint: disable=import-outside-toplevel

  path = os.path.abspath(path)
  with main.atomic_output(path, "wb") as f:
    figure.savefig(f, format="png", dpi=110)
  return path


def schedule_figure(
  schedules: Sequence[tuple[str, Callable]], options: Mapping[str, Any]
) -> Any:
  """The ``plot`` figure: each schedule over ``0 .. t_total``.

  At most :data:`MAX_PLOT_POINTS` steps are evaluated (:func:`plot_steps`).
  The warmup boundary (:func:`registry.warmup_boundary`) is a dashed grey
  vertical line.

  Args:
    schedules: ``(registry name, schedule)`` pairs.
    options: the options they were built with.

  Returns:
    A matplotlib figure (close it with ``matplotlib.pyplot.close``).
  """
  plt = _pyplot()
  # The boundary depends on the options only, so it is one step for all the
  # schedules that have a warmup.
  boundary = next(
    (b for b in (_boundary(name, options) for name, _ in schedules) if b), None
  )
  steps = plot_steps(options["t_total"], [boundary] if boundary else [])
  figure, axes = plt.subplots(figsize=(8, 4.5))
  for name, schedule in schedules:
    axes.plot(steps, schedule_values_at(schedule, steps), label=name)
  if boundary:
    axes.axvline(
      boundary,
      color="gray",
      linestyle="--",
      linewidth=1,
      label=f"warmup end (step {boundary})",
    )
  axes.set_xlabel("step")
  axes.set_ylabel("learning rate")
  axes.set_title(_describe(options), fontsize=9)
  axes.grid(alpha=0.3)
  axes.legend(fontsize=8)
  figure.tight_layout()
  return figure


def plot_schedules(
  schedules: Sequence[tuple[str, Callable]],
  options: Mapping[str, Any],
  path: str | os.PathLike,
) -> str:
  """Draws :func:`schedule_figure` into the PNG ``path``; returns its path.

  Missing directories of ``path`` are created.
  """
  figure = schedule_figure(schedules, options)
  try:
    return save_figure(figure, path)
  finally:
    _pyplot().close(figure)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
  """A trailing moving average (shorter at the start), as loss curves show."""
  cumulative = np.cumsum(np.insert(values, 0, 0.0))
  counts = np.minimum(np.arange(1, len(values) + 1), window)
  ends = np.arange(1, len(values) + 1)
  return (cumulative[ends] - cumulative[ends - counts]) / counts


def training_figure(runs: Sequence[Mapping[str, Any]], baseline: float) -> Any:
  """The demo figure: training loss and learning rate against the step.

  Args:
    runs: one mapping per schedule with ``schedule`` (its name), the
      per-step lists ``loss`` and ``lr``, and ``initial_eval_loss`` and
      ``final_eval_loss`` (the held-out loss before the first step and after
      the last).
    baseline: the unigram entropy of the corpus, drawn as a horizontal line.

  Returns:
    A matplotlib figure (close it with ``matplotlib.pyplot.close``).
  """
  plt = _pyplot()
  figure, (loss_ax, lr_ax) = plt.subplots(
    2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
  )
  for run in runs:
    loss = np.asarray(run["loss"], dtype=np.float64)
    steps = np.arange(len(loss))
    window = max(1, len(loss) // 20)
    (line,) = loss_ax.plot(
      steps, _smooth(loss, window), label=f"{run['schedule']} (train, smoothed)"
    )
    loss_ax.plot(steps, loss, color=line.get_color(), alpha=0.25, linewidth=0.8)
    loss_ax.plot(
      [0, len(loss)],
      [run["initial_eval_loss"], run["final_eval_loss"]],
      "o",
      color=line.get_color(),
      label=f"{run['schedule']} (held out)",
    )
    lr_ax.plot(steps, run["lr"], color=line.get_color(), label=run["schedule"])
  loss_ax.axhline(
    baseline,
    color="gray",
    linestyle=":",
    label=f"unigram entropy {baseline:.2f}",
  )
  loss_ax.set_ylabel("masked-LM loss (nats)")
  loss_ax.set_title(
    "bertadam on a tiny BERT: masked-LM pretraining", fontsize=10
  )
  loss_ax.grid(alpha=0.3)
  loss_ax.legend(fontsize=8)
  lr_ax.set_xlabel("step")
  lr_ax.set_ylabel("learning rate")
  lr_ax.grid(alpha=0.3)
  figure.tight_layout()
  return figure


def plot_training(
  runs: Sequence[Mapping[str, Any]], baseline: float, path: str | os.PathLike
) -> str:
  """Draws :func:`training_figure` into the PNG ``path``; returns its path."""
  figure = training_figure(runs, baseline)
  try:
    return save_figure(figure, path)
  finally:
    _pyplot().close(figure)
