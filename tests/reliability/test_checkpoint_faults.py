"""Checkpoint faults: every way a save or restore could lose a step silently.

Each case is a fault a user or a crash produces (re-saving a step, a step
below the latest, steps that are not integers >= 0, paths orbax cannot read
back, a file or a read-only folder in the way, a save killed with SIGKILL,
truncated and corrupted files, another optimizer configuration). Each must be
refused with a message naming the cause before anything is written, or must
round-trip exactly; a failed save must leave nothing behind and no thread
that keeps the process alive.
"""

from __future__ import annotations

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time

import chex
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import bertadam
from tests.references import require

require("orbax.checkpoint")
# pylint: disable=g-import-not-at-top,wrong-import-position
from bertadam_optax.checkpoint import restore_checkpoint
from bertadam_optax.checkpoint import save_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[2]
TX = bertadam(1e-2, warmup=0.1, t_total=20)


def params_of(value):
  return {
    "dense": {
      "kernel": jnp.full((4, 2), value, jnp.float32),
      "bias": jnp.full((2,), value, jnp.float32),
    }
  }


def save(directory, step, value=1.0, **kwargs):
  params = params_of(value)
  save_checkpoint(directory, step, params, TX.init(params), **kwargs)


def restore(directory, step=None, **kwargs):
  like = params_of(0.0)
  return restore_checkpoint(directory, step, like, TX.init(like), **kwargs)


def listing(directory):
  return sorted(p.name for p in pathlib.Path(directory).iterdir())


# --- steps -------------------------------------------------------------------


def test_an_existing_step_is_refused_and_kept(tmp_path):
  save(tmp_path, 5, 1.0)
  with pytest.raises(ValueError, match="step 5 exists .*overwrite=True"):
    save(tmp_path, 5, 2.0)
  chex.assert_trees_all_equal(restore(tmp_path, 5)[0], params_of(1.0))


def test_a_step_below_the_latest_is_refused(tmp_path):
  save(tmp_path, 5)
  with pytest.raises(ValueError, match="step 3 is below the latest step 5"):
    save(tmp_path, 3)
  assert listing(tmp_path) == ["5"]


def test_overwrite_replaces_and_saves_below_the_latest(tmp_path):
  save(tmp_path, 5, 1.0)
  save(tmp_path, 5, 2.0, overwrite=True)
  save(tmp_path, 3, 3.0, overwrite=True)
  assert listing(tmp_path) == ["3", "5"]
  chex.assert_trees_all_equal(restore(tmp_path, 5)[0], params_of(2.0))
  chex.assert_trees_all_equal(restore(tmp_path, 3)[0], params_of(3.0))
  chex.assert_trees_all_equal(restore(tmp_path)[0], params_of(2.0))


def test_a_failed_overwrite_puts_the_old_step_back(tmp_path):
  save(tmp_path, 5, 1.0)
  params = {"bad": np.array([1], "datetime64[s]")}
  with pytest.raises(ValueError, match="datetime64"):  # orbax's own error
    save_checkpoint(
      tmp_path, 5, params, TX.init(params_of(1.0)), overwrite=True
    )
  assert listing(tmp_path) == ["5"]
  chex.assert_trees_all_equal(restore(tmp_path, 5)[0], params_of(1.0))


BAD_STEPS = [
  -1,
  1.5,
  True,
  False,
  "3",
  None,
  float("nan"),
  float("inf"),
  np.int64(-2),
  np.float32(2.5),
  jnp.asarray(-1),
  np.array([1, 2]),
  1 + 0j,
  b"1",
]


def _named(step, message):
  # _validation.check_int shows an integral out-of-range value as an int.
  shown = [f"step={step!r}"]
  if np.ndim(step) == 0 and not isinstance(step, (str, bytes, complex)):
    shown.append(f"step={step!s}")
  return any(s in message for s in shown)


