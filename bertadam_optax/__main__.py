"""``python -m bertadam_optax``: the ``bertadam-optax`` command line."""

from __future__ import annotations

import sys

from bertadam_optax.cli.main import main

__all__: list[str] = []

if __name__ == "__main__":
  sys.exit(main())
