r"""Saving and restoring parameters and optimizer state with orbax-checkpoint.

A resumed run must continue exactly where the interrupted one stopped: the
moments ``mu`` and ``nu``, the step counts that drive the schedule, and the
learning rate that :func:`bertadam_optax.get_lr` reports all live in the
optimizer state, so they are saved with the parameters and restored
bit for bit. Orbax does the work (one ``CheckpointManager`` directory, a
``params`` and an ``opt_state`` item per step, sharded arrays written and read
in parallel by every host, a step renamed into place only once it is
complete, so a process killed mid-save leaves the previous steps intact).

This module adds what orbax leaves to the caller, so that no step is lost
silently:

* a save writes its step or raises: a step that exists, or one at or below
  the latest, is refused unless ``overwrite=True``; a step is a non-negative
  integer; a directory orbax could not read back (glob characters, a
  backslash), a regular file or a read-only folder in the way is refused
  before anything is written, and a failed save leaves no temporary files;
* with each step it saves an ``optimizer`` item describing the optimizer
  (the types of the state's stages and, when the optimizer is given, the
  hyperparameters it closes over), and a restore compares it and the trees
  with the targets, so a checkpoint of another optimizer configuration or
  model fails loudly, listing every difference, instead of restoring into the
  wrong slots;
* a restore has no side effects (it creates nothing) and reports a truncated
  or corrupted checkpoint as a ``ValueError`` naming the file.

Needs the ``checkpoint`` extra (``pip install 'bertadam-optax[checkpoint]'``).
"""

from __future__ import annotations

import collections.abc
import functools
import json
import math
import os
import shutil
import types
from typing import Any

import jax
import numpy as np
import optax

from bertadam_optax import _validation

__all__ = ["describe_optimizer", "restore_checkpoint", "save_checkpoint"]

_ITEMS = ("params", "opt_state")
_OPTIMIZER = "optimizer"
_FORMAT = 1
_MAX_LINES = 40
# Orbax lists a checkpoint's files with glob patterns built from the
# directory's path: a '[...]' in it becomes a character class and '**' is
# refused, so the step saves but cannot be read back; a backslash breaks
# TensorStore's file paths. Found by saving and restoring every ASCII
# punctuation character (tests/reliability/test_checkpoint_faults.py).
_UNSAFE = ("[", "]", "*", "?", "\\")
# Where a step that overwrite=True replaces waits until the new one is
# complete (not a step name, so orbax ignores it).
_REPLACED = ".bertadam-optax-replaced"
_TMP = ".orbax-checkpoint-tmp"
# Bounds on the description of an optimizer (closures can be deep).
_MAX_DEPTH = 12
_MAX_ITEMS = 5000
_RTOL = 1e-6


def _orbax():
  try:
    import orbax.checkpoint as ocp
  except ImportError as e:
    raise ImportError(
      "bertadam_optax.checkpoint needs orbax-checkpoint; install it with "
      "pip install 'bertadam-optax[checkpoint]'."
    ) from e
  return ocp


def _path(directory: str | os.PathLike):
  from etils import epath  # orbax's own path library, installed with it

  if isinstance(directory, (bytes, bool)) or not isinstance(
    directory, (str, os.PathLike)
  ):
    raise ValueError(
      f"directory={directory!r} is not a path; expected a str or os.PathLike."
    )
  # Orbax wants absolute paths; remote ones (gs://...) already are and must
  # not be resolved against the working directory.
  path = epath.Path(directory)
  path = path if path.is_absolute() else path.absolute()
  unsafe = [c for c in _UNSAFE if c in os.fspath(path)]
  if unsafe:
    raise ValueError(
      f"directory={os.fspath(directory)!r} contains {unsafe}; orbax-checkpoint "
      "reads its files back with glob patterns made from the path, so a "
      f"checkpoint there could not be restored. Use a path without "
      f"{' '.join(_UNSAFE)}."
    )
  return path


def _is_local(path) -> bool:
  return "://" not in os.fspath(path)