@pytest.mark.parametrize("step", BAD_STEPS, ids=repr)
def test_a_bad_step_is_refused_before_anything_is_written(tmp_path, step):
  directory = tmp_path / "ckpt"
  with pytest.raises(ValueError, match=r"step=") as e:
    save(directory, step)
  assert _named(step, str(e.value))
  assert not directory.exists()
  save(directory, 1)
  if step is None:  # for a restore, None means the latest step
    chex.assert_trees_all_equal(restore(directory, step)[0], params_of(1.0))
    return
  with pytest.raises(ValueError, match=r"step=") as e:
    restore(directory, step)
  assert _named(step, str(e.value))


@pytest.mark.parametrize(
  "step", [0, 7, np.int64(9), np.int32(11), 12.0, jnp.asarray(13)], ids=repr
)
def test_a_good_step_round_trips(tmp_path, step):
  save(tmp_path, step, 4.0)
  assert listing(tmp_path) == [str(int(step))]
  chex.assert_trees_all_equal(restore(tmp_path, step)[0], params_of(4.0))


# --- paths -------------------------------------------------------------------

# Orbax reads back with glob patterns built from the path and TensorStore
# rejects backslashes: these names saved but could not be restored.
UNSAFE_NAMES = [
  "run[0]",
  "r[ab]",
  "[!a]",
  "a]b",
  "x[",
  "a*",
  "a**",
  "a?",
  "a\\b",
  "\\x",
  "p[1]/sub",
]
# Every other punctuation character round-trips.
SAFE_NAMES = [
  "a b",
  "a#b",
  "a%b",
  "a:b",
  "a'b",
  'a"b',
  "a~b",
  "a$b",
  "a!b",
  "a,b",
  "a;b",
  "a=b",
  "a&b",
  "a@b",
  "a^b",
  "a|b",
  "a<b>",
  "a{b,c}",
  "a(b)",
  "a+b",
  "é",
  "a\tb",
  "a-b_c.d",
  "x/./y",
]


@pytest.mark.parametrize("name", UNSAFE_NAMES)
def test_a_path_orbax_cannot_read_back_is_refused(tmp_path, name):
  with pytest.raises(ValueError, match="glob patterns") as e:
    save(tmp_path / name, 1)
  assert repr(str(tmp_path / name))[1:-1][:20] in str(e.value)
  assert listing(tmp_path) == []
  with pytest.raises(ValueError, match="glob patterns"):
    restore(tmp_path / name)


@pytest.mark.parametrize("name", SAFE_NAMES)
def test_an_odd_but_safe_path_round_trips(tmp_path, name):
  save(tmp_path / name, 2, 5.0)
  chex.assert_trees_all_equal(restore(tmp_path / name)[0], params_of(5.0))


def test_a_file_in_the_way_is_refused(tmp_path):
  (tmp_path / "file").write_text("not a directory")
  with pytest.raises(ValueError, match="is a file, not a directory"):
    save(tmp_path / "file", 1)
  with pytest.raises(ValueError, match="'.*file' is a file"):
    save(tmp_path / "file" / "sub", 1)
  with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
    restore(tmp_path / "file")
  assert listing(tmp_path) == ["file"]


def test_a_directory_argument_that_is_not_a_path_is_refused(tmp_path):
  for value in (None, 3, b"/tmp/x", True):
    with pytest.raises(ValueError, match="is not a path"):
      save(value, 1)


def _make_read_only(path):
  path.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
  if os.access(path, os.W_OK):  # root ignores permission bits
    subprocess.run(["chattr", "+i", str(path)], check=True)
  assert not os.access(path, os.W_OK), "could not make a read-only folder"


def _make_writable(path):
  subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
  path.chmod(stat.S_IRWXU)


def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
  folder = tmp_path / "ro"
  folder.mkdir()
  _make_read_only(folder)
  try:
    with pytest.raises(PermissionError, match="read-only"):
      save(folder, 1)
    with pytest.raises(PermissionError, match="read-only"):
      save(folder / "sub" / "deeper", 1)
    assert listing(folder) == []
  finally:
    _make_writable(folder)


