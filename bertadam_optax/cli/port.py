"""The ``bertadam-optax port CONFIG`` command.

Reads a DeepSpeed ``ds_config.json`` or a JSON of transformers
``TrainingArguments`` fields, prints what the optimizer does (optimizer,
hyperparameters, clipping, accumulation, the learning rate at key steps) and
the optax code that builds the same optimizer by hand, and draws the learning
rate (and beta1 where it moves) into a PNG.
"""

from __future__ import annotations

import argparse
import math
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bertadam_optax import alias
from bertadam_optax.cli import main as cli_main
from bertadam_optax.interop import deepspeed_config
from bertadam_optax.interop import training_arguments

__all__ = ["register"]

KINDS = ("deepspeed", "training_arguments")

_DEEPSPEED_KEYS = ("optimizer", "scheduler", "train_batch_size",
                   "train_micro_batch_size_per_gpu", "gradient_clipping",
                   "zero_optimization", "fp16", "bf16")

_EXAMPLES = f"""\
examples:
  {cli_main.PROG} port ds_config.json -o lr.png
  {cli_main.PROG} port training_args.json --kind training_arguments --steps 5000
"""


def register(subparsers: argparse._SubParsersAction) -> None:  # pylint: disable=protected-access
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
  port.add_argument("--steps", type=cli_main._number(int, 1), default=None,  # pylint: disable=protected-access
                    help="optimizer steps to show and draw (default: the "
                    "scheduler's total_num_steps or max_steps, else 1000)")
  port.add_argument("-o", "--output", default="port.png", metavar="PNG",
                    help="output file (default: %(default)s)")
  port.set_defaults(func=_cmd_port)


def _usage(message: str) -> cli_main.UsageError:
  return cli_main.UsageError(f"{cli_main.PROG} port: error: {message}")


def _kind(config: dict, requested: str | None) -> str:
  if requested is not None:
    return requested
  if any(key in config for key in _DEEPSPEED_KEYS):
    return "deepspeed"
  if any(key in config for key in training_arguments._DEFAULTS):  # pylint: disable=protected-access
    return "training_arguments"
  raise _usage("cannot tell whether the config is a ds_config or "
               "TrainingArguments; pass --kind")


def _fmt(value: Any) -> str:
  return repr(tuple(value)) if isinstance(value, list) else repr(value)


