"""The ``bertadam-optax`` command line: a pretraining demo and schedule plots.

:func:`~bertadam_optax.cli.main.main` is the entry point (also
``python -m bertadam_optax``). ``demo`` and ``plot`` need the ``cli`` extra
(flax, matplotlib, tqdm, orbax-checkpoint), imported only when those commands
run and never by ``import bertadam_optax``; ``list`` and ``show`` work with
the core install.
"""

from __future__ import annotations

__all__: list[str] = []