def _check_writable(path, directory) -> None:
  """Refuses a checkpoint directory that cannot be written, before any work."""
  if not _is_local(path):
    return
  local = os.fspath(path)
  if os.path.exists(local) and not os.path.isdir(local):
    raise ValueError(
      f"directory={os.fspath(directory)!r} is a file, not a "
      "directory; checkpoints are written into a directory."
    )
  existing = local
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError(
      f"directory={os.fspath(directory)!r} cannot be created: "
      f"{existing!r} is a file."
    )
  if not os.access(existing, os.W_OK | os.X_OK):
    raise PermissionError(
      f"directory={os.fspath(directory)!r} cannot be written: {existing!r} "
      "is read-only."
    )


def _manager(ocp, path, *, create: bool):
  handlers = {name: ocp.StandardCheckpointHandler() for name in _ITEMS}
  handlers[_OPTIMIZER] = ocp.JsonCheckpointHandler()
  return ocp.CheckpointManager(
    path,
    item_handlers=handlers,
    options=ocp.CheckpointManagerOptions(create=create),
  )


def _is_namedtuple(node: Any) -> bool:
  return isinstance(node, tuple) and hasattr(node, "_fields")


def _stages(tree: Any) -> dict[str, str]:
  """Dotted path -> class name of every NamedTuple node of ``tree``.

  Orbax stores NamedTuples as dicts, so the class (``ScaleByBertAdamState``
  against ``ScaleByAdamState``) is only known from this record.
  """
  found = {}

  def visit(prefix, node):
    if _is_namedtuple(node):
      found[prefix or "."] = type(node).__name__
      items = node._asdict().items()
    elif isinstance(node, (list, tuple)):
      items = enumerate(node)
    elif isinstance(node, collections.abc.Mapping):
      items = node.items()
    else:
      return
    for key, child in items:
      visit(f"{prefix}.{key}" if prefix else str(key), child)

  visit("", tree)
  return found


def _function_name(fn: Any) -> str:
  module = getattr(fn, "__module__", None) or "?"
  return f"{module}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def describe_optimizer(
  optimizer: optax.GradientTransformation,
) -> dict[str, Any]:
  r"""The hyperparameters an optax optimizer closes over, by dotted path.

  An optax optimizer is a pair of closures; its configuration (``b1``, the
  weight decay, the mask function, the schedule's constants) lives in their
  cells. This walks them, through chains, wrappers (their bound methods and
  callable objects included), ``functools.partial`` and schedules, and records every number, string, flag and dtype by the path of
  closure variables that reaches it, and every function by its qualified
  name. Two optimizers built with the same arguments give the same
  description, in any process; :func:`save_checkpoint` stores it with each
  step and :func:`restore_checkpoint` compares it.

  Args:
    optimizer: an ``optax.GradientTransformation``.

  Returns:
    ``{path: value}`` with JSON values (numbers, strings, booleans, ``None``);
    arrays are described as ``'array float32[3]'``, other objects by type.

  Raises:
    ValueError: if ``optimizer`` is not a ``GradientTransformation``.

  Examples:
    >>> import optax
    >>> d = describe_optimizer(optax.adamw(1e-3, weight_decay=0.05))
    >>> sorted({v for v in d.values() if v in (0.9, 0.999, 0.05)})
    [0.05, 0.9, 0.999]
  """
  if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
    raise ValueError(
      f"optimizer={optimizer!r} is not an optax "
      "GradientTransformation (it has no init and update)."
    )
  found: dict[str, Any] = {}

  def record(path, value):
    if len(found) < _MAX_ITEMS and path not in found:
      found[path] = value

  def visit(path, value, depth, active):
    if len(found) >= _MAX_ITEMS or depth > _MAX_DEPTH:
      return
    if value is None or isinstance(value, (bool, np.bool_, str)):
      record(path, value if not isinstance(value, np.bool_) else bool(value))
    elif _validation.is_number(value):
      number = np.asarray(value).item()
      record(path, number if math.isfinite(number) else repr(number))
    elif isinstance(value, (np.ndarray, jax.Array)):
      record(path, f"array {value.dtype}{list(value.shape)}")
    elif isinstance(value, (np.dtype, type)) and _is_dtype(value):
      record(path, f"dtype {np.dtype(value)}")
    elif id(value) in active:
      record(path, "recursive")
    elif isinstance(value, functools.partial):
      record(path, f"partial {_function_name(value.func)}")
      active = active | {id(value)}
      visit(f"{path}.func", value.func, depth + 1, active)
      for i, arg in enumerate(value.args):
        visit(f"{path}.args.{i}", arg, depth + 1, active)
      for key, arg in value.keywords.items():
        visit(f"{path}.{key}", arg, depth + 1, active)
    elif isinstance(value, types.FunctionType):
      record(path, f"function {_function_name(value)}")
      active = active | {id(value)}
      for name, cell in zip(
        value.__code__.co_freevars, value.__closure__ or ()
      ):
        try:
          contents = cell.cell_contents
        except ValueError:  # a cell not yet filled
          continue
        visit(f"{path}.{name}" if path else name, contents, depth + 1, active)
    elif _is_namedtuple(value) and hasattr(value, "update"):
      # A GradientTransformation (or its extra-args variant): its two
      # closures hold its configuration.
      record(path, f"transformation {type(value).__name__}")
      active = active | {id(value)}
      for field in value._fields:
        visit(path, getattr(value, field), depth + 1, active)
    elif isinstance(value, (list, tuple)):
      active = active | {id(value)}
      for i, item in enumerate(value):
        visit(f"{path}.{i}" if path else str(i), item, depth + 1, active)
    elif isinstance(value, collections.abc.Mapping):
      active = active | {id(value)}
      for key, item in value.items():
        visit(f"{path}.{key}" if path else str(key), item, depth + 1, active)
    elif isinstance(value, types.MethodType):
      # e.g. optax.MultiSteps(...).init: the configuration is on the object.
      record(path, f"method {_function_name(value)}")
      owner = getattr(value.__self__, "__dict__", None)
      if owner is not None:
        visit(path, owner, depth + 1, active | {id(value)})
    elif callable(value):
      # A callable object (a wrapped schedule): its attributes configure it.
      record(path, f"callable {_function_name(value)}")
      attributes = getattr(value, "__dict__", None)
      if attributes is not None:
        visit(path, attributes, depth + 1, active | {id(value)})
    else:
      record(
        path, f"object {type(value).__module__}.{type(value).__qualname__}"
      )

  for field in ("init", "update"):
    visit("", getattr(optimizer, field), 0, frozenset())
  return found


