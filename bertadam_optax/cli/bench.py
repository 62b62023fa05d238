"""The ``bertadam-optax bench`` subcommand: the optimizer-step benchmark.

The suite itself lives in :mod:`bertadam_optax._bench`;
``benchmarks/optimizer_step.py`` runs the same one from a checkout.
"""

from __future__ import annotations

import argparse

from bertadam_optax import _bench

__all__ = ["register"]


_EXAMPLES = """\
examples:
  bertadam-optax bench --trees tiny --rounds 1 --steps 2
  bertadam-optax bench --trees base,large,small --out results.json
  bertadam-optax bench --trees base --no-torch
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
  """Adds the ``bench`` subcommand to ``subparsers``.

  Args:
    subparsers: the result of ``parser.add_subparsers()``.

  Returns:
    The ``bench`` parser; its ``func`` default runs the suite and returns the
    exit code.
  """
  parser = subparsers.add_parser(
      "bench", help="time one optimizer step against optax and PyTorch",
      description=_bench.__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog=_EXAMPLES)
  _bench.add_arguments(parser)
  parser.set_defaults(func=_bench.run_from_args)
  return parser
