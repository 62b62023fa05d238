"""Times one optimizer step of bertadam against optax and PyTorch.

A thin entry point to :mod:`bertadam_optax._bench`, the same suite as
``bertadam-optax bench``::

  python benchmarks/optimizer_step.py --trees base,large,small \
      --out benchmarks/results/cpu.json
"""

from __future__ import annotations

import sys

from bertadam_optax import _bench

if __name__ == "__main__":
  sys.exit(_bench.main())
