"""The ``bertadam-optax`` command: argument parsing and error reporting.

Every command's bad input (an unknown command or schedule name, a missing or
out-of-range option, an output path that cannot be written) ends the same
way: one line on stderr and exit status 2, with no traceback and no file
left behind. The heavy imports (flax, matplotlib, tqdm, orbax) happen inside
the commands that need them, so ``list`` and ``show`` run on the core
install.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import difflib
import json
import math
import os
import sys
import tempfile
import types
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

from bertadam_optax import _validation
from bertadam_optax.cli import schedule_options as uniform_options
from bertadam_optax.schedules import registry

__all__ = [
  "HelpFormatter",
  "UsageError",
  "atomic_output",
  "build_parser",
  "main",
  "number_type",
  "readable_file",
  "writable_path",
]

PROG = "bertadam-optax"

USAGE_ERROR = 2


class UsageError(Exception):
  """Bad input: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
  """An ``ArgumentParser`` whose errors are one line, raised not printed."""

  command_names: tuple[str, ...] = ()

  def error(self, message: str):
    raise UsageError(f"{self.prog}: error: {message}")


class HelpFormatter(argparse.HelpFormatter):
  """Wraps descriptions to the terminal; prints the examples as written."""

  def __init__(self, prog: str):
    """Makes the formatter.

    Args:
      prog: the program name shown in the usage line.
    """
    super().__init__(prog, max_help_position=30)

  def _fill_text(self, text, width, indent):
    if text.startswith("examples:"):
      return "".join(indent + line for line in text.splitlines(keepends=True))
    return super()._fill_text(text, width, indent)


def number_type(
  kind: type,
  low: float | None = None,
  high: float | None = None,
  *,
  low_inclusive: bool = True,
  high_inclusive: bool = False,
):
  """An argparse ``type`` that parses ``kind`` and checks its range.

  The check is :mod:`bertadam_optax._validation`'s, so a flag refuses what
  the library refuses: NaN and infinities always, integers outside the int32
  range of a step count unless ``high`` says otherwise.
  """

  def parse(text: str):
    try:
      value = kind(text)
    except ValueError:
      raise argparse.ArgumentTypeError(
        f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
      ) from None
    try:
      if kind is int:
        top = (
          _validation.INT32_MAX
          if high is None
          else int(high) - (not high_inclusive)
        )
        _validation.check_int(
          "value",
          value,
          None if low is None else int(low) + (not low_inclusive),
          top,
        )
      else:
        _validation.check_number(
          "value",
          value,
          low,
          high,
          low_inclusive=low_inclusive,
          high_inclusive=high_inclusive,
        )
    except ValueError as e:
      # "value=1e+400 is not finite; ..." -> "1e400 is not finite; ...": the
      # flag is named by argparse in front of the message.
      reason = str(e).split(" is ", 1)[-1].rstrip(".")
      raise argparse.ArgumentTypeError(f"{text} is {reason}") from None
    return value

  parse.__name__ = kind.__name__
  return parse


_number = number_type  # The name cli/port.py uses.


def _warmup(text: str) -> float:
  value = number_type(float)(text)
  if value != -1 and not 0 <= value < 1:
    raise argparse.ArgumentTypeError(
      f"{text} is out of range; expected a fraction of the total steps in "
      "[0, 1), or -1 for none"
    )
  return value


_OPTION_FLAGS = {
  "lr": "--lr",
  "t_total": "--t-total",
  "warmup": "--warmup",
  "warmup_steps": "--warmup-steps",
  "min_lr": "--min-lr",
  "decay_rate": "--decay-rate",
  "decay_steps": "--decay-steps",
  "steps": "--steps",
}

_NON_FINITE = {
  "nan": math.nan,
  "inf": math.inf,
  "+inf": math.inf,
  "-inf": -math.inf,
  "infinity": math.inf,
  "+infinity": math.inf,
  "-infinity": -math.inf,
}


def _keyword(text: str) -> tuple[str, Any]:
  """``--set KEY=VALUE``: a Python literal, else the bare word as a string.

  The uniform options have flags of their own (``--set t_total=5`` would
  clash with ``--t-total``), and NaN is never a schedule's keyword.
  """
  key, sep, value = text.partition("=")
  if not sep or not key.isidentifier():
    raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
  if key in _OPTION_FLAGS:
    raise argparse.ArgumentTypeError(
      f"{key} is set by {_OPTION_FLAGS[key]}, not --set"
    )
  if value.strip().lower() in _NON_FINITE:
    parsed = _NON_FINITE[value.strip().lower()]
  else:
    try:
      parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
      parsed = value  # A bare word such as warmup_type=linear stays a string.
  # Only a float can be NaN: literal_eval gives no NumPy scalars.
  if isinstance(parsed, float) and math.isnan(parsed):
    raise argparse.ArgumentTypeError(
      f"{key}={value}: NaN is not a value of any schedule keyword"
    )
  return key, parsed