def _is_dtype(value: Any) -> bool:
  try:
    np.dtype(value)
  except TypeError:
    return False
  return isinstance(value, np.dtype) or (
    isinstance(value, type) and hasattr(value, "dtype")
  )


def _optimizer_record(opt_state: Any, optimizer: Any) -> dict[str, Any]:
  from bertadam_optax import __version__

  return {
    "format": _FORMAT,
    "bertadam_optax": __version__,
    "stages": _stages(opt_state),
    "hyperparameters": (
      None if optimizer is None else describe_optimizer(optimizer)
    ),
  }


def _check_leaves(trees: dict[str, Any]) -> None:
  """Refuses leaves orbax cannot write, before its writer threads start."""
  from bertadam_optax import masks

  bad = []
  for name, tree in trees.items():
    for key, leaf in jax.tree_util.tree_leaves_with_path(tree):
      if (
        not (
          isinstance(leaf, (jax.Array, np.ndarray, np.generic))
          or _validation.is_number(leaf)
        )
        or np.dtype(getattr(leaf, "dtype", np.float32)).kind in "OSUV"
      ):
        path = masks.path_to_name(key)
        bad.append(f"{name}.{path}" if path else name)
        bad[-1] += f" ({type(leaf).__name__})"
  if bad:
    shown = ", ".join(bad[:10]) + (
      f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    )
    raise ValueError(
      f"cannot save leaves that are not arrays or numbers: {shown}."
    )


def _check_step(step: Any) -> int:
  return _validation.check_int("step", step, 0, None)


def _remove(path) -> None:
  if path.exists():
    if _is_local(path):
      shutil.rmtree(os.fspath(path), ignore_errors=True)
    else:
      path.rmtree()


def _temporaries(path, step: int) -> list[Any]:
  if not path.exists():
    return []
  return [p for p in path.iterdir() if p.name.startswith(f"{step}{_TMP}")]


