"""The ``bertadam-optax port CONFIG`` command.

Reads a DeepSpeed ``ds_config.json``, a JSON of transformers
``TrainingArguments`` fields (with or without ``deepspeed``), a bing_bert
``--cf`` file with its ds_config, or a bash launch script, tells which from
the contents (:func:`bertadam_optax.interop.detect_run_kind`) and says how it
decided, prints what the optimizer does (optimizer, hyperparameters,
clipping, accumulation, the learning rate at key steps) and the optax code
that builds the same optimizer by hand, and draws the learning rate (and
beta1 where it moves) into a PNG. The files are read once, into a plan;
what is printed is the plan's ``describe()`` and ``to_source()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import warnings
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bertadam_optax import _validation
from bertadam_optax import alias
from bertadam_optax.cli import main as cli_main
from bertadam_optax.interop import bing_bert
from bertadam_optax.interop import deepspeed_config
from bertadam_optax.interop import detect
from bertadam_optax.interop import launch_script
from bertadam_optax.interop import specs
from bertadam_optax.interop import training_arguments

__all__ = ["learning_rate_trace", "register"]

KINDS = detect.RUN_KINDS

_EXAMPLES = f"""\
examples:
  {cli_main.PROG} port ds_config.json -o lr.png
  {cli_main.PROG} port training_args.json --steps 5000
  {cli_main.PROG} port ds_train_bert_bsz64k_seq128.sh
  {cli_main.PROG} port bert_large_lamb.json deepspeed_config.json \\
      --max-seq-length 128 --lr-schedule EE --lr-offset 1e-3
  {cli_main.PROG} port ds_config.json --data-parallel-size 16
"""


def register(subparsers: Any) -> None:
  """Adds the ``port`` command to the ``bertadam-optax`` parser."""
  port = subparsers.add_parser(
    "port",
    formatter_class=argparse.RawDescriptionHelpFormatter,
    epilog=_EXAMPLES,
    help="turn a ds_config.json or TrainingArguments JSON into optax",
    description="Show the optax optimizer that takes the same steps as a "
    "DeepSpeed ds_config.json or a transformers TrainingArguments JSON: "
    "its hyperparameters, its learning rate at key steps, the optax code "
    "that builds it, and a plot.",
  )
  port.add_argument(
    "config",
    metavar="FILE",
    nargs="+",
    help="a ds_config or TrainingArguments JSON, a launch "
    "script, or a bing_bert --cf JSON and its ds_config",
  )
  port.add_argument(
    "--kind", choices=KINDS, help="what FILE is, when its contents do not tell"
  )
  port.add_argument(
    "--data-parallel-size",
    type=_positive,
    default=None,
    metavar="N",
    help="data-parallel processes of the run (default: the "
    "launch script's, else 1)",
  )
  port.add_argument(
    "--steps",
    type=_steps,
    default=None,
    help="optimizer steps to show and draw (default: the "
    "run's total steps, else 1000)",
  )
  bing = port.add_argument_group("bing_bert (a --cf file and its ds_config)")
  bing.add_argument(
    "--max-seq-length",
    type=_positive,
    default=512,
    help="--max_seq_length of deepspeed_train.py (default: %(default)s)",
  )
  bing.add_argument(
    "--lr-schedule",
    default="LE",
    help="--lr_schedule: EE, EP or LE (default: %(default)s)",
  )
  bing.add_argument(
    "--lr-offset",
    type=float,
    default=0.0,
    help="--lr_offset (default: %(default)s)",
  )
  bing.add_argument(
    "--deepspeed-transformer-kernel",
    action="store_true",
    help="--deepspeed_transformer_kernel",
  )
  port.add_argument(
    "--resume-step",
    type=_positive,
    default=None,
    metavar="K",
    help="the global step a --rewarmup resume restored",
  )
  port.add_argument(
    "-o",
    "--output",
    default="port.png",
    metavar="PNG",
    help="output file (default: %(default)s)",
  )
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


def _positive(text: str) -> int:
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  try:
    return _validation.check_int("value", value, 1)
  except ValueError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def _usage(message: str) -> cli_main.UsageError:
  return cli_main.UsageError(f"{cli_main.PROG} port: error: {message}")


def _kind(paths: list[str], requested: str | None) -> detect.RunKind:
  if requested is None:
    return detect.detect_run_kind(paths)
  if requested == "bing_bert":
    found = detect.detect_run_kind(paths)
    if found.kind != "bing_bert":
      raise ValueError(
        f"--kind bing_bert: {found.reason}; expected a --cf "
        "file and its ds_config."
      )
    return found
  if len(paths) != 1:
    raise ValueError(f"--kind {requested} takes one file, not {len(paths)}.")
  return detect.RunKind(requested, tuple(paths), "--kind given")


def _default_steps(plan: Any, kind: str, config: Mapping[str, Any]) -> int:
  """The run's total optimizer steps where the files say, else 1000."""
  if isinstance(plan, bing_bert.BingBertPlan):
    total = plan.training.get("total_training_steps", 1000)
    return _validation.check_int("total_training_steps", total, 1)
  if getattr(plan, "train_iters", None):
    return plan.train_iters
  if kind == "deepspeed":
    section = config.get("scheduler")
    params = section.get("params") if isinstance(section, Mapping) else None
    total = (
      params.get("total_num_steps") if isinstance(params, Mapping) else None
    )
    if total is None:
      return 1000
    return _validation.check_int("scheduler.params.total_num_steps", total, 1)
  max_steps = config.get("max_steps")
  if max_steps is None:
    return 1000
  max_steps = _validation.check_int("max_steps", max_steps, -1)
  return max_steps if max_steps > 0 else 1000


