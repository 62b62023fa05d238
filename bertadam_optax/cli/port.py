"""The ``bertadam-optax port CONFIG`` command.

Reads a DeepSpeed ``ds_config.json`` or a JSON of transformers
``TrainingArguments`` fields, prints what the optimizer does (optimizer,
hyperparameters, clipping, accumulation, the learning rate at key steps) and
the optax code that builds the same optimizer by hand, and draws the learning
rate (and beta1 where it moves) into a PNG. The config is read once, into a
:class:`~bertadam_optax.interop.specs.Plan`; what is printed is the plan's
``describe()`` and ``to_source()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import warnings
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bertadam_optax import _validation
from bertadam_optax import alias
from bertadam_optax.cli import main as cli_main
from bertadam_optax.interop import deepspeed_config
from bertadam_optax.interop import specs
from bertadam_optax.interop import training_arguments

__all__ = ["learning_rate_trace", "register"]

KINDS = ("deepspeed", "training_arguments")

_DEEPSPEED_KEYS = ("optimizer", "scheduler", "train_batch_size",
                   "train_micro_batch_size_per_gpu", "gradient_clipping",
                   "zero_optimization", "fp16", "bf16")

_EXAMPLES = f"""\
examples:
  {cli_main.PROG} port ds_config.json -o lr.png
  {cli_main.PROG} port training_args.json --kind training_arguments --steps 5000
"""


def register(subparsers: Any) -> None:
  """Adds the ``port`` command to the ``bertadam-optax`` parser."""
  port = subparsers.add_parser(
      "port", formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=_EXAMPLES,
      help="turn a ds_config.json or TrainingArguments JSON into optax",
      description="Show the optax optimizer that takes the same steps as a "
      "DeepSpeed ds_config.json or a transformers TrainingArguments JSON: "
      "its hyperparameters, its learning rate at key steps, the optax code "
      "that builds it, and a plot.")
  port.add_argument("config", metavar="CONFIG", help="the JSON file")
  port.add_argument("--kind", choices=KINDS,
                    help="what CONFIG is, when its keys do not tell")
  port.add_argument("--steps", type=_steps, default=None,
                    help="optimizer steps to show and draw (default: the "
                    "scheduler's total_num_steps or max_steps, else 1000)")
  port.add_argument("-o", "--output", default="port.png", metavar="PNG",
                    help="output file (default: %(default)s)")
  port.set_defaults(func=_cmd_port)


def _steps(text: str) -> int:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  try:
    return _validation.check_int("--steps", value, 1)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def _usage(message: str) -> cli_main.UsageError:
  return cli_main.UsageError(f"{cli_main.PROG} port: error: {message}")


def _kind(config: dict, requested: str | None) -> str:
  if requested is not None:
    return requested
  if any(key in config for key in _DEEPSPEED_KEYS):
    return "deepspeed"
  if any(key in config
         for key in training_arguments.TRAINING_ARGUMENTS_DEFAULTS):
    return "training_arguments"
  raise _usage("cannot tell whether the config is a ds_config or "
               "TrainingArguments; pass --kind")


def _default_steps(config: Mapping[str, Any], kind: str) -> int:
  """The scheduler's ``total_num_steps`` or ``max_steps``, else 1000."""
  if kind == "deepspeed":
    section = config.get("scheduler")
    params = section.get("params") if isinstance(section, Mapping) else None
    total = params.get("total_num_steps") if isinstance(params,
                                                        Mapping) else None
    if total is None:
      return 1000
    return _validation.check_int("scheduler.params.total_num_steps", total, 1)
  max_steps = config.get("max_steps")
  if max_steps is None:
    return 1000
  max_steps = _validation.check_int("max_steps", max_steps, -1)
  return max_steps if max_steps > 0 else 1000


def _plan(config: dict, kind: str, steps: int) -> specs.Plan:
  # The plan's notes carry what the warnings say; port prints them once.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if kind == "deepspeed":
      return deepspeed_config.plan_deepspeed_config(config, total_steps=steps)
    return training_arguments.plan_training_arguments(
        config, num_training_steps=steps)


