"""Reliability of the ``bertadam-optax`` command line under bad input.

A matrix of every command (demo, plot, show, list, port, bench and the
top level) against bad options and inputs: missing files, directories,
binary and malformed files, JSON nested 100,000 levels deep, configs of the
wrong shape, bad numbers (text, NaN, infinities, out of range, beyond int32),
unknown schedule names, output paths that cannot be written. Each case must
end the same way: exit status 2, exactly one line on stderr that starts with
the program name and names the option or file, nothing on stdout, no
traceback, and nothing left in the output folder.

Cases run in-process through :func:`bertadam_optax.cli.main.main` (the
code path of the console script, fast); a sample also runs as
``python -m bertadam_optax`` subprocesses, where interpreter and library
output on stderr would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bertadam_optax.cli import main as cli

PROG = "bertadam-optax"

# An output path no user can write, root included (tests may run as root,
# for whom a chmod'ed folder is writable).
UNWRITABLE = "/proc/bertadam-optax-test"

GOOD_DS_CONFIG = {"optimizer": {"type": "Adam", "params": {"lr": 1e-3}}}


def _files(root):
  """The input files of the matrix, by name, under ``root``."""
  files = {
    "good.json": json.dumps(GOOD_DS_CONFIG),
    "empty.json": "",
    "truncated.json": '{"optimizer": {"type": "Adam", ',
    "not-json.json": "optimizer: Adam\n",
    "list.json": "[1, 2, 3]",
    "number.json": "42",
    "deep.json": "[" * 100_000 + "]" * 100_000,
    "deep-object.json": '{"a": ' * 100_000 + "1" + "}" * 100_000,
    "scheduler-string.json": json.dumps(
      {**GOOD_DS_CONFIG, "scheduler": "WarmupLR"}
    ),
    "scheduler-params-string.json": json.dumps(
      {**GOOD_DS_CONFIG, "scheduler": {"type": "WarmupLR", "params": "x"}}
    ),
    "optimizer-string.json": json.dumps({"optimizer": "Adam"}),
    "params-string.json": json.dumps(
      {"optimizer": {"type": "Adam", "params": "x"}}
    ),
    "max-steps-string.json": json.dumps(
      {"learning_rate": 1e-4, "max_steps": "100"}
    ),
    "lr-string.json": json.dumps(
      {"optimizer": {"type": "Adam", "params": {"lr": "1e-3"}}}
    ),
    "lr-nan.json": '{"optimizer": {"type": "Adam", "params": {"lr": NaN}}}',
    "unknown-optimizer.json": json.dumps({"optimizer": {"type": "Sgdd"}}),
    "neither.json": json.dumps({"hello": 1}),
  }
  for name, text in files.items():
    (root / name).write_text(text)
  (root / "binary.json").write_bytes(b"\x00\xff\xfe\x89PNG\r\n")
  (root / "latin1.json").write_bytes('{"optimizer": "\xe9"}'.encode("latin-1"))
  (root / "a-directory").mkdir()
  (root / "a-file").write_text("in the way")


# (id, argv with {in}/{out} for the input and output folders, fragments that
# the one stderr line must contain).
CASES = [
  # Top level.
  ("no-command", [], ["COMMAND"]),
  ("unknown-command", ["frobnicate"], ["frobnicate"]),
  ("unknown-flag", ["--bogus"], ["--bogus"]),
  # list.
  ("list-family", ["list", "--family", "keras"], ["--family"]),
  ("list-extra", ["list", "extra"], ["extra"]),
  # show: names.
  ("show-unknown", ["show", "warmup_linaer"], ["warmup_linaer"]),
  ("show-empty-name", ["show", ""], ["''"]),
  ("show-missing-name", ["show"], ["NAME"]),
  # show: numbers.
  *[
    (
      f"show-t-total-{v}",
      ["show", "warmup_linear", "--t-total", v],
      ["--t-total"],
    )
    for v in (
      "0",
      "-5",
      "1.5",
      "nan",
      "inf",
      "abc",
      "",
      "3000000000",
      "2147483648",
      "1e9",
    )
  ],
  *[
    (f"show-lr-{v}", ["show", "warmup_linear", "--lr", v], ["--lr"])
    for v in ("nan", "inf", "-inf", "-1", "1e400", "abc", "")
  ],
  *[
    (f"show-warmup-{v}", ["show", "warmup_linear", "--warmup", v], ["--warmup"])
    for v in ("1", "1.5", "-0.5", "nan", "inf", "x")
  ],
  *[
    (
      f"show-warmup-steps-{v}",
      ["show", "transformers.linear", "--warmup-steps", v],
      ["--warmup-steps"],
    )
    for v in ("-1", "1000", "5000", "1.5", "nan", "3000000000")
  ],
  *[
    (
      f"show-min-lr-{v}",
      ["show", "transformers.cosine_with_min_lr", "--min-lr", v],
      ["--min-lr"],
    )
    for v in ("-1", "nan", "inf")
  ],
  (
    "show-min-lr-above-lr",
    ["show", "transformers.cosine_with_min_lr", "--min-lr", "1"],
    ["min_lr"],
  ),
  *[
    (
      f"show-decay-rate-{v}",
      [
        "show",
        "warmup_linear_decay_exp",
        "--decay-rate",
        v,
        "--decay-steps",
        "10",
      ],
      ["--decay-rate"],
    )
    for v in ("-1", "nan", "inf")
  ],
  *[
    (
      f"show-decay-steps-{v}",
      [
        "show",
        "warmup_linear_decay_exp",
        "--decay-rate",
        "0.5",
        "--decay-steps",
        v,
      ],
      ["--decay-steps"],
    )
    for v in ("-1", "nan", "0.5")
  ],
  (
    "show-requires-decay-rate",
    ["show", "warmup_linear_decay_exp"],
    ["--decay-rate"],
  ),
  (
    "show-warmup-and-steps",
    ["show", "warmup_linear", "--warmup", "0.1", "--warmup-steps", "5"],
    ["--warmup"],
  ),
  # show: --set.
  *[
    (
      f"show-set-{kv}",
      ["show", "warmup_exp_decay_poly", "--set", kv],
      [fragment],
    )
    for kv, fragment in (
      ("t_total=5", "--t-total"),
      ("lr=1", "--lr"),
      ("warmup=0.1", "--warmup"),
      ("warmup_steps=3", "--warmup-steps"),
      ("min_lr=0", "--min-lr"),
      ("decay_rate=1", "--decay-rate"),
      ("decay_steps=1", "--decay-steps"),
      ("degree=nan", "degree"),
      ("degree=NaN", "degree"),
      ("degree=-1", "degree"),
      ("degree='x'", "degree"),
      ("degree={}", "degree"),
      ("degree=[1, 2]", "degree"),
      ("no_such=1", "no_such"),
      ("bogus", "KEY=VALUE"),
      ("=1", "KEY=VALUE"),
      ("1x=2", "KEY=VALUE"),
    )
  ],
  ("show-unknown-flag", ["show", "warmup_linear", "--bogus"], ["--bogus"]),
  # plot.
  (
    "plot-unknown",
    ["plot", "warmup_linear", "WarmupLr", "-o", "{out}/x.png"],
    ["WarmupLr"],
  ),
  ("plot-missing-name", ["plot", "-o", "{out}/x.png"], ["NAME"]),
  (
    "plot-t-total-huge",
    ["plot", "warmup_linear", "--t-total", "1e12", "-o", "{out}/x.png"],
    ["--t-total"],
  ),
  (
    "plot-t-total-zero",
    ["plot", "warmup_linear", "--t-total", "0", "-o", "{out}/x.png"],
    ["--t-total"],
  ),
  (
    "plot-lr-nan",
    ["plot", "warmup_linear", "--lr", "nan", "-o", "{out}/x.png"],
    ["--lr"],
  ),
  (
    "plot-set-t-total",
    ["plot", "warmup_linear", "--set", "t_total=5", "-o", "{out}/x.png"],
    ["--t-total"],
  ),
  (
    "plot-set-degree-nan",
    [
      "plot",
      "warmup_exp_decay_poly",
      "--set",
      "degree=nan",
      "-o",
      "{out}/x.png",
    ],
    ["degree"],
  ),
  (
    "plot-output-directory",
    ["plot", "warmup_linear", "-o", "{out}"],
    ["-o", "directory"],
  ),
  (
    "plot-output-under-file",
    ["plot", "warmup_linear", "-o", "{in}/a-file/x.png"],
    ["-o", "a-file"],
  ),
  (
    "plot-output-unwritable",
    ["plot", "warmup_linear", "-o", UNWRITABLE + ".png"],
    ["-o", "/proc"],
  ),
  # demo (every case fails before training).
  *[
    (f"demo-steps-{v}", ["demo", "--steps", v, "--out", "{out}/d"], ["--steps"])
    for v in ("0", "-1", "nan", "1.5", "3000000000")
  ],
  *[
    (
      f"demo-batch-size-{v}",
      ["demo", "--batch-size", v, "--out", "{out}/d"],
      ["--batch-size"],
    )
    for v in ("0", "-4", "inf")
  ],
  *[
    (f"demo-seed-{v}", ["demo", "--seed", v, "--out", "{out}/d"], ["--seed"])
    for v in ("-1", "4294967296", "nan")
  ],
  ("demo-model", ["demo", "--model", "huge", "--out", "{out}/d"], ["--model"]),
  (
    "demo-schedule",
    ["demo", "--schedule", "transformers.cosin", "--out", "{out}/d"],
    ["transformers.cosin"],
  ),
  (
    "demo-compare",
    ["demo", "--compare", "warmup_linear", "nope", "--out", "{out}/d"],
    ["nope"],
  ),
  ("demo-lr-nan", ["demo", "--lr", "nan", "--out", "{out}/d"], ["--lr"]),
  (
    "demo-set-t-total",
    ["demo", "--set", "t_total=5", "--out", "{out}/d"],
    ["--t-total"],
  ),
  (
    "demo-warmup-steps",
    ["demo", "--steps", "10", "--warmup-steps", "10", "--out", "{out}/d"],
    ["--warmup-steps"],
  ),
  ("demo-out-is-file", ["demo", "--out", "{in}/a-file"], ["--out"]),
  ("demo-out-under-file", ["demo", "--out", "{in}/a-file/d"], ["--out"]),
  ("demo-out-unwritable", ["demo", "--out", UNWRITABLE], ["--out"]),
  # port: input files.
  (
    "port-missing",
    ["port", "{in}/missing.json", "-o", "{out}/p.png"],
    ["missing.json"],
  ),
  (
    "port-directory",
    ["port", "{in}/a-directory", "-o", "{out}/p.png"],
    ["a-directory"],
  ),
  (
    "port-binary",
    ["port", "{in}/binary.json", "-o", "{out}/p.png"],
    ["binary.json", "UTF-8"],
  ),
  (
    "port-latin1",
    ["port", "{in}/latin1.json", "-o", "{out}/p.png"],
    ["latin1.json", "UTF-8"],
  ),
  *[
    (
      f"port-{name}",
      ["port", "{in}/" + name + ".json", "-o", "{out}/p.png"],
      [name + ".json"],
    )
    for name in ("empty", "truncated", "not-json", "deep", "deep-object")
  ],
  *[
    (
      f"port-{name}",
      ["port", "{in}/" + name + ".json", "-o", "{out}/p.png"],
      [],
    )
    for name in (
      "list",
      "number",
      "scheduler-string",
      "scheduler-params-string",
      "optimizer-string",
      "params-string",
      "lr-string",
      "lr-nan",
      "unknown-optimizer",
      "neither",
    )
  ],
  (
    "port-max-steps-string",
    [
      "port",
      "{in}/max-steps-string.json",
      "--kind",
      "training_arguments",
      "-o",
      "{out}/p.png",
    ],
    [],
  ),
  (
    "port-max-steps-string-guessed",
    ["port", "{in}/max-steps-string.json", "-o", "{out}/p.png"],
    [],
  ),
  # port: options and outputs (with a good config).
  (
    "port-kind",
    ["port", "{in}/good.json", "--kind", "keras", "-o", "{out}/p.png"],
    ["--kind"],
  ),
  *[
    (
      f"port-steps-{v}",
      ["port", "{in}/good.json", "--steps", v, "-o", "{out}/p.png"],
      ["--steps"],
    )
    for v in ("0", "-1", "nan", "x", "3000000000")
  ],
  (
    "port-output-directory",
    ["port", "{in}/good.json", "-o", "{out}"],
    ["-o", "directory"],
  ),
  (
    "port-output-under-file",
    ["port", "{in}/good.json", "-o", "{in}/a-file/p.png"],
    ["-o"],
  ),
  (
    "port-output-unwritable",
    ["port", "{in}/good.json", "-o", UNWRITABLE + ".png"],
    ["-o", "/proc"],
  ),
  ("port-missing-config", ["port"], ["FILE"]),
  # bench (every case fails before the harness runs).
  *[
    (f"bench-rounds-{v}", ["bench", "--rounds", v], ["--rounds"])
    for v in ("0", "-1", "nan", "abc", "1.5")
  ],
  *[
    (f"bench-steps-{v}", ["bench", "--steps", v], ["--steps"])
    for v in ("0", "-3", "inf")
  ],
  ("bench-trees-unknown", ["bench", "--trees", "tiny,huge"], ["huge"]),
  ("bench-trees-empty", ["bench", "--trees", ","], ["--trees"]),
  (
    "bench-out-directory",
    ["bench", "--trees", "tiny", "--out", "{out}"],
    ["--out", "directory"],
  ),
  ("bench-out-under-file", ["bench", "--out", "{in}/a-file/r.json"], ["--out"]),
  (
    "bench-out-unwritable",
    ["bench", "--out", UNWRITABLE + ".json"],
    ["--out", "/proc"],
  ),
]

# Run again as `python -m bertadam_optax`: one per command and kind of input.
SUBPROCESS_CASES = [
  "no-command",
  "show-t-total-3000000000",
  "show-set-degree=nan",
  "plot-output-unwritable",
  "demo-out-under-file",
  "port-binary",
  "port-deep",
  "port-scheduler-string",
  "port-max-steps-string",
  "bench-rounds-0",
  "list-family",
]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  inputs = tmp_path_factory.mktemp("inputs")
  _files(inputs)
  return inputs


def _argv(argv, inputs, out):
  return [
    a.replace("{in}", str(inputs)).replace("{out}", str(out)) for a in argv
  ]


def _check(code, stdout, stderr, fragments, inputs, out, before):
  assert code == 2, stderr
  assert stdout == ""
  assert "Traceback" not in stderr
  lines = stderr.splitlines()
  assert len(lines) == 1, stderr
  assert lines[0].startswith(PROG)
  assert "error" in lines[0]
  for fragment in fragments:
    assert fragment in lines[0]
  assert os.listdir(out) == []
  assert sorted(os.listdir(inputs)) == before


def test_the_matrix_covers_every_command():
  commands = {argv[0] for _, argv, _ in CASES if argv}
  assert commands >= {"demo", "plot", "show", "list", "port", "bench"}
  assert len({case_id for case_id, _, _ in CASES}) == len(CASES)
  assert set(SUBPROCESS_CASES) <= {case_id for case_id, _, _ in CASES}


@pytest.mark.parametrize(
  "argv,fragments", [pytest.param(a, f, id=i) for i, a, f in CASES]
)
def test_bad_input_in_process(argv, fragments, folders, tmp_path, capsys):
  out = tmp_path / "out"
  out.mkdir()
  before = sorted(os.listdir(folders))
  code = cli.main(_argv(argv, folders, out))
  captured = capsys.readouterr()
  _check(code, captured.out, captured.err, fragments, folders, out, before)


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_subprocess(case_id, folders, tmp_path):
  ((argv, fragments),) = [(a, f) for i, a, f in CASES if i == case_id]
  out = tmp_path / "out"
  out.mkdir()
  before = sorted(os.listdir(folders))
  result = subprocess.run(
    [sys.executable, "-m", "bertadam_optax", *_argv(argv, folders, out)],
    capture_output=True,
    text=True,
    timeout=300,
    check=False,
    cwd=tmp_path,
  )
  _check(
    result.returncode,
    result.stdout,
    result.stderr,
    fragments,
    folders,
    out,
    before,
  )
