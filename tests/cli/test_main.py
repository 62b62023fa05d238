"""Tests of bertadam_optax/cli/main.py: ``list``, ``show``, help and bad input.

The commands run as subprocesses (``python -m bertadam_optax``), as a user
runs them; the many bad-input cases also run in-process through
:func:`main`, the same code path, to keep the file fast.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bertadam_optax.cli import main as cli
from bertadam_optax.schedules import registry


def run_cli(*args, cwd=None):
  return subprocess.run([sys.executable, "-m", "bertadam_optax", *args],
                        capture_output=True, text=True, cwd=cwd, timeout=300,
                        check=False)


def assert_usage_error(result, *fragments):
  """Exit 2, one line on stderr containing the fragments, nothing else."""
  assert result.returncode == 2, result.stderr
  assert result.stdout == ""
  lines = result.stderr.splitlines()
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith("bertadam-optax")
  assert "Traceback" not in result.stderr
  for fragment in fragments:
    assert fragment in lines[0]


def test_list_prints_every_schedule_with_family_and_formula():
  result = run_cli("list")
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].split() == ["NAME", "FAMILY", "FORMULA"]
  rows = {line.split()[0]: line.split(None, 2) for line in lines[1:]}
  assert list(rows) == list(registry.SCHEDULE_REGISTRY)
  for name, (_, family, formula) in rows.items():
    info = registry.schedule_info(name)
    assert family == info.family
    assert formula == info.formula


def test_list_family_filter(capsys):
  assert cli.main(["list", "--family", "deepspeed_runtime"]) == 0
  names = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
  assert names == [n for n, e in registry.SCHEDULE_REGISTRY.items()
                   if e.family == "deepspeed_runtime"]


def _table(stdout):
  """``{label: (step, lr, ratio)}`` from the ``show`` table."""
  rows = {}
  for line in stdout.splitlines():
    match = re.match(r"^\s+([a-z0-9% _]+?)\s+(\d+)\s+(\S+)\s+(\S+)$", line)
    if match and match.group(1) != "point":
      rows[match.group(1)] = (int(match.group(2)), float(match.group(3)),
                              match.group(4))
  return rows


def test_show_warmup_linear_matches_formula():
  result = run_cli("show", "warmup_linear", "--lr", "0.001", "--t-total",
                   "1000", "--warmup", "0.1")
  assert result.returncode == 0, result.stderr
  rows = _table(result.stdout)
  assert {label: step for label, (step, _, _) in rows.items()} == {
      "start": 0, "last warmup step": 99, "warmup end": 100, "25%": 250,
      "50%": 500, "75%": 750, "last step": 999, "t_total": 1000}
  for step, lr, ratio in rows.values():
    # DeepSpeed bing_bert warmup_linear in float64: x/w, then 1 - x.
    x = step / 1000
    expected = 0.001 * (x / 0.1 if x < 0.1 else 1 - x)
    np.testing.assert_allclose(lr, expected, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(float(ratio), expected / 0.001, atol=1e-4)
  assert "lr * (x/w if x < w else 1 - x)" in result.stdout


def test_show_cosine_in_steps(capsys):
  assert cli.main(["show", "transformers.cosine", "--lr", "5e-5",
                   "--t-total", "3000", "--warmup-steps", "300"]) == 0
  rows = _table(capsys.readouterr().out)
  assert rows["warmup end"][0] == 300
  for step, lr, _ in rows.values():
    # transformers' get_cosine_schedule_with_warmup in float64.
    if step < 300:
      expected = 5e-5 * step / 300
    else:
      expected = 5e-5 * 0.5 * (1 + np.cos(np.pi * (step - 300) / 2700))
    np.testing.assert_allclose(lr, expected, rtol=1e-4, atol=1e-10)


def test_show_without_warmup_has_no_boundary(capsys):
  assert cli.main(["show", "transformers.constant"]) == 0
  rows = _table(capsys.readouterr().out)
  assert "warmup end" not in rows
  assert {lr for _, lr, _ in rows.values()} == {1e-3}


@pytest.mark.parametrize("command", ["demo", "plot", "show", "list"])
def test_help_shows_examples(command):
  result = run_cli(command, "--help")
  assert result.returncode == 0
  assert "examples:" in result.stdout
  assert f"bertadam-optax {command}" in result.stdout.split("examples:")[1]


def test_top_level_help_lists_commands(capsys):
  with pytest.raises(SystemExit) as e:
    cli.main(["--help"])
  assert e.value.code == 0
  out = capsys.readouterr().out
  for command in ("demo", "plot", "show", "list"):
    assert command in out
  assert "examples:" in out


def test_unknown_command_subprocess():
  assert_usage_error(run_cli("demoo"), "unknown command 'demoo'",
                     "did you mean 'demo'?")


def test_unknown_schedule_subprocess():
  assert_usage_error(run_cli("show", "warmup_linaer"),
                     "Did you mean 'warmup_linear'?")


def test_no_command_subprocess():
  assert_usage_error(run_cli(), "COMMAND")


@pytest.mark.parametrize("argv,fragments", [
    (["frobnicate"], ["unknown command 'frobnicate'"]),
    (["lst"], ["did you mean 'list'?"]),
    (["show", "cosine"], ["Did you mean 'transformers.cosine'?"]),
    (["plot", "warmup_linear", "WarmupLr"],
     ["Did you mean 'deepspeed_runtime.WarmupLR'?"]),
    (["demo", "--schedule", "transformers.cosin"],
     ["Did you mean 'transformers.cosine'?"]),
    (["demo", "--compare", "warmup_linear", "pretrained_bert.warmup_linaer"],
     ["Did you mean 'pretrained_bert.warmup_linear'?"]),
    (["show"], ["required", "NAME"]),
    (["plot"], ["required", "NAME"]),
    (["show", "warmup_linear", "--t-total", "0"],
     ["--t-total", "out of range"]),
    (["show", "warmup_linear", "--warmup", "1.5"],
     ["--warmup", "out of range"]),
    (["show", "warmup_linear", "--lr", "-1"], ["--lr", "out of range"]),
    (["show", "warmup_linear", "--lr", "abc"], ["--lr", "'abc'"]),
    (["show", "transformers.linear", "--warmup-steps", "2000"],
     ["--warmup-steps", "out of range"]),
    (["show", "warmup_linear", "--warmup", "0.1", "--warmup-steps", "5"],
     ["not allowed with"]),
    (["show", "warmup_linear_decay_exp"], ["requires --decay-rate"]),
    (["show", "warmup_linear_decay_exp", "--decay-rate", "0.5"],
     ["requires --decay-steps"]),
    (["show", "transformers.cosine_with_min_lr"], ["requires --min-lr"]),
    (["show", "transformers.cosine", "--min-lr", "1"], ["min_lr=1.0",
                                                        "out of range"]),
    (["show", "transformers.cosine", "--set", "bogus"], ["KEY=VALUE"]),
    (["show", "transformers.cosine", "--set", "no_such=1"], ["no_such"]),
    (["demo", "--steps", "0"], ["--steps", "out of range"]),
    (["demo", "--batch-size", "-4"], ["--batch-size"]),
    (["demo", "--model", "huge"], ["--model", "invalid choice"]),
    (["list", "--family", "keras"], ["--family", "invalid choice"]),
    (["show", "warmup_linear", "--bogus"], ["unrecognized arguments"]),
])
def test_bad_input_is_one_line_exit_2(argv, fragments, capsys):
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.splitlines()
  assert len(lines) == 1, captured.err
  for fragment in fragments:
    assert fragment in lines[0]


def test_unwritable_plot_output_leaves_nothing(tmp_path):
  blocker = tmp_path / "a-file"
  blocker.write_text("not a directory")
  result = run_cli("plot", "warmup_linear", "-o",
                   str(blocker / "sub" / "x.png"))
  assert_usage_error(result, "-o")
  assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_unwritable_demo_out_leaves_nothing(tmp_path):
  blocker = tmp_path / "a-file"
  blocker.write_text("not a directory")
  result = run_cli("demo", "--out", str(blocker / "out"), "--steps", "2",
                   "--model", "micro")
  assert_usage_error(result, "--out")
  assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_list_and_show_import_no_cli_extra():
  code = ("import sys; from bertadam_optax.cli.main import main; "
          "main(['list']); main(['show', 'warmup_linear']); "
          "import bertadam_optax; "
          "print(sorted(m for m in ('flax', 'matplotlib', 'tqdm', 'orbax') "
          "if m in sys.modules))")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, timeout=300, check=True)
  assert result.stdout.splitlines()[-1] == "[]"