def _add_schedule_options(
  parser: argparse.ArgumentParser, *, lr: float, t_total: bool
) -> None:
  group = parser.add_argument_group(
    "schedule options",
    "Each schedule reads the ones it needs; `bertadam-optax list` says which.",
  )
  group.add_argument(
    "--lr",
    type=number_type(float, 0),
    default=lr,
    help="peak learning rate (default: %(default)g)",
  )
  if t_total:
    group.add_argument(
      "--t-total",
      type=number_type(int, 1),
      default=1000,
      metavar="STEPS",
      help="total number of steps, at most 2**31 - 1 "
      "(default: %(default)s); only the steps shown or "
      "drawn are evaluated",
    )
  warmup = group.add_mutually_exclusive_group()
  warmup.add_argument(
    "--warmup",
    type=_warmup,
    default=None,
    metavar="FRACTION",
    help="warmup as a fraction of the total steps, in "
    "[0, 1) or -1 for none (default: 0.1)",
  )
  warmup.add_argument(
    "--warmup-steps",
    type=number_type(int, 0),
    default=None,
    metavar="STEPS",
    help="warmup as a number of steps",
  )
  group.add_argument(
    "--min-lr",
    type=number_type(float, 0),
    default=None,
    help="floor of the decay (transformers' min_lr and "
    "lr_end, DeepSpeed's warmup_min_lr, cycle_min_lr ...)",
  )
  group.add_argument(
    "--decay-rate",
    type=number_type(float, 0),
    default=None,
    help="rate of the exponential decays and of OneCycle",
  )
  group.add_argument(
    "--decay-steps",
    type=number_type(int, 0),
    default=None,
    metavar="STEPS",
    help="period of the exponential decays, OneCycle's "
    "decay_step_size, the decay length of "
    "transformers.warmup_stable_decay",
  )
  group.add_argument(
    "--set",
    type=_keyword,
    action="append",
    default=[],
    metavar="KEY=VALUE",
    dest="extra",
    help="any other keyword of the schedule's factory, e.g. "
    "--set degree=3 or --set warmup_type=linear "
    "(repeatable)",
  )


def _check_names(names: Sequence[str]) -> None:
  try:
    for name in names:
      registry.schedule_info(name)
  except ValueError as e:
    raise UsageError(f"{PROG}: error: {e}") from None


def schedule_options(args: argparse.Namespace, t_total: int) -> dict[str, Any]:
  """The keyword arguments of ``registry.make_schedule`` from parsed options."""
  warmup = args.warmup
  if warmup is None and args.warmup_steps is None:
    warmup = 0.1
  if args.warmup_steps is not None and args.warmup_steps >= t_total:
    raise UsageError(
      f"{PROG}: error: argument --warmup-steps: "
      f"{args.warmup_steps} is out of range; expected fewer "
      f"than the {t_total} total steps"
    )
  return dict(
    lr=args.lr,
    t_total=t_total,
    warmup=warmup,
    warmup_steps=args.warmup_steps,
    min_lr=args.min_lr,
    decay_rate=args.decay_rate,
    decay_steps=args.decay_steps,
    **dict(args.extra),
  )