def learning_rate_trace(plan: specs.Plan, steps: int) -> Callable[[], Any]:
  """A function returning the learning rate of optimizer steps ``0 .. steps``.

  The rate is read by :func:`bertadam_optax.get_lr` from the plan's optimizer
  without gradient accumulation: accumulation only repeats micro-batches
  between optimizer steps, so the trace (and its compile time) does not grow
  with ``plan.accumulation_steps``. One ``update`` is traced, inside a scan.
  """
  tx = dataclasses.replace(plan, accumulation_steps=1).build()
  metric = isinstance(plan.learning_rate, specs.MetricScheduleSpec)
  extra = {"value": jnp.float32(1.0)} if metric else {}

  def run():
    params = {"w": jnp.zeros([])}

    def step(state, _):
      lr = alias.get_lr(state)
      _, state = tx.update({"w": jnp.zeros([])}, state, params, **extra)
      return state, lr

    return jax.lax.scan(step, tx.init(params), None, length=steps + 1)[1]

  return run


def _key_points(steps: int, marker: tuple[str, int] | None):
  """(label, step) at the start, ``marker``, the quarter points and the end."""
  points = [("start", 0)]
  if marker and 0 < marker[1] < steps:
    points.append(marker)
  points += [(f"{q}/4", math.floor(q * steps / 4)) for q in (1, 2, 3)]
  points.append(("end", steps))
  return sorted(set(points), key=lambda p: p[1])


def _plot(lrs, beta1, path: str, title: str) -> str:
  # A bare Figure (no pyplot): no global figure state, no backend switch.
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel

  from bertadam_optax.cli import plots  # pylint: disable=import-outside-toplevel

  figure = Figure(figsize=(8, 4.5))
  axes = figure.subplots()
  axes.plot(np.arange(len(lrs)), lrs, label="learning rate")
  axes.set_xlabel("optimizer step")
  axes.set_ylabel("learning rate")
  axes.grid(alpha=0.3)
  if beta1 is not None:
    right = axes.twinx()
    right.plot(np.arange(len(beta1)), beta1, color="tab:orange", label="beta1")
    right.set_ylabel("beta1")
  axes.set_title(title, fontsize=9)
  figure.tight_layout()
  return plots.save_figure(figure, path)


def _cmd_port(args: argparse.Namespace) -> int:
  try:
    config = deepspeed_config.load_config(args.config)
  except ValueError as e:
    raise _usage(str(e)) from None
  kind = _kind(config, args.kind)
  directory = os.path.dirname(os.path.abspath(args.output))
  if not os.path.isdir(directory):
    raise _usage(f"argument -o/--output: directory {directory!r} does not "
                 "exist")
  try:
    steps = args.steps or _default_steps(config, kind)
    plan = _plan(config, kind, steps)
  except ValueError as e:
    raise _usage(str(e)) from None
  lrs = np.asarray(jax.jit(learning_rate_trace(plan, steps))())
  beta1_spec = getattr(plan.optimizer, "b1", None)
  beta1 = (np.asarray(jax.vmap(beta1_spec.build())(jnp.arange(steps + 1)))
           if isinstance(beta1_spec, specs.MomentumScheduleSpec) else None)
  milestone = getattr(plan.learning_rate, "milestone", lambda: None)()
  print(f"{os.path.basename(args.config)}: {kind}, {steps} optimizer steps")
  print("\n".join(plan.describe()))
  print("\nlearning rate (value the optimizer step applies):")
  for label, k in _key_points(steps, milestone):
    extra = "" if beta1 is None else f"  beta1={beta1[k]:.4f}"
    print(f"  {label:<11} step {k:>7}  lr={lrs[k]:.6e}{extra}")
  print("\noptax code:\n")
  print(plan.to_source())
  path = _plot(lrs, beta1, args.output,
               f"{os.path.basename(args.config)} ({kind})")
  print(f"\nwrote {path}")
  return 0