def save_checkpoint(
  directory: str | os.PathLike,
  step: int,
  params: Any,
  opt_state: Any,
  *,
  optimizer: optax.GradientTransformation | None = None,
  overwrite: bool = False,
) -> None:
  """Saves ``params`` and ``opt_state`` as step ``step`` under ``directory``.

  Returns once the checkpoint is complete on disk, or raises: it never skips a
  step silently. Orbax writes the step into a temporary directory and renames
  it into place when it is complete, so a process killed during the save
  leaves the earlier steps as they were. Sharded arrays are written shard by
  shard by the processes that hold them; in a multi-host run every process
  calls this with its (global) arrays.

  With the step, an ``optimizer`` item records the class of every stage of
  ``opt_state`` and, if ``optimizer`` is given, its hyperparameters
  (:func:`describe_optimizer`), which :func:`restore_checkpoint` compares.

  Args:
    directory: the checkpoint directory (created if missing); each step is a
      subdirectory, as orbax's ``CheckpointManager`` lays them out. Its path
      may not contain ``[ ] * ? \\`` (orbax could not read it back).
    step: the training step the state belongs to, an integer >= 0.
    params: the parameter pytree.
    opt_state: the optimizer state, e.g. of :func:`bertadam_optax.bertadam`.
    optimizer: the optimizer ``opt_state`` belongs to; recorded so that a
      restore into another configuration (another ``weight_decay``, ``b2``,
      schedule...) is refused even where the states have the same shapes.
    overwrite: replace step ``step`` if it exists, and allow a step below the
      latest. The replaced step is kept aside until the new one is complete
      and put back if the save fails.

  Raises:
    ValueError: if ``step`` is not an integer >= 0, if it exists or is not
      above the latest step (without ``overwrite``), or if ``directory`` is
      unusable (a file, a path orbax cannot read back).
    PermissionError: if ``directory`` is in a read-only folder.

  Examples:
    >>> import tempfile
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import bertadam
    >>> tx = bertadam(1e-3)
    >>> params = {"w": jnp.ones(3)}
    >>> directory = tempfile.mkdtemp()
    >>> save_checkpoint(directory, 1, params, tx.init(params), optimizer=tx)
    >>> save_checkpoint(directory, 1, params, tx.init(params))
    Traceback (most recent call last):
    ...
    ValueError: step 1 exists in ...; pass overwrite=True to replace it.
  """
  step = _check_step(step)
  overwrite = _validation.check_bool("overwrite", overwrite)
  path = _path(directory)
  _check_writable(path, directory)
  _check_leaves({"params": params, "opt_state": opt_state})
  record = _optimizer_record(opt_state, optimizer)
  ocp = _orbax()
  replaced, ok = None, False
  try:
    with _manager(ocp, path, create=True) as manager:
      steps = sorted(manager.all_steps())
      latest = steps[-1] if steps else None
      if not overwrite:
        if step in steps:
          raise ValueError(
            f"step {step} exists in {os.fspath(path)}; pass "
            "overwrite=True to replace it."
          )
        if latest is not None and step < latest:
          raise ValueError(
            f"step {step} is below the latest step {latest} in "
            f"{os.fspath(path)}; orbax would skip it. Pass overwrite=True "
            "to save it anyway."
          )
      if step in steps:
        replaced = path / f"{step}{_REPLACED}"
        _remove(replaced)
        (path / str(step)).rename(replaced)
        manager.reload()
      try:
        saved = manager.save(
          step,
          force=True,
          args=ocp.args.Composite(
            **{
              "params": ocp.args.StandardSave(params),
              "opt_state": ocp.args.StandardSave(opt_state),
              _OPTIMIZER: ocp.args.JsonSave(record),
            }
          ),
        )
        manager.wait_until_finished()
        if not saved or step not in manager.all_steps():
          raise RuntimeError(
            f"orbax-checkpoint did not save step {step} in {os.fspath(path)}."
          )
        ok = True
      finally:
        if not ok:
          # Let orbax's writer threads end before their files are removed;
          # the error being raised already says what went wrong.
          try:
            manager.wait_until_finished()
          except Exception:  # pylint: disable=broad-except
            pass
  finally:
    # The manager is closed: nothing writes into the directory any more.
    if not ok:
      for tmp in _temporaries(path, step):
        _remove(tmp)
    if replaced is not None:
      if ok:
        _remove(replaced)
      else:
        _remove(path / str(step))
        replaced.rename(path / str(step))


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