def build_schedule(name: str, options: dict[str, Any]):
  """``registry.make_schedule``, its errors made one-line usage errors.

  The schedule is also evaluated at its key points (a handful of steps, not
  ``t_total`` of them), so that a ``--set`` value the factory lets through
  but the formula cannot use (a string exponent, a negative degree that
  divides by zero) is reported here, naming the schedule, and not as a
  traceback from inside jit or a silent ``inf`` in a figure.
  """
  # Imported here: plots imports jax, which `list` does without.
  from bertadam_optax.cli import plots  # pylint: disable=g-import-not-at-top

  try:
    uniform_options.check_required(name, options)
    schedule = registry.make_schedule(name, **options)
  except uniform_options.MissingScheduleOptionError as e:
    flag = (
      "--warmup or --warmup-steps"
      if e.option == "warmup"
      else "--" + e.option.replace("_", "-")
    )
    raise UsageError(
      f"{PROG}: error: schedule {name!r} requires {flag}"
    ) from None
  except (ValueError, TypeError) as e:
    raise UsageError(f"{PROG}: error: schedule {name!r}: {e}") from None
  extra = "".join(
    f" --set {k}={v!r}"
    for k, v in options.items()
    if k not in uniform_options.OPTION_NAMES
  )
  steps = [step for _, step in plots.key_points(name, options)]
  try:
    values = plots.schedule_values_at(schedule, steps)
  except (ValueError, TypeError, ArithmeticError) as e:
    raise UsageError(
      f"{PROG}: error: schedule {name!r} cannot be evaluated with these "
      f"options{extra}: {type(e).__name__}: {e}"
    ) from None
  bad = [
    (step, value)
    for step, value in zip(steps, values)
    if not math.isfinite(value)
  ]
  if bad:
    step, value = bad[0]
    raise UsageError(
      f"{PROG}: error: schedule {name!r} gives the learning rate {value} at "
      f"step {step} with these options{extra}; expected a finite value"
    )
  return schedule


def _need_extra(command: str) -> types.ModuleType:
  """Imports what ``command`` needs; a missing ``cli`` extra is one line."""
  try:
    import matplotlib  # noqa: F401  imported only to check the cli extra

    if command == "demo":
      from bertadam_optax.cli import demo as module
    else:
      from bertadam_optax.cli import plots as module
  except ImportError as e:
    missing = getattr(e, "name", None) or str(e)
    raise UsageError(
      f"{PROG}: error: `{PROG} {command}` needs the cli extra (missing "
      f"{missing!r}); install it with pip install 'bertadam-optax[cli]'"
    ) from None
  return module


def _cmd_list(args: argparse.Namespace) -> int:
  entries = [
    e
    for e in registry.SCHEDULE_REGISTRY.values()
    if args.family is None or e.family == args.family
  ]
  name_w = max(len(e.name) for e in entries)
  family_w = max(len(e.family) for e in entries)
  print(f"{'NAME':<{name_w}}  {'FAMILY':<{family_w}}  FORMULA")
  for e in entries:
    print(f"{e.name:<{name_w}}  {e.family:<{family_w}}  {e.formula}")
  return 0


def _cmd_show(args: argparse.Namespace) -> int:
  from bertadam_optax.cli import plots

  _check_names([args.name])
  options = schedule_options(args, args.t_total)
  schedule = build_schedule(args.name, options)
  print(plots.schedule_table(args.name, schedule, options))
  return 0


def writable_path(path: str, flag: str, *, directory: bool) -> str:
  """``path`` made absolute, or a usage error if it cannot be written.

  Checked before any work, so a long run never fails at its end: ``path``
  must not be a directory (a file if ``directory``), and its nearest existing
  ancestor must be a writable directory (missing ones are created when the
  output is written).
  """
  path = os.path.abspath(path)
  if os.path.exists(path) and os.path.isdir(path) != directory:
    kind = "a file" if directory else "a directory"
    raise UsageError(f"{PROG}: error: argument {flag}: {path!r} is {kind}")
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  writable = os.path.isdir(parent)
  if writable:
    # os.access says yes to root everywhere, /proc included: try instead.
    try:
      with tempfile.TemporaryFile(dir=parent):
        pass
    except OSError:
      writable = False
  if not writable:
    raise UsageError(
      f"{PROG}: error: argument {flag}: cannot write {path!r}:"
      f" {parent!r} is not a writable directory"
    )
  if directory and os.path.isdir(path):
    try:
      with tempfile.TemporaryFile(dir=path):
        pass
    except OSError:
      raise UsageError(
        f"{PROG}: error: argument {flag}: cannot write into "
        f"{path!r}: not a writable directory"
      ) from None
  return path


def readable_file(path: str, flag: str) -> str:
  """``path`` made absolute, or a usage error if it is not a UTF-8 text file.

  The input files are small configs, so reading one more time here costs
  nothing and names the file in every failure (a missing file, a directory,
  no permission, a binary file) before any work.
  """
  absolute = os.path.abspath(path)
  if os.path.isdir(absolute):
    raise UsageError(
      f"{PROG}: error: argument {flag}: {path!r} is a "
      "directory; expected a file"
    )
  try:
    with open(absolute, "rb") as f:
      data = f.read()
  except OSError as e:
    raise UsageError(
      f"{PROG}: error: argument {flag}: {path!r} cannot be "
      f"read: {e.strerror or e}"
    ) from None
  try:
    data.decode("utf-8")
  except UnicodeDecodeError as e:
    raise UsageError(
      f"{PROG}: error: argument {flag}: {path!r} is not a UTF-8 text file "
      f"(byte {data[e.start]:#04x} at offset {e.start})"
    ) from None
  return absolute


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w") -> Iterator[Any]:
  """Opens a temporary file beside ``path``; moves it onto ``path`` on success.

  Missing directories are created. If the body raises, the temporary file is
  removed and ``path`` keeps its old content (or stays absent), so an
  interrupted command never leaves a half-written output.
  """
  path = os.path.abspath(path)
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
    prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory
  )
  try:
    with os.fdopen(fd, mode) as f:
      yield f
    # mkstemp makes the file private (0600); an output gets the usual 0666
    # less the umask.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def _cmd_plot(args: argparse.Namespace) -> int:
  _check_names(args.names)
  output = args.output
  options = schedule_options(args, args.t_total)
  schedules = [(name, build_schedule(name, options)) for name in args.names]
  plots = _need_extra("plot")
  path = plots.plot_schedules(schedules, options, output)
  print(f"wrote {path}")
  return 0


def _cmd_demo(args: argparse.Namespace) -> int:
  names = list(dict.fromkeys([args.schedule] + list(args.compare or ())))
  _check_names(names)
  options = schedule_options(args, args.steps)
  for name in names:
    build_schedule(name, options)
  demo = _need_extra("demo")
  return demo.run(args, names, options)


_DEMO_EXAMPLES = f"""\
examples:
  {PROG} demo
  {PROG} demo --schedule transformers.cosine --lr 3e-3 --steps 800
  {PROG} demo --compare transformers.cosine deepspeed_runtime.WarmupLR
  {PROG} demo --model micro --steps 30 --out /tmp/quick

It writes into --out: curves.png (loss and learning rate against the step),
metrics.json (every step's loss, accuracy and learning rate, and the summary)
and checkpoint/ (the final params and optimizer state, with orbax).
"""

_PLOT_EXAMPLES = f"""\
examples:
  {PROG} plot warmup_linear -o warmup_linear.png
  {PROG} plot warmup_linear pretrained_bert.warmup_linear --warmup 0.2
  {PROG} plot transformers.cosine_with_min_lr \\
      modern.linear_warmup_cosine_decay --lr 3e-4 --t-total 10000 \\
      --warmup-steps 500 --min-lr 3e-5
  {PROG} plot warmup_exp_decay_exp --decay-rate 0.5 --decay-steps 100 \\
      --set degree=3
"""

_SHOW_EXAMPLES = f"""\
examples:
  {PROG} show warmup_linear
  {PROG} show transformers.cosine --lr 5e-5 --t-total 3000 --warmup-steps 300
  {PROG} show deepspeed_runtime.OneCycle --min-lr 1e-5 --warmup-steps 200
"""

_LIST_EXAMPLES = f"""\
examples:
  {PROG} list
  {PROG} list --family transformers

In the formulas s is the step, T = --t-total, x = s/T, w = --warmup and
W the warmup in steps.
"""

_MAIN_EXAMPLES = f"""\
examples:
  {PROG} demo                      pretrain a tiny BERT with bertadam (~1 min)
  {PROG} list                      every schedule, its family and formula
  {PROG} show warmup_linear        the learning rate at key steps
  {PROG} plot warmup_linear transformers.linear -o schedules.png
  {PROG} port ds_config.json       the optax optimizer of a DeepSpeed config
  {PROG} bench --trees tiny        time one optimizer step (source checkout)

Bad input is one line on stderr and exit status 2, before any work.
`{PROG} COMMAND --help` shows each command's options and examples.
"""


def build_parser() -> _Parser:
  """The parser of every command; ``port`` and ``bench`` add their own."""
  from bertadam_optax import __version__

  parser = _Parser(
    prog=PROG,
    formatter_class=HelpFormatter,
    epilog=_MAIN_EXAMPLES,
    description="BertAdam and every BERT/LLM learning-rate schedule for "
    "Optax: a pretraining demo, schedule tables and plots, DeepSpeed and "
    "transformers configs ported to optax, and the optimizer-step "
    "benchmark.",
  )
  parser.add_argument(
    "--version", action="version", version=f"%(prog)s {__version__}"
  )
  commands = parser.add_subparsers(
    dest="command", metavar="COMMAND", parser_class=_Parser
  )
  commands.required = True

  demo = commands.add_parser(
    "demo",
    formatter_class=HelpFormatter,
    epilog=_DEMO_EXAMPLES,
    help="pretrain a tiny BERT masked LM with bertadam on the bundled text",
    description="Pretrain a tiny BERT-style masked language model with "
    "bertadam on the corpus that ships with the package (Genesis and "
    "Exodus, King James Version), with a progress bar and a summary.",
  )
  demo.add_argument(
    "--schedule",
    default="warmup_linear",
    metavar="NAME",
    help="learning-rate schedule, any name of `"
    f"{PROG} list` (default: %(default)s)",
  )
  demo.add_argument(
    "--compare",
    nargs="+",
    metavar="NAME",
    help="also train with these schedules, from the same "
    "initialization and batches, and draw all the curves on "
    "one figure",
  )
  demo.add_argument(
    "--steps",
    type=number_type(int, 1),
    default=600,
    help="training steps, the schedules' t_total (default: %(default)s)",
  )
  demo.add_argument(
    "--batch-size",
    type=number_type(int, 1),
    default=64,
    help="sequences per step (default: %(default)s)",
  )
  demo.add_argument(
    "--seed",
    type=number_type(int, 0, 2**32, high_inclusive=False),
    default=0,
    help="seed of the initialization, batches and "
    "masks; the same seed gives the same numbers "
    "(default: %(default)s)",
  )
  demo.add_argument(
    "--model",
    choices=("tiny", "micro"),
    default="tiny",
    help="model size: tiny (2 layers, hidden 64) or micro "
    "(1 layer, hidden 32, for quick runs) (default: "
    "%(default)s)",
  )
  demo.add_argument(
    "--out",
    default="bertadam-demo",
    metavar="DIR",
    help="output directory (default: ./%(default)s/)",
  )
  demo.add_argument(
    "--no-progress", action="store_true", help="no progress bar"
  )
  _add_schedule_options(demo, lr=5e-3, t_total=False)
  demo.set_defaults(func=_cmd_demo, checked_outputs=(("out", "--out", True),))

  plot = commands.add_parser(
    "plot",
    formatter_class=HelpFormatter,
    epilog=_PLOT_EXAMPLES,
    help="draw schedules into a PNG",
    description="Draw the learning rate of one or more schedules against "
    "the step into a PNG, with each warmup boundary marked.",
  )
  plot.add_argument(
    "names",
    nargs="+",
    metavar="NAME",
    help=f"schedule names (see `{PROG} list`)",
  )
  plot.add_argument(
    "-o",
    "--output",
    default="schedules.png",
    metavar="PNG",
    help="output file (default: %(default)s)",
  )
  _add_schedule_options(plot, lr=1e-3, t_total=True)
  plot.set_defaults(
    func=_cmd_plot, checked_outputs=(("output", "-o/--output", False),)
  )

  show = commands.add_parser(
    "show",
    formatter_class=HelpFormatter,
    epilog=_SHOW_EXAMPLES,
    help="print a schedule's learning rate at key steps",
    description="Print the learning rate of a schedule at the start, the "
    "warmup boundary, the quarter points and the end.",
  )
  show.add_argument(
    "name", metavar="NAME", help=f"a schedule name (see `{PROG} list`)"
  )
  _add_schedule_options(show, lr=1e-3, t_total=True)
  show.set_defaults(func=_cmd_show)

  listing = commands.add_parser(
    "list",
    formatter_class=HelpFormatter,
    epilog=_LIST_EXAMPLES,
    help="list every schedule with its family and formula",
    description="List every schedule name with its family and a one-line "
    "formula.",
  )
  listing.add_argument(
    "--family", choices=registry.FAMILIES, help="only this family"
  )
  listing.set_defaults(func=_cmd_list)

  # Imported here: they build on this module (UsageError, PROG, number_type).
  from bertadam_optax.cli import bench
  from bertadam_optax.cli import port

  port.register(commands)
  commands.choices["port"].set_defaults(
    checked_inputs=(("config", "FILE"),),
    checked_outputs=(("output", "-o/--output", False),),
  )
  bench.register(commands)
  parser.command_names = tuple(commands.choices)
  return parser


