"""The ``bertadam-optax bench`` command: the optimizer-step benchmark.

The harness is ``benchmarks/optimizer_step.py`` of a source checkout, not
part of the installed package: this module declares the flags, checks them
and the output path before any work, and loads the harness only when the
command runs. From an installed wheel (no ``benchmarks/`` beside the package)
the command is a one-line error saying so.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from bertadam_optax.cli import main as cli_main

__all__ = ["HARNESS_MODULE", "harness_path", "load_harness", "register"]

HARNESS_MODULE = "bertadam_optax_benchmarks.optimizer_step"
"""The name the harness is imported under (``sys.modules`` key)."""

_EXAMPLES = f"""\
examples:
  {cli_main.PROG} bench --trees tiny --rounds 1 --steps 2
  {cli_main.PROG} bench --trees base,large,small --out results.json
  {cli_main.PROG} bench --trees base --no-torch

It prints one table per tree (median step time, compile time, peak memory,
bandwidth against the 32-byte-per-parameter floor) and, with --out, writes
every measurement as JSON after each tree. It runs from a source checkout
(the harness is benchmarks/optimizer_step.py, not installed).
"""


def harness_path() -> str:
  """Where the harness sits in a source checkout (it may not exist)."""
  package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  return os.path.join(
    os.path.dirname(package), "benchmarks", "optimizer_step.py"
  )


def load_harness() -> ModuleType:
  """Imports ``benchmarks/optimizer_step.py``, once.

  Raises:
    UsageError: the package is installed without its source checkout.
  """
  if HARNESS_MODULE in sys.modules:
    return sys.modules[HARNESS_MODULE]
  path = harness_path()
  if not os.path.isfile(path):
    raise cli_main.UsageError(
      f"{cli_main.PROG} bench: error: the benchmark runs from a source "
      f"checkout of bertadam-optax ({path!r} is missing: the installed "
      "package does not ship benchmarks/)"
    )
  spec = importlib.util.spec_from_file_location(HARNESS_MODULE, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[HARNESS_MODULE] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[HARNESS_MODULE]
    raise
  return module


def _trees(text: str) -> list[str]:
  trees = [t.strip() for t in text.split(",") if t.strip()]
  if not trees:
    raise argparse.ArgumentTypeError(
      f"expected comma-separated tree names, got {text!r}"
    )
  return trees


def _cmd_bench(args: argparse.Namespace) -> int:
  harness = load_harness()
  try:
    trees = harness.check_trees(args.trees)
  except ValueError as e:
    raise cli_main.UsageError(
      f"{cli_main.PROG} bench: error: argument --trees: {e}"
    ) from None
  harness.run(
    trees,
    rounds=args.rounds,
    steps=args.steps,
    with_torch=not args.no_torch,
    out=args.out,
  )
  return 0


def register(subparsers: Any) -> argparse.ArgumentParser:
  """Adds the ``bench`` command to ``subparsers``.

  Args:
    subparsers: the result of ``parser.add_subparsers()``.

  Returns:
    The ``bench`` parser; its ``func`` default loads the harness, runs the
    suite and returns the exit code.
  """
  parser = subparsers.add_parser(
    "bench",
    formatter_class=cli_main.HelpFormatter,
    epilog=_EXAMPLES,
    help="time one optimizer step against optax and PyTorch (from a "
    "source checkout)",
    description="Time one optimizer step of bertadam, flat_bertadam and "
    "bertadam(clip='global') against optax's clip_by_global_norm+adamw "
    "and PyTorch's BertAdam and AdamW, on parameter trees with the shapes "
    "of BERT-base, BERT-large and of 2,000 small tensors, relating every "
    "time to the memory-bandwidth floor measured in the same run.",
  )
  parser.add_argument(
    "--trees",
    type=_trees,
    default="base,large,small",
    help="comma-separated, of base, large, small, tiny (default: %(default)s)",
  )
  parser.add_argument(
    "--rounds",
    type=cli_main.number_type(int, 1),
    default=3,
    help="interleaved rounds over all candidates (default: %(default)s)",
  )
  parser.add_argument(
    "--steps",
    type=cli_main.number_type(int, 1),
    default=4,
    help="timed steps per candidate and round (default: %(default)s)",
  )
  parser.add_argument(
    "--no-torch", action="store_true", help="time the JAX candidates only"
  )
  parser.add_argument(
    "--out",
    default=None,
    metavar="JSON",
    help="write the results as JSON (rewritten after each tree, atomically)",
  )
  parser.set_defaults(
    func=_cmd_bench, checked_outputs=(("out", "--out", False),)
  )
  return parser