def _deepspeed(config: dict, steps: int | None):
  """(transformation, description lines, code, steps, accumulation steps,
  warmup end or peak, beta1 schedule or None)."""
  scheduler = config.get("scheduler") or {}
  params = scheduler.get("params") or {}
  if steps is None:
    steps = params.get("total_num_steps") or 1000
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tx = deepspeed_config.from_deepspeed_config(config, total_steps=steps)
    plan = deepspeed_config._plan(config, steps)  # pylint: disable=protected-access
  spec = plan["optimizer"]
  hyper = {k: v for k, v in spec.items() if k not in ("math", "type")}
  if spec["math"] == "lamb":
    decay_kind = "weight decay inside the per-tensor trust ratio"
  else:
    decay_kind = f"{'decoupled' if spec['decoupled'] else 'L2'} weight decay"
  lines = [f"optimizer:     {spec['type']} ({spec['math']} math; {decay_kind})",
           "hyperparameters: " + ", ".join(f"{k}={_fmt(v)}"
                                           for k, v in hyper.items()),
           f"clipping:      " + (f"global norm {plan['clip']} (torch rule)"
                                  if plan["clip"] else "none"),
           f"accumulation:  {plan['accumulation_steps']} micro-batches per "
           "step (mean)"]
  section = plan["scheduler"]
  warmup_end = None
  if section is None:
    lines.append(f"schedule:      constant {spec['lr']}")
    schedule_code = repr(spec["lr"])
  else:
    lines.append(f"schedule:      {section['type']} {section['params']}")
    p = section["params"]
    if section["type"].startswith("Warmup"):
      warmup_end = ("warmup end", max(2, p.get("warmup_num_steps", 1000)))
    elif section["type"] == "OneCycle":
      warmup_end = ("peak", int(p.get("cycle_first_step_size", 2000)))
    schedule_code = (f"schedules.deepspeed_schedule({section['type']!r}, "
                     f"{section['params']!r}, learning_rate={spec['lr']!r})")
  lines += [f"note:          {m}"
            for m in dict.fromkeys(str(w.message) for w in caught)]

  code = ["import optax", "from bertadam_optax import transforms",
          "from bertadam_optax import schedules", "",
          f"schedule = {schedule_code}"]
  b1 = plan["beta1"] is not None
  if b1:
    code.append(f"beta1 = schedules.deepspeed_momentum_schedule("
                f"{section['type']!r}, {section['params']!r})")
  decay = (None if spec["weight_decay"] == 0 else
           f"optax.add_decayed_weights({spec['weight_decay']!r})")
  if spec["math"] == "adagrad":
    code.insert(1, "from bertadam_optax.interop.deepspeed_config import "
                "_scale_by_adagrad_torch as scale_by_adagrad_torch")
    core = [decay, ("scale_by_adagrad_torch("
                    f"{spec['initial_accumulator_value']!r}, {spec['eps']!r})")]
  elif spec["math"] == "lamb":
    code.insert(1, "from bertadam_optax.interop.deepspeed_config import "
                "scale_by_fused_lamb")
    kwargs = ", ".join(f"{k}={spec[k]!r}" for k in (
        "eps", "eps_inside_sqrt", "bias_correction", "weight_decay",
        "max_coeff", "min_coeff"))
    core = [("optax.inject_hyperparams(scale_by_fused_lamb, static_args="
             f"{deepspeed_config.LAMB_STATIC_ARGS!r})(b1=beta1, b2=0.99, "
             f"{kwargs})") if b1 else
            f"scale_by_fused_lamb({spec['b1']!r}, {spec['b2']!r}, {kwargs})"]
  elif spec["math"] == "lion":
    core = [("optax.inject_hyperparams(optax.scale_by_lion)(b1=beta1, "
             "b2=0.99)") if b1 else
            f"optax.scale_by_lion({spec['b1']!r}, {spec['b2']!r})", decay]
  else:
    moments = (("optax.inject_hyperparams(transforms.scale_by_bertadam, "
                "static_args=('bias_correction',))(b1=beta1, b2=0.99, "
                f"eps={spec['eps']!r}, bias_correction="
                f"{spec['bias_correction']!r})") if b1 else
               (f"transforms.scale_by_bertadam({spec['b1']!r}, "
                f"{spec['b2']!r}, {spec['eps']!r}, bias_correction="
                f"{spec['bias_correction']!r})"))
    core = [moments, decay] if spec["decoupled"] else [decay, moments]
  chain = ([f"transforms.clip_by_global_norm_torch({plan['clip']!r})"] +
           [c for c in core if c] +
           ["transforms.scale_by_learning_rate(schedule)"])
  code.append("optimizer = optax.chain(")
  code += [f"    {c}," for c in chain]
  code.append(")")
  if plan["accumulation_steps"] > 1:
    code.append(f"optimizer = optax.MultiSteps(optimizer, every_k_schedule="
                f"{plan['accumulation_steps']}).gradient_transformation()")
  return (tx, lines, "\n".join(code), steps, plan["accumulation_steps"],
          warmup_end, plan["beta1"])


def _training_arguments(config: dict, steps: int | None):
  if steps is None:
    steps = config.get("max_steps") if (config.get("max_steps") or 0) > 0 \
        else 1000
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tx = training_arguments.from_training_arguments(config,
                                                    num_training_steps=steps)
  values = training_arguments._read_args(  # pylint: disable=protected-access
      {k: v for k, v in config.items() if k in training_arguments._DEFAULTS})  # pylint: disable=protected-access
  warmup = training_arguments._warmup_steps(values, steps)  # pylint: disable=protected-access
  name = values["lr_scheduler_type"]
  kwargs = dict(values["lr_scheduler_kwargs"] or {})
  metric = name in ("reduce_lr_on_plateau", "greedy")
  lines = [f"optimizer:     {values['optim']}",
           "hyperparameters: " + ", ".join(
               f"{k}={values[k]!r}" for k in (
                   "learning_rate", "weight_decay", "adam_beta1",
                   "adam_beta2", "adam_epsilon", "optim_args")),
           "weight decay:  not on biases and norm parameters (the Trainer's "
           "rule)",
           "clipping:      " + (f"global norm {values['max_grad_norm']} "
                                "(torch rule)" if values["max_grad_norm"]
                                else "none"),
           f"accumulation:  {values['gradient_accumulation_steps']} "
           "micro-batches per step (mean)",
           f"schedule:      {name} {kwargs}" + (
               " (metric-driven: update(..., value=loss))" if metric else
               f", warmup {warmup} steps")]
  lines += [f"note:          {m}"
            for m in dict.fromkeys(str(w.message) for w in caught)]
  if metric or not values["optim"].startswith("adamw"):
    fields = {k: v for k, v in values.items()
              if v != training_arguments._DEFAULTS[k]}  # pylint: disable=protected-access
    code = ["from bertadam_optax.interop import from_training_arguments", "",
            f"optimizer = from_training_arguments({fields!r}, "
            f"num_training_steps={steps})"]
  else:
    decay = (f"optax.add_decayed_weights({values['weight_decay']!r}, mask)"
             if values["weight_decay"] else None)
    clip = (f"transforms.clip_by_global_norm_torch({values['max_grad_norm']!r})"
            if values["max_grad_norm"] else None)
    chain = [clip,
             f"transforms.scale_by_bertadam({values['adam_beta1']!r}, "
             f"{values['adam_beta2']!r}, {values['adam_epsilon']!r}, "
             "bias_correction=True)",
             decay, "transforms.scale_by_learning_rate(schedule)"]
    code = ["import optax", "from bertadam_optax import transforms",
            "from bertadam_optax.interop import training_arguments",
            "from bertadam_optax.schedules import get_schedule", "",
            f"schedule = get_schedule({name!r}, {values['learning_rate']!r}, "
            f"{warmup}, {steps}" + "".join(f", {k}={v!r}"
                                           for k, v in kwargs.items()) + ")",
            "mask = training_arguments.trainer_weight_decay_mask()",
            "optimizer = optax.chain("]
    code += [f"    {c}," for c in chain if c]
    code.append(")")
    if values["gradient_accumulation_steps"] > 1:
      code.append("optimizer = optax.MultiSteps(optimizer, every_k_schedule="
                  f"{values['gradient_accumulation_steps']})"
                  ".gradient_transformation()")
  return (tx, lines, "\n".join(code), steps,
          values["gradient_accumulation_steps"],
          ("warmup end", warmup) if warmup else None, None)