def _unknown_command(parser: _Parser, argv: Sequence[str]) -> str | None:
  """A one-line error with a suggestion if ``argv[0]`` is not a command.

  (argparse's own message lists the choices without suggesting one.)
  """
  if (
    argv
    and argv[0].startswith("-")
    and argv[0] not in ("-h", "--help", "--version")
  ):
    # argparse would only say that COMMAND is missing.
    return (
      f"{PROG}: error: unrecognized option {argv[0]!r} before COMMAND "
      f"(choose from {', '.join(parser.command_names)})"
    )
  if not argv or argv[0].startswith("-") or argv[0] in parser.command_names:
    return None
  choices = parser.command_names
  close = difflib.get_close_matches(argv[0], choices, n=1)
  hint = f"; did you mean {close[0]!r}?" if close else ""
  return (
    f"{PROG}: error: unknown command {argv[0]!r} (choose from "
    f"{', '.join(choices)}){hint}"
  )


def _check_files(args: argparse.Namespace) -> None:
  """Checks the command's input files and output paths before it works.

  Each command declares them with ``set_defaults(checked_inputs=((dest,
  flag), ...), checked_outputs=((dest, flag, is_directory), ...))``.
  """
  for dest, flag in getattr(args, "checked_inputs", ()):
    value = getattr(args, dest, None)
    # nargs="+" inputs (port's FILE ...) are checked one by one.
    for item in value if isinstance(value, list) else [value]:
      if item is not None:
        readable_file(item, flag)
  for dest, flag, directory in getattr(args, "checked_outputs", ()):
    if getattr(args, dest, None) is not None:
      setattr(
        args,
        dest,
        writable_path(getattr(args, dest), flag, directory=directory),
      )


def _one_line(text: object) -> str:
  return "; ".join(
    line.strip() for line in str(text).splitlines() if line.strip()
  )


def _input_error(
  error: BaseException, args: argparse.Namespace | None
) -> str | None:
  """The one-line message for ``error`` if it is a failure of the input.

  ``None`` for anything else: a genuine bug still shows its traceback.
  Errors of a config's shape (a string where a section belongs, a string
  where a number belongs) surface from the readers as ``TypeError``,
  ``KeyError`` or ``AttributeError``; they count as bad input only for a
  command that read a file, and the message names the file.
  """
  command = getattr(args, "command", None)
  prefix = f"{PROG} {command}: error: " if command else f"{PROG}: error: "
  source = None
  for dest, _ in getattr(args, "checked_inputs", ()):
    if getattr(args, dest, None) is not None:
      source = getattr(args, dest)
      if isinstance(source, list):
        source = " + ".join(source)
  where = f"{source}: " if source else ""
  if isinstance(error, json.JSONDecodeError):
    return (
      f"{prefix}{where}not valid JSON: {error.msg} (line {error.lineno}"
      f", column {error.colno})"
    )
  if isinstance(error, UnicodeError):
    return f"{prefix}{where}not a UTF-8 text file ({error})"
  if isinstance(error, RecursionError):
    return f"{prefix}{where}nested too deeply to read"
  if isinstance(error, OSError):
    name = error.filename or source or ""
    return f"{prefix}{name}: {error.strerror or error}".replace(": : ", ": ")
  if isinstance(error, ValueError):
    return prefix + where + _one_line(error)
  if source and isinstance(
    error, (TypeError, KeyError, AttributeError, IndexError)
  ):
    detail = (
      f"missing key {error.args[0]!r}"
      if isinstance(error, KeyError)
      else _one_line(error)
    )
    return f"{prefix}{where}unexpected structure: {detail}"
  return None


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the ``bertadam-optax`` command line.

  Every failure of the input (a bad option, a missing or unreadable file,
  a config of the wrong shape, an output that cannot be written) is one line
  on stderr and exit status 2, reported before any work where it can be
  checked up front; only a genuine bug shows a traceback.

  Args:
    argv: the arguments after the program name; ``None`` reads ``sys.argv``.

  Returns:
    The exit status: 0 on success, 2 on bad input (reported as one line on
    stderr), 130 if interrupted.
  """
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = build_parser()
  args = None
  try:
    unknown = _unknown_command(parser, argv)
    if unknown:
      raise UsageError(unknown)
    args = parser.parse_args(argv)
    _check_files(args)
    return args.func(args)
  except UsageError as e:
    print(_one_line(e), file=sys.stderr)
    return USAGE_ERROR
  except KeyboardInterrupt:
    print(f"{PROG}: interrupted", file=sys.stderr)
    return 130
  except Exception as e:  # pylint: disable=broad-exception-caught
    message = _input_error(e, args)
    if message is None:
      raise
    print(message, file=sys.stderr)
    return USAGE_ERROR
