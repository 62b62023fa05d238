"""Tests of bertadam_optax/cli/main.py: ``list``, ``show``, help and bad input.

The commands run as subprocesses (``python -m bertadam_optax``), as a user
runs them; the many bad-input cases also run in-process through
:func:`main`, the same code path, to keep the file fast.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from bertadam_optax.cli import bench
from bertadam_optax.cli import main as cli
from bertadam_optax.schedules import registry
from tests.references import require


def run_cli(*args, cwd=None):
  return subprocess.run(
    [sys.executable, "-m", "bertadam_optax", *args],
    capture_output=True,
    text=True,
    cwd=cwd,
    timeout=300,
    check=False,
  )


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
  assert names == [
    n
    for n, e in registry.SCHEDULE_REGISTRY.items()
    if e.family == "deepspeed_runtime"
  ]


def _table(stdout):
  """``{label: (step, lr, ratio)}`` from the ``show`` table."""
  rows = {}
  for line in stdout.splitlines():
    match = re.match(r"^\s+([a-z0-9% _]+?)\s+(\d+)\s+(\S+)\s+(\S+)$", line)
    if match and match.group(1) != "point":
      rows[match.group(1)] = (
        int(match.group(2)),
        float(match.group(3)),
        match.group(4),
      )
  return rows


def test_show_warmup_linear_matches_formula():
  result = run_cli(
    "show",
    "warmup_linear",
    "--lr",
    "0.001",
    "--t-total",
    "1000",
    "--warmup",
    "0.1",
  )
  assert result.returncode == 0, result.stderr
  rows = _table(result.stdout)
  assert {label: step for label, (step, _, _) in rows.items()} == {
    "start": 0,
    "last warmup step": 99,
    "warmup end": 100,
    "25%": 250,
    "50%": 500,
    "75%": 750,
    "last step": 999,
    "t_total": 1000,
  }
  for step, lr, ratio in rows.values():
    # DeepSpeed bing_bert warmup_linear in float64: x/w, then 1 - x.
    x = step / 1000
    expected = 0.001 * (x / 0.1 if x < 0.1 else 1 - x)
    np.testing.assert_allclose(lr, expected, rtol=1e-4, atol=1e-12)
    np.testing.assert_allclose(float(ratio), expected / 0.001, atol=1e-4)
  assert "lr * (x/w if x < w else 1 - x)" in result.stdout


def test_show_cosine_in_steps(capsys):
  assert (
    cli.main(
      [
        "show",
        "transformers.cosine",
        "--lr",
        "5e-5",
        "--t-total",
        "3000",
        "--warmup-steps",
        "300",
      ]
    )
    == 0
  )
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


@pytest.mark.parametrize("command", ["demo", "plot", "show", "list", "bench"])
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
  assert_usage_error(
    run_cli("demoo"), "unknown command 'demoo'", "did you mean 'demo'?"
  )


def test_unknown_schedule_subprocess():
  assert_usage_error(
    run_cli("show", "warmup_linaer"), "Did you mean 'warmup_linear'?"
  )


def test_no_command_subprocess():
  assert_usage_error(run_cli(), "COMMAND")


@pytest.mark.parametrize(
  "argv,fragments",
  [
    (["frobnicate"], ["unknown command 'frobnicate'"]),
    (["lst"], ["did you mean 'list'?"]),
    (["show", "cosine"], ["Did you mean 'transformers.cosine'?"]),
    (
      ["plot", "warmup_linear", "WarmupLr"],
      ["Did you mean 'deepspeed_runtime.WarmupLR'?"],
    ),
    (
      ["demo", "--schedule", "transformers.cosin"],
      ["Did you mean 'transformers.cosine'?"],
    ),
    (
      ["demo", "--compare", "warmup_linear", "pretrained_bert.warmup_linaer"],
      ["Did you mean 'pretrained_bert.warmup_linear'?"],
    ),
    (["show"], ["required", "NAME"]),
    (["plot"], ["required", "NAME"]),
    (
      ["show", "warmup_linear", "--t-total", "0"],
      ["--t-total", "out of range"],
    ),
    (
      ["show", "warmup_linear", "--warmup", "1.5"],
      ["--warmup", "out of range"],
    ),
    (["show", "warmup_linear", "--lr", "-1"], ["--lr", "out of range"]),
    (["show", "warmup_linear", "--lr", "abc"], ["--lr", "'abc'"]),
    (
      ["show", "transformers.linear", "--warmup-steps", "2000"],
      ["--warmup-steps", "out of range"],
    ),
    (
      ["show", "warmup_linear", "--warmup", "0.1", "--warmup-steps", "5"],
      ["not allowed with"],
    ),
    (["show", "warmup_linear_decay_exp"], ["requires --decay-rate"]),
    (
      ["show", "warmup_linear_decay_exp", "--decay-rate", "0.5"],
      ["requires --decay-steps"],
    ),
    (["show", "transformers.cosine_with_min_lr"], ["requires --min-lr"]),
    (
      ["show", "transformers.cosine", "--min-lr", "1"],
      ["min_lr=1.0", "out of range"],
    ),
    (["show", "transformers.cosine", "--set", "bogus"], ["KEY=VALUE"]),
    (["show", "transformers.cosine", "--set", "no_such=1"], ["no_such"]),
    (["demo", "--steps", "0"], ["--steps", "out of range"]),
    (["demo", "--batch-size", "-4"], ["--batch-size"]),
    (["demo", "--model", "huge"], ["--model", "invalid choice"]),
    (["list", "--family", "keras"], ["--family", "invalid choice"]),
    (["show", "warmup_linear", "--bogus"], ["unrecognized arguments"]),
  ],
)
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
  result = run_cli(
    "plot", "warmup_linear", "-o", str(blocker / "sub" / "x.png")
  )
  assert_usage_error(result, "-o")
  assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_unwritable_demo_out_leaves_nothing(tmp_path):
  blocker = tmp_path / "a-file"
  blocker.write_text("not a directory")
  result = run_cli(
    "demo", "--out", str(blocker / "out"), "--steps", "2", "--model", "micro"
  )
  assert_usage_error(result, "--out")
  assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_list_and_show_import_no_cli_extra():
  code = (
    "import sys; from bertadam_optax.cli.main import main; "
    "main(['list']); main(['show', 'warmup_linear']); "
    "import bertadam_optax; "
    "print(sorted(m for m in ('flax', 'matplotlib', 'tqdm', 'orbax') "
    "if m in sys.modules))"
  )
  result = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    timeout=300,
    check=True,
  )
  assert result.stdout.splitlines()[-1] == "[]"


# --------------------------------------------------------------------------
# show: its cost does not grow with t_total.


def test_show_evaluates_only_the_printed_steps_at_the_int32_limit():
  # Under a 2 GiB address-space limit: evaluating every one of 2**31 steps
  # needs ~17 GB (int32 steps and float32 values) and fails; the eight
  # printed steps need what `show --t-total 1000` needs.
  total = 2**31 - 1
  code = (
    "import resource, subprocess, sys\n"
    "def limit():\n"
    "  resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    "r = subprocess.run([sys.executable, '-m', 'bertadam_optax', 'show', "
    f"'warmup_linear', '--t-total', '{total}', '--warmup', '0.25'], "
    "preexec_fn=limit, capture_output=True, text=True, timeout=300)\n"
    "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr)\n"
    "sys.exit(r.returncode)\n"
  )
  result = subprocess.run(
    [sys.executable, "-c", code],
    capture_output=True,
    text=True,
    timeout=400,
    check=False,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  rows = _table(result.stdout)
  assert {label: step for label, (step, _, _) in rows.items()} == {
    "start": 0,
    "last warmup step": 536870911,
    "warmup end": 536870912,
    "50%": 1073741823,
    "75%": 1610612735,
    "last step": total - 1,
    "t_total": total,
  }
  for label, (step, lr, _) in rows.items():
    if label in ("last warmup step", "warmup end"):
      # float32 s / T cannot tell these two steps apart at this scale (the
      # schedule's own precision, not the command's): in range is all.
      assert 0.00075 <= lr <= 0.001
      continue
    x = step / total  # bing_bert warmup_linear in float64
    expected = 0.001 * (x / 0.25 if x < 0.25 else 1 - x)
    np.testing.assert_allclose(lr, expected, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(
  "argv,fragments",
  [
    (
      ["show", "warmup_linear", "--t-total", "3000000000"],
      ["--t-total", "3000000000", "[1, 2147483647]"],
    ),
    (
      ["show", "warmup_linear", "--set", "t_total=5"],
      ["--set", "t_total", "--t-total"],
    ),
    (["show", "warmup_linear", "--set", "lr=1"], ["--set", "--lr"]),
    (
      ["show", "warmup_exp_decay_poly", "--set", "degree=nan"],
      ["--set", "degree=nan", "NaN"],
    ),
    (
      ["show", "warmup_exp_decay_poly", "--set", "degree=-1"],
      ["warmup_exp_decay_poly", "degree=-1", "out of range"],
    ),
    (
      ["show", "warmup_exp_decay_poly", "--set", "degree='x'"],
      ["warmup_exp_decay_poly", "degree='x'"],
    ),
    (["show", "warmup_linear", "--lr", "nan"], ["--lr", "nan", "finite"]),
    (["show", "warmup_linear", "--lr", "1e400"], ["--lr", "finite"]),
  ],
)
def test_bad_schedule_values_are_one_line(argv, fragments, capsys):
  assert cli.main(argv) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  lines = captured.err.splitlines()
  assert len(lines) == 1, captured.err
  for fragment in fragments:
    assert fragment in lines[0]


# --------------------------------------------------------------------------
# bench: the harness is benchmarks/optimizer_step.py, loaded when it runs.


def test_harness_is_not_in_the_package():
  package = os.path.dirname(os.path.dirname(cli.__file__))
  assert not os.path.exists(os.path.join(package, "_bench.py"))
  assert os.path.isfile(bench.harness_path())
  assert os.path.basename(os.path.dirname(bench.harness_path())) == (
    "benchmarks"
  )


def test_bench_flags_are_checked_before_the_harness_loads(capsys):
  sys.modules.pop(bench.HARNESS_MODULE, None)
  for argv, fragment in [
    (["bench", "--rounds", "0"], "--rounds"),
    (["bench", "--steps", "-1"], "--steps"),
    (["bench", "--out", "/proc/r.json"], "--out"),
  ]:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert fragment in captured.err
  assert bench.HARNESS_MODULE not in sys.modules


def test_bench_from_an_installed_wheel_is_one_line(
  monkeypatch, tmp_path, capsys
):
  monkeypatch.delitem(sys.modules, bench.HARNESS_MODULE, raising=False)
  monkeypatch.setattr(
    bench,
    "harness_path",
    lambda: str(tmp_path / "benchmarks" / "optimizer_step.py"),
  )
  assert cli.main(["bench", "--trees", "tiny"]) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert len(captured.err.splitlines()) == 1
  assert "source checkout" in captured.err


def test_bench_unknown_tree_subprocess():
  assert_usage_error(
    run_cli("bench", "--trees", "tiny,huge"), "--trees", "'huge'"
  )


def test_harness_shapes_are_bert_for_pretraining():
  torch = require("torch")
  modeling = require("pytorch_pretrained_bert.modeling")
  harness = bench.load_harness()
  config = modeling.BertConfig(
    vocab_size_or_config_json_file=1000,
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=256,
    max_position_embeddings=64,
  )
  torch.manual_seed(0)
  model = modeling.BertForPreTraining(config)
  # named_parameters() lists a tied tensor once: the decoder weight is the
  # word embedding.
  expected = [
    (name.removeprefix("bert."), tuple(p.shape))
    for name, p in model.named_parameters()
  ]
  assert harness.TREES["tiny"]() == expected
  assert sorted(harness.TREES) == ["base", "large", "small", "tiny"]


def test_bench_tiny_run_writes_tables_and_json(tmp_path, capsys):
  out = tmp_path / "results" / "r.json"
  assert (
    cli.main(
      [
        "bench",
        "--trees",
        "tiny",
        "--rounds",
        "1",
        "--steps",
        "1",
        "--no-torch",
        "--out",
        str(out),
      ]
    )
    == 0
  )
  captured = capsys.readouterr()
  assert captured.err == ""
  report = json.loads(out.read_text())
  assert os.listdir(out.parent) == ["r.json"]
  assert (report["rounds"], report["steps_per_round"]) == (1, 1)
  (tree,) = report["trees"]
  harness = bench.load_harness()
  shapes = harness.TREES["tiny"]()
  assert tree["tree"] == "tiny"
  assert tree["tensors"] == len(shapes)
  assert tree["params"] == sum(int(np.prod(s)) for _, s in shapes)
  names = [r["name"] for r in tree["results"]]
  assert names == [
    "flat_bertadam (packed params)",
    "bertadam",
    "bertadam(clip='global')",
    "optax clip_by_global_norm+adamw",
  ]
  for r in tree["results"]:
    assert len(r["times_s"]) == 1
    assert r["framework"] == "jax"
    # The compiled step is float32 throughout.
    assert r["structure"]["f64_ops"] == 0
  for name in names:
    assert f"| {name} |" in captured.out
  assert f"wrote {out}" in captured.out


def test_atomic_output_leaves_the_old_file_or_nothing(tmp_path):
  target = tmp_path / "results.json"
  target.write_text("old")
  with pytest.raises(RuntimeError), cli.atomic_output(target) as f:
    f.write("half of the ne")
    raise RuntimeError("killed")
  assert os.listdir(tmp_path) == ["results.json"]
  assert target.read_text() == "old"
  new = tmp_path / "sub" / "new.json"
  with cli.atomic_output(new) as f:
    f.write("{}")
  assert new.read_text() == "{}"
  assert os.listdir(new.parent) == ["new.json"]
  assert os.stat(new).st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask
