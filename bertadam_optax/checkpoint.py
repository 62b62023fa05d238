r"""Saving and restoring parameters and optimizer state with orbax-checkpoint.

A resumed run must continue exactly where the interrupted one stopped: the
moments ``mu`` and ``nu``, the step counts that drive the schedule, and the
learning rate that :func:`bertadam_optax.get_lr` reports all live in the
optimizer state, so they are saved with the parameters and restored
bit for bit. Orbax does the work (one ``CheckpointManager`` directory, a
``params`` and an ``opt_state`` item per step, sharded arrays written and read
in parallel by every host); this module adds the check that the checkpoint
was written for the same optimizer configuration as the state it is restored
into, so a mismatch fails loudly instead of restoring into the wrong slots.

Needs the ``checkpoint`` extra (``pip install 'bertadam-optax[checkpoint]'``).
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["restore_checkpoint", "save_checkpoint"]

_ITEMS = ("params", "opt_state")
_MAX_LINES = 40


def _orbax():
  try:
    import orbax.checkpoint as ocp
  except ImportError as e:
    raise ImportError(
        "bertadam_optax.checkpoint needs orbax-checkpoint; install it with "
        "pip install 'bertadam-optax[checkpoint]'.") from e
  return ocp


def _manager(ocp, directory: str | os.PathLike):
  from etils import epath  # orbax's own path library, installed with it

  # Orbax wants absolute paths; remote ones (gs://...) already are and must
  # not be resolved against the working directory.
  path = epath.Path(directory)
  handlers = {name: ocp.StandardCheckpointHandler() for name in _ITEMS}
  return ocp.CheckpointManager(path if path.is_absolute() else path.absolute(),
                               item_handlers=handlers)


def save_checkpoint(
    directory: str | os.PathLike,
    step: int,
    params: Any,
    opt_state: Any,
) -> None:
  """Saves ``params`` and ``opt_state`` as step ``step`` under ``directory``.

  Returns once the checkpoint is complete on disk. Sharded arrays are written
  shard by shard by the processes that hold them; in a multi-host run every
  process calls this with its (global) arrays.

  Args:
    directory: the checkpoint directory (created if missing); each step is a
      subdirectory, as orbax's ``CheckpointManager`` lays them out.
    step: the training step the state belongs to.
    params: the parameter pytree.
    opt_state: the optimizer state, e.g. of :func:`bertadam_optax.bertadam`.
  """
  ocp = _orbax()
  with _manager(ocp, directory) as manager:
    manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state)))
    manager.wait_until_finished()


def _describe(leaf: Any) -> str:
  shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
  if shape is None or dtype is None:
    return "empty"
  return f"{dtype}{list(shape)}"


def _flat(ocp, tree: Any) -> dict[str, str]:
  """Dotted path -> ``dtype[shape]`` of every leaf and empty node of ``tree``.

  ``serialize_tree`` writes NamedTuples as dicts and tuples as lists, as they
  are stored, so the target's paths read like the checkpoint's.
  """
  tree = ocp.tree.serialize_tree(tree, keep_empty_nodes=True)
  flat = ocp.tree.to_flat_dict(tree, sep=".", keep_empty_nodes=True)
  return {path: _describe(leaf) for path, leaf in flat.items()}


def _mismatches(saved: dict[str, str], target: dict[str, str]) -> list[str]:
  lines = [f"  only in the checkpoint: {path} ({saved[path]})"
           for path in sorted(saved.keys() - target.keys())]
  lines += [f"  only in the target: {path} ({target[path]})"
            for path in sorted(target.keys() - saved.keys())]
  lines += [f"  differs: {path} (checkpoint {saved[path]}, target "
            f"{target[path]})"
            for path in sorted(saved.keys() & target.keys())
            if saved[path] != target[path]]
  # A wrong model can mismatch every leaf; the first few name the problem.
  if len(lines) > _MAX_LINES:
    lines[_MAX_LINES:] = [f"  ... and {len(lines) - _MAX_LINES} more"]
  return lines


def restore_checkpoint(
    directory: str | os.PathLike,
    step: int | None,
    params_like: Any,
    opt_state_like: Any,
) -> tuple[Any, Any]:
  """Restores the ``params`` and ``opt_state`` saved by :func:`save_checkpoint`.

  The targets give the structure, dtypes, shapes and shardings to restore
  into: typically a freshly initialised ``params`` and ``tx.init(params)`` of
  the same optimizer, or their ``jax.eval_shape`` with shardings
  (``jax.ShapeDtypeStruct(shape, dtype, sharding=...)``) so that nothing is
  materialised before the restore. NamedTuple states come back as the
  target's NamedTuples.

  Args:
    directory: the directory given to :func:`save_checkpoint`.
    step: the step to restore; ``None`` restores the latest one.
    params_like: a pytree with the structure of the saved parameters.
    opt_state_like: an optimizer state with the structure of the saved one.

  Returns:
    ``(params, opt_state)`` as saved.

  Raises:
    FileNotFoundError: if ``directory`` holds no checkpoint (for that step).
    ValueError: if the checkpoint's trees differ from the targets (a
      different model, or a different optimizer configuration: another
      chain, a wrapper such as ``optax.MultiSteps``, no weight-decay stage,
      another ``mu_dtype``); the message lists every mismatching path.
  """
  ocp = _orbax()
  targets = {"params": params_like, "opt_state": opt_state_like}
  with _manager(ocp, directory) as manager:
    if step is None:
      step = manager.latest_step()
    if step is None or step not in manager.all_steps():
      raise FileNotFoundError(
          f"no checkpoint for step {step!r} in {directory!s}; saved steps: "
          f"{sorted(manager.all_steps())}.")
    metadata = manager.item_metadata(step)
    problems = []
    for name, target in targets.items():
      saved = getattr(metadata[name], "tree", metadata[name])
      lines = _mismatches(_flat(ocp, saved), _flat(ocp, target))
      if lines:
        problems.append(f"{name}:\n" + "\n".join(lines))
    if problems:
      raise ValueError(
          f"the checkpoint of step {step} in {directory!s} does not match the "
          "tree it is restored into (saved with a different model or "
          "optimizer configuration?):\n" + "\n".join(problems))
    restored = manager.restore(step, args=ocp.args.Composite(**{
        name: ocp.args.StandardRestore(target)
        for name, target in targets.items()}))
  return restored["params"], restored["opt_state"]