def _trace(tx, steps: int, accumulation: int, metric: bool) -> np.ndarray:
  """The learning rate of optimizer steps ``0 .. steps``, read by get_lr."""
  params = {"w": jnp.zeros([])}
  extra = {"value": jnp.float32(1.0)} if metric else {}

  def step(state, _):
    lr = alias.get_lr(state)
    for _ in range(accumulation):
      _, state = tx.update({"w": jnp.zeros([])}, state, params, **extra)
    return state, lr

  _, lrs = jax.lax.scan(step, tx.init(params), None, length=steps + 1)
  return np.asarray(lrs)


def _key_points(steps: int, marker: tuple[str, int] | None):
  """(label, step) at the start, ``marker``, the quarter points and the end."""
  points = [("start", 0)]
  if marker and 0 < marker[1] < steps:
    points.append(marker)
  points += [(f"{q}/4", math.floor(q * steps / 4)) for q in (1, 2, 3)]
  points.append(("end", steps))
  return sorted(set(points), key=lambda p: p[1])


def _plot(lrs, beta1, path: str, title: str) -> str:
  from bertadam_optax.cli import plots  # pylint: disable=import-outside-toplevel

  plt = plots._pyplot()  # pylint: disable=protected-access
  figure, axes = plt.subplots(figsize=(8, 4.5))
  try:
    axes.plot(np.arange(len(lrs)), lrs, label="learning rate")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("learning rate")
    axes.grid(alpha=0.3)
    if beta1 is not None:
      right = axes.twinx()
      right.plot(np.arange(len(beta1)), beta1, color="tab:orange",
                 label="beta1")
      right.set_ylabel("beta1")
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    return plots.save_figure(figure, path)
  finally:
    plt.close(figure)


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
    build = _deepspeed if kind == "deepspeed" else _training_arguments
    (tx, lines, code, steps, accumulation, warmup_end,
     beta1_schedule) = build(config, args.steps)
  except ValueError as e:
    raise _usage(str(e)) from None
  metric = kind == "training_arguments" and any(
      config.get("lr_scheduler_type") == n
      for n in ("reduce_lr_on_plateau", "greedy"))
  lrs = _trace(tx, steps, accumulation, metric)
  beta1 = (None if beta1_schedule is None else
           np.asarray(jax.vmap(beta1_schedule)(jnp.arange(steps + 1))))
  print(f"{os.path.basename(args.config)}: {kind}, {steps} optimizer steps")
  print("\n".join(lines))
  print("\nlearning rate (value the optimizer step applies):")
  for label, k in _key_points(steps, warmup_end):
    extra = "" if beta1 is None else f"  beta1={beta1[k]:.4f}"
    print(f"  {label:<11} step {k:>7}  lr={lrs[k]:.6e}{extra}")
  print("\noptax code:\n")
  print(code)
  path = _plot(lrs, beta1, args.output,
               f"{os.path.basename(args.config)} ({kind})")
  print(f"\nwrote {path}")
  return 0