def test_restore_creates_nothing(tmp_path):
  with pytest.raises(FileNotFoundError):
    restore(tmp_path / "missing")
  assert listing(tmp_path) == []
  save(tmp_path / "ckpt", 1)
  before = sorted(str(p) for p in (tmp_path / "ckpt").rglob("*"))
  restore(tmp_path / "ckpt")
  assert sorted(str(p) for p in (tmp_path / "ckpt").rglob("*")) == before


# --- failures in a subprocess: no threads left, no temporaries ----------------

_FAILING_SAVE = """
import sys
import numpy as np
from tests.reliability import test_checkpoint_faults as t
kind, directory = sys.argv[1], sys.argv[2]
try:
  if kind == "file":
    t.save(directory, 1)
  else:
    params = {"bad": np.array([1], "datetime64[s]")}
    t.save_checkpoint(directory, 1, params, t.TX.init(t.params_of(1.0)))
except Exception as e:
  print("refused:", type(e).__name__)
"""


def _python(code, *args, timeout):
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT), env.get("PYTHONPATH")])
  )
  return subprocess.run(
    [sys.executable, "-c", code, *map(str, args)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=timeout,
    check=False,
  )


@pytest.mark.parametrize("kind", ["file", "orbax"])
def test_a_failed_save_leaves_no_threads_and_no_temporaries(tmp_path, kind):
  directory = tmp_path / "ckpt"
  if kind == "file":
    directory.write_text("in the way")
  start = time.monotonic()
  # Before the fix the process hung 300 s at exit on orbax's threads.
  result = _python(_FAILING_SAVE, kind, directory, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "refused:" in result.stdout
  assert time.monotonic() - start < 100
  if kind == "orbax":
    assert listing(directory) == []


_KILLED_SAVE = """
import sys
import jax.numpy as jnp
from tests.reliability import test_checkpoint_faults as t
directory = sys.argv[1]
t.save(directory, 1, 1.0)
big = {"w%d" % i: jnp.full((4096, 4096), 2.0, jnp.float32) for i in range(6)}
print("saving", flush=True)
t.save_checkpoint(directory, 2, big, t.TX.init(big))
print("saved", flush=True)
"""


def test_kill_9_during_a_save_keeps_the_previous_step(tmp_path):
  directory = tmp_path / "ckpt"
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT), env.get("PYTHONPATH")])
  )
  proc = subprocess.Popen(
    [sys.executable, "-c", _KILLED_SAVE, str(directory)],
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.DEVNULL,
    text=True,
  )
  try:
    assert proc.stdout.readline().strip() == "saving"
    deadline = time.monotonic() + 120
    # Kill once the step is being written (its temporary directory exists).
    while time.monotonic() < deadline and not any(
      n.startswith("2.") for n in listing(directory)
    ):
      time.sleep(0.01)
    assert any(n.startswith("2.") for n in listing(directory)), (
      "the save finished before it could be killed"
    )
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.kill()
    proc.wait(timeout=60)
  assert proc.returncode == -signal.SIGKILL
  assert "2" not in listing(directory)
  params, opt_state = restore(directory)
  chex.assert_trees_all_equal(params, params_of(1.0))
  assert int(opt_state[1].count) == 0
  # The next save of step 2 works and removes the dead one's temporaries.
  save(directory, 2, 3.0)
  assert listing(directory) == ["1", "2"]
  chex.assert_trees_all_equal(restore(directory)[0], params_of(3.0))


# --- damaged files -------------------------------------------------------------