def _same(a: Any, b: Any) -> bool:
  if (
    isinstance(a, (int, float))
    and isinstance(b, (int, float))
    and not isinstance(a, bool)
    and not isinstance(b, bool)
  ):
    # A float32 hyperparameter and its Python float are the same setting.
    return math.isclose(a, b, rel_tol=_RTOL, abs_tol=0.0)
  return a == b


def _mismatches(saved: dict[str, Any], target: dict[str, Any]) -> list[str]:
  lines = [
    f"  only in the checkpoint: {path} ({saved[path]})"
    for path in sorted(saved.keys() - target.keys())
  ]
  lines += [
    f"  only in the target: {path} ({target[path]})"
    for path in sorted(target.keys() - saved.keys())
  ]
  lines += [
    f"  differs: {path} (checkpoint {saved[path]}, target {target[path]})"
    for path in sorted(saved.keys() & target.keys())
    if not _same(saved[path], target[path])
  ]
  # A wrong model can mismatch every leaf; the first few name the problem.
  if len(lines) > _MAX_LINES:
    lines[_MAX_LINES:] = [f"  ... and {len(lines) - _MAX_LINES} more"]
  return lines


_JSON_FILES = ("_METADATA", "_CHECKPOINT_METADATA", "_sharding", "metadata")