def _training_arguments(path: str) -> dict:
  """Reads a TrainingArguments JSON.

  Its ``deepspeed`` path is resolved against the JSON's folder when the file
  is there.
  """
  config = deepspeed_config.load_config(path)
  value = config.get("deepspeed")
  if isinstance(value, str) and not value.startswith("{"):
    beside = os.path.join(os.path.dirname(os.path.abspath(path)), value)
    if not os.path.isabs(value) and os.path.exists(beside):
      config["deepspeed"] = beside
  return config


def _plan(run: detect.RunKind, steps: int | None, args: argparse.Namespace):
  """The plan of the run, and the step count to show."""
  dp = args.data_parallel_size
  config: Mapping[str, Any] = {}
  # The plan's notes carry what the warnings say; port prints them once.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    if run.kind == "launch_script":
      plan = launch_script.plan_launch_script(
        run.paths[0],
        data_parallel_size=dp,
        **(
          {} if args.resume_step is None else {"resume_step": args.resume_step}
        ),
      )
    elif run.kind == "bing_bert":
      plan = bing_bert.plan_bing_bert(
        run.paths[0],
        run.paths[1],
        max_seq_length=args.max_seq_length,
        lr_schedule=args.lr_schedule,
        lr_offset=args.lr_offset,
        data_parallel_size=dp or 1,
        deepspeed_transformer_kernel=args.deepspeed_transformer_kernel,
        rewarmup=args.resume_step is not None,
        resume_step=args.resume_step,
      )
    else:
      config = (
        _training_arguments(run.paths[0])
        if run.kind == "training_arguments"
        else deepspeed_config.load_config(run.paths[0])
      )
      # The schedule's length when --steps does not give it: a first read.
      probe = steps or 1000
      if run.kind == "deepspeed":
        plan = deepspeed_config.plan_deepspeed_config(
          config, total_steps=probe, data_parallel_size=dp or 1
        )
      else:
        plan = training_arguments.plan_training_arguments(
          config, num_training_steps=probe, data_parallel_size=dp or 1
        )
    steps = steps or _default_steps(plan, run.kind, config)
    if run.kind == "deepspeed" and steps != 1000:
      plan = deepspeed_config.plan_deepspeed_config(
        config, total_steps=steps, data_parallel_size=dp or 1
      )
    elif run.kind == "training_arguments" and steps != 1000:
      plan = training_arguments.plan_training_arguments(
        config, num_training_steps=steps, data_parallel_size=dp or 1
      )
  return plan, steps


def learning_rate_trace(
  plan: specs.Plan | bing_bert.BingBertPlan, steps: int
) -> Callable[[], Any]:
  """A function returning the learning rate of optimizer steps ``0 .. steps``.

  The rate is read by :func:`bertadam_optax.get_lr` from the plan's optimizer
  without gradient accumulation: accumulation only repeats micro-batches
  between optimizer steps, so the trace (and its compile time) does not grow
  with ``plan.accumulation_steps``. One ``update`` is traced, inside a scan.
  """
  # A bing_bert plan's learning rate is that of its ds_config plan.
  plan = getattr(plan, "deepspeed", plan)
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
  directory = os.path.dirname(os.path.abspath(args.output))
  if not os.path.isdir(directory):
    raise _usage(
      f"argument -o/--output: directory {directory!r} does not exist"
    )
  if not os.access(directory, os.W_OK):
    raise _usage(
      f"argument -o/--output: directory {directory!r} is not writable"
    )
  try:
    run = _kind(list(args.config), args.kind)
    plan, steps = _plan(run, args.steps, args)
  except ValueError as e:
    raise _usage(str(e)) from None
  lrs = np.asarray(jax.jit(learning_rate_trace(plan, steps))())
  beta1_spec = getattr(plan.optimizer, "b1", None)
  beta1 = (
    np.asarray(jax.vmap(beta1_spec.build())(jnp.arange(steps + 1)))
    if isinstance(beta1_spec, specs.MomentumScheduleSpec)
    else None
  )
  milestone = getattr(plan.learning_rate, "milestone", lambda: None)()
  names = " + ".join(os.path.basename(p) for p in run.paths)
  print(f"{names}: {run.kind}, {steps} optimizer steps")
  print(f"kind:          {run.kind} ({run.reason})")
  dp = getattr(plan, "data_parallel_size", args.data_parallel_size or 1)
  print(
    f"data parallel: {dp} processes"
    + (
      ""
      if args.data_parallel_size
      else " (pass --data-parallel-size to change)"
    )
  )
  print("\n".join(plan.describe()))
  print("\nlearning rate (value the optimizer step applies):")
  for label, k in _key_points(steps, milestone):
    extra = "" if beta1 is None else f"  beta1={beta1[k]:.4f}"
    print(f"  {label:<11} step {k:>7}  lr={lrs[k]:.6e}{extra}")
  print("\noptax code:\n")
  print(plan.to_source())
  path = _plot(lrs, beta1, args.output, f"{names} ({run.kind})")
  print(f"\nwrote {path}")
  return 0