@pytest.mark.parametrize(
  "name, damage",
  [
    ("params/_METADATA", b"garbage{"),
    ("params/_METADATA", b""),
    ("params/_METADATA", b"\xff\xfe\x00binary"),
    ("opt_state/_METADATA", b'{"tree_metadata": '),
    ("_CHECKPOINT_METADATA", b"{not json"),
    ("optimizer/metadata", b"[1, 2"),
  ],
)
def test_a_corrupted_metadata_file_is_named(tmp_path, name, damage):
  save(tmp_path, 1)
  (tmp_path / "1" / name).write_bytes(damage)
  with pytest.raises(ValueError, match="truncated or corrupted") as e:
    restore(tmp_path, 1)
  assert str(tmp_path / "1" / name) in str(e.value)


def test_truncated_array_data_is_a_value_error(tmp_path):
  save(tmp_path, 1)
  data = [
    p
    for p in (tmp_path / "1" / "params").rglob("*")
    if p.is_file() and p.parent.name == "d"
  ]
  assert data
  for p in data:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 3])
  with pytest.raises(
    ValueError,
    match=r"step 1 in .* cannot be read "
    r"\(truncated or corrupted\?\)",
  ):
    restore(tmp_path, 1)


# --- another optimizer configuration ----------------------------------------------

OTHER_OPTIMIZERS = {
  "weight_decay": bertadam(1e-2, warmup=0.1, t_total=20, weight_decay=0.02),
  "b2": bertadam(1e-2, warmup=0.1, t_total=20, b2=0.98),
  "lr": bertadam(2e-2, warmup=0.1, t_total=20),
  "schedule": bertadam(1e-2, warmup=0.1, t_total=20, schedule="warmup_cosine"),
  "t_total": bertadam(1e-2, warmup=0.1, t_total=40),
  "max_grad_norm": bertadam(1e-2, warmup=0.1, t_total=20, max_grad_norm=2.0),
  "adam": optax.chain(
    optax.identity(),
    optax.scale_by_adam(eps=1e-6),
    optax.identity(),
    optax.scale_by_learning_rate(1e-2),
  ),
}


@pytest.mark.parametrize("name", sorted(OTHER_OPTIMIZERS))
def test_another_optimizer_configuration_is_refused(tmp_path, name):
  save(tmp_path, 1, optimizer=TX)
  other = OTHER_OPTIMIZERS[name]
  like = params_of(0.0)
  with pytest.raises(
    ValueError,
    match=r"(?s)does not match.*optimizer "
    r"\(saved by bertadam-optax.*(differs|only in)",
  ):
    restore_checkpoint(tmp_path, 1, like, other.init(like), optimizer=other)


def test_the_same_configuration_built_again_restores(tmp_path):
  save(tmp_path, 1, 6.0, optimizer=TX)
  again = bertadam(np.float32(1e-2), warmup=0.1, t_total=20)
  like = params_of(0.0)
  params, _ = restore_checkpoint(
    tmp_path, 1, like, again.init(like), optimizer=again
  )
  chex.assert_trees_all_equal(params, params_of(6.0))


@pytest.mark.parametrize(
  "saved, other, line",
  [
    (
      optax.MultiSteps(TX, 2),
      optax.MultiSteps(TX, 4),
      "differs: _every_k_schedule.every_k_schedule (checkpoint 2, target 4)",
    ),
    (
      optax.inject_hyperparams(optax.adamw)(
        learning_rate=optax.linear_schedule(0.0, 1e-3, 10)
      ),
      optax.inject_hyperparams(optax.adamw)(
        learning_rate=optax.linear_schedule(0.0, 1e-3, 20)
      ),
      "differs: sched_hps.learning_rate.schedule_fn.transition_steps "
      "(checkpoint 10, target 20)",
    ),
  ],
  ids=["MultiSteps every_k", "injected schedule"],
)
def test_wrapped_optimizers_are_compared_inside(tmp_path, saved, other, line):
  params = params_of(1.0)
  save_checkpoint(tmp_path, 1, params, saved.init(params), optimizer=saved)
  chex.assert_trees_all_equal_structs(saved.init(params), other.init(params))
  with pytest.raises(ValueError, match="does not match") as e:
    restore_checkpoint(tmp_path, 1, params, other.init(params), optimizer=other)
  assert line in str(e.value)