def _check_files(step_dir) -> None:
  """Refuses a step whose JSON metadata files are truncated or corrupted,
  naming the file, before orbax fails on it with a bare decoding error.
  """
  if not step_dir.exists():
    return
  pending = [step_dir]
  while pending:
    for p in pending.pop().iterdir():
      if p.is_dir():
        pending.append(p)
      elif p.name in _JSON_FILES or p.name.endswith(".json"):
        try:
          json.loads(p.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
          raise ValueError(
            f"the checkpoint file {os.fspath(p)} is truncated or corrupted "
            f"({type(e).__name__}: {e}); restore another step."
          ) from None


def restore_checkpoint(
  directory: str | os.PathLike,
  step: int | None,
  params_like: Any,
  opt_state_like: Any,
  *,
  optimizer: optax.GradientTransformation | None = None,
) -> tuple[Any, Any]:
  """Restores the ``params`` and ``opt_state`` saved by :func:`save_checkpoint`.

  The targets give the structure, dtypes, shapes and shardings to restore
  into: typically a freshly initialised ``params`` and ``tx.init(params)`` of
  the same optimizer, or their ``jax.eval_shape`` with shardings
  (``jax.ShapeDtypeStruct(shape, dtype, sharding=...)``) so that nothing is
  materialised before the restore. NamedTuple states come back as the
  target's NamedTuples. Nothing is written or created.

  Before reading any array, the checkpoint is compared with the targets: the
  trees (paths, shapes, dtypes), the classes of the optimizer state's stages,
  and, when ``optimizer`` is given and the checkpoint was saved with one, the
  optimizer's hyperparameters (:func:`describe_optimizer`).

  Args:
    directory: the directory given to :func:`save_checkpoint`.
    step: the step to restore (an integer >= 0); ``None`` restores the latest.
    params_like: a pytree with the structure of the saved parameters.
    opt_state_like: an optimizer state with the structure of the saved one.
    optimizer: the optimizer the run continues with; its hyperparameters must
      be those saved.

  Returns:
    ``(params, opt_state)`` as saved.

  Raises:
    FileNotFoundError: if ``directory`` does not exist or holds no checkpoint
      (for that step).
    ValueError: if the checkpoint differs from the targets (a different
      model, or a different optimizer configuration: another chain, a
      wrapper such as ``optax.MultiSteps``, no weight-decay stage, another
      ``mu_dtype``, other hyperparameters); the message lists every
      difference. Also if a file of the checkpoint is truncated or corrupted
      (naming it), or ``step`` is not an integer >= 0.

  Examples:
    >>> import tempfile
    >>> import jax.numpy as jnp
    >>> from bertadam_optax import bertadam
    >>> tx = bertadam(1e-3)
    >>> params = {"w": jnp.ones(3)}
    >>> directory = tempfile.mkdtemp()
    >>> save_checkpoint(directory, 7, params, tx.init(params), optimizer=tx)
    >>> fresh = {"w": jnp.zeros(3)}
    >>> p, s = restore_checkpoint(directory, None, fresh, tx.init(fresh),
    ...                           optimizer=tx)
    >>> p["w"].tolist()
    [1.0, 1.0, 1.0]
    >>> other = bertadam(1e-3, weight_decay=0.1)
    >>> restore_checkpoint(directory, 7, fresh, other.init(fresh),
    ...                    optimizer=other)
    Traceback (most recent call last):
    ...
    ValueError: the checkpoint of step 7 in ... does not match ...
  """
  if step is not None:
    step = _check_step(step)
  path = _path(directory)
  if _is_local(path) and not os.path.isdir(os.fspath(path)):
    raise FileNotFoundError(
      f"no checkpoint directory {os.fspath(directory)!r}"
      " (it does not exist or is not a directory)."
    )
  ocp = _orbax()
  targets = {"params": params_like, "opt_state": opt_state_like}
  with _manager(ocp, path, create=False) as manager:
    steps = sorted(manager.all_steps())
    if step is None:
      step = steps[-1] if steps else None
    if step is None or step not in steps:
      raise FileNotFoundError(
        f"no checkpoint for step {step!r} in {os.fspath(directory)}; saved "
        f"steps: {steps}."
      )
    _check_files(path / str(step))
    where = f"the checkpoint of step {step} in {os.fspath(path)}"
    try:
      metadata = manager.item_metadata(step)
      record = None
      if (
        metadata.get(_OPTIMIZER) is not None
        or (path / str(step) / _OPTIMIZER).exists()
      ):
        record = manager.restore(
          step, args=ocp.args.Composite(**{_OPTIMIZER: ocp.args.JsonRestore()})
        )[_OPTIMIZER]
    except Exception as e:  # orbax raises many types for a damaged file
      raise ValueError(
        f"{where} cannot be read (truncated or corrupted?): "
        f"{type(e).__name__}: {e}"
      ) from e
    problems = []
    for name, target in targets.items():
      if metadata.get(name) is None:
        problems.append(f"{name}: missing from the checkpoint")
        continue
      saved = getattr(metadata[name], "tree", metadata[name])
      lines = _mismatches(_flat(ocp, saved), _flat(ocp, target))
      if lines:
        problems.append(f"{name}:\n" + "\n".join(lines))
    if record is not None:
      lines = _mismatches(
        {f"stage {k}": v for k, v in record.get("stages", {}).items()},
        {f"stage {k}": v for k, v in _stages(opt_state_like).items()},
      )
      if optimizer is not None and record.get("hyperparameters") is not None:
        lines += _mismatches(
          record["hyperparameters"], describe_optimizer(optimizer)
        )
      if lines:
        from bertadam_optax import __version__

        saved_by = record.get("bertadam_optax")
        hint = (
          ""
          if saved_by == __version__
          else f"; this is {__version__}: if only internal function names "
          "differ, restore without optimizer="
        )
        problems.append(
          f"{_OPTIMIZER} (saved by bertadam-optax {saved_by}"
          f"{hint}):\n" + "\n".join(lines)
        )
    if problems:
      raise ValueError(
        f"{where} does not match the tree it is restored into (saved with "
        "a different model or optimizer configuration?):\n"
        + "\n".join(problems)
      )
    try:
      restored = manager.restore(
        step,
        args=ocp.args.Composite(
          **{
            name: ocp.args.StandardRestore(target)
            for name, target in targets.items()
          }
        ),
      )
    except Exception as e:  # orbax raises many types for a damaged file
      raise ValueError(
        f"{where} cannot be read (truncated or corrupted?): "
        f"{type(e).__name__}: {e}"
      ) from e
  return restored["params"], restored["opt_state"]
