"""``bertadam-optax port`` on every fixture of a real run's shape
(``tests/interop/fixtures``): each ports with exit 0, or is refused in one
line with exit 2 where the run cannot be ported as given."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import jax
import pytest

from bertadam_optax.cli import main as cli
from bertadam_optax.cli import port
from bertadam_optax.interop import launch_script

FIXTURES = os.path.join(
  os.path.dirname(__file__), os.pardir, "interop", "fixtures"
)
BING = os.path.join(FIXTURES, "bing_bert")
ROOT = os.path.dirname(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)


def _f(*parts):
  return os.path.normpath(os.path.join(FIXTURES, *parts))


def _port(tmp_path, capsys, *argv):
  png = tmp_path / "lr.png"
  status = cli.main(["port", *argv, "-o", str(png)])
  out, err = capsys.readouterr()
  return status, out, err, png


PORTS = [
  ([_f("bing_bert", "launch_lamb_seq128.sh")], "launch_script"),
  ([_f("bing_bert", "launch_adam_fp32.sh")], "launch_script"),
  (
    [_f("bing_bert", "launch_lamb_seq512.sh"), "--resume-step", "7500"],
    "launch_script",
  ),
  ([_f("bing_bert", "onebit", "launch_onebitadam_seq128.sh")], "launch_script"),
  ([_f("megatron", "pretrain_gpt_iters.sh")], "launch_script"),
  ([_f("megatron", "pretrain_gpt_samples.sh")], "launch_script"),
  (
    [
      _f("bing_bert", "bert_large_mixed_seq.json"),
      _f("bing_bert", "ds_lamb_bsz64k_seq128.json"),
      "--max-seq-length",
      "128",
      "--lr-schedule",
      "EE",
      "--lr-offset",
      "1e-3",
      "--data-parallel-size",
      "16",
    ],
    "bing_bert",
  ),
  (
    [
      _f("bing_bert", "ds_lamb_bsz32k_seq512.json"),
      _f("bing_bert", "bert_base_mixed_seq.json"),
    ],
    "bing_bert",
  ),
  ([_f("bing_bert", "ds_lamb_bsz64k_seq128.json")], "deepspeed"),
  (
    [
      _f("bing_bert", "ds_lamb_bsz32k_seq512.json"),
      "--data-parallel-size",
      "16",
    ],
    "deepspeed",
  ),
  ([_f("bing_bert", "ds_adam_fp32_seq128.json")], "deepspeed"),
  ([_f("bing_bert", "onebit", "ds_onebitadam_bsz4k_seq128.json")], "deepspeed"),
  (
    [_f("bing_bert", "onebit", "ds_zerooneadam_bsz4k_seq128.json")],
    "deepspeed",
  ),
  (
    [_f("bing_bert", "onebit", "ds_onebitlamb_bsz64k_seq128.json")],
    "deepspeed",
  ),
  ([_f("squad", "ds_adam_bsz24.json")], "deepspeed"),
  (
    [_f("squad", "ds_onebitadam_bsz96.json"), "--data-parallel-size", "32"],
    "deepspeed",
  ),
  ([_f("hf", "training_args_fp16.json")], "training_arguments"),
  ([_f("hf", "training_args_bf16_cosine.json")], "training_arguments"),
  ([_f("hf", "training_args_deepspeed_path.json")], "training_arguments"),
  (
    [
      _f("hf", "training_args_deepspeed_dict.json"),
      "--data-parallel-size",
      "4",
    ],
    "training_arguments",
  ),
]


@pytest.mark.parametrize("argv,kind", PORTS)
def test_every_real_run_ports(tmp_path, capsys, argv, kind):
  status, out, err, png = _port(tmp_path, capsys, *argv)
  assert status == 0, err
  assert re.search(rf"^kind:\s+{kind} \(.+\)$", out, re.MULTILINE), out
  assert re.search(r"^data parallel: \d+ processes", out, re.MULTILINE)
  assert "optax code:" in out
  assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
  "argv,match",
  [
    ([_f("hello", "run_ds.sh")], r"'train_bert_ds\.py'"),
    ([_f("hf", "ds_auto_zero2.json")], r"are 'auto'.*TrainingArguments"),
    ([_f("hf", "ds_auto_lamb_no_scheduler.json")], r"are 'auto'"),
    ([_f("bing_bert", "launch_lamb_seq512.sh")], "resume_step"),
    ([_f("bing_bert", "bert_large_mixed_seq.json")], "give its ds_config"),
    (
      [
        _f("bing_bert", "bert_large_mixed_seq.json"),
        _f("bing_bert", "ds_lamb_bsz64k_seq128.json"),
        "--max-seq-length",
        "256",
      ],
      r"max_seq_length=256",
    ),
    (
      [
        _f("bing_bert", "ds_lamb_bsz64k_seq128.json"),
        "--data-parallel-size",
        "3",
      ],
      "inconsistent batch sizes",
    ),
  ],
)
def test_runs_that_cannot_port_are_one_line_and_exit_2(
  tmp_path, capsys, argv, match
):
  status, out, err, png = _port(tmp_path, capsys, *argv)
  assert status == 2
  assert out == ""
  assert len(err.strip().splitlines()) == 1
  assert re.search(match, err), err
  assert not png.exists()


def test_kind_is_told_and_said(tmp_path, capsys):
  status, out, _, _ = _port(
    tmp_path, capsys, _f("hf", "training_args_fp16.json")
  )
  assert status == 0
  assert "TrainingArguments fields" in out
  status, out, _, _ = _port(
    tmp_path, capsys, _f("bing_bert", "ds_lamb_bsz64k_seq128.json")
  )
  assert "1024 micro-batches" in out  # data_parallel_size 1 by default
  status, out, _, _ = _port(
    tmp_path,
    capsys,
    _f("bing_bert", "ds_lamb_bsz64k_seq128.json"),
    "--data-parallel-size",
    "16",
  )
  assert "64 micro-batches" in out and "data parallel: 16 processes" in out


def test_cost_does_not_grow_with_the_accumulation_count():
  # The bing_bert 64k LAMB launch at 1 and at 1024 micro-batches per step:
  # the traced learning-rate run is the same graph.
  path = _f("bing_bert", "launch_lamb_seq128.sh")
  plans = [
    launch_script.plan_launch_script(path, data_parallel_size=dp)
    for dp in (1024, 1)
  ]
  assert [p.accumulation_steps for p in plans] == [1, 1024]
  jaxprs = [
    str(jax.make_jaxpr(port.learning_rate_trace(p, 7500))()) for p in plans
  ]
  assert jaxprs[0] == jaxprs[1]
  # ... and does not grow with the steps shown either (one scan body).
  short = str(jax.make_jaxpr(port.learning_rate_trace(plans[1], 10))())
  assert short.count("\n") == jaxprs[1].count("\n")


def test_port_of_1024_micro_batches_holds_under_500_mb():
  # The whole command in a child of a fresh wrapper process, whose
  # RUSAGE_CHILDREN then holds exactly that command's peak RSS (issue 15: a
  # port of a 1,024-micro-batch config once grew to 19 GB).
  config = os.path.join(BING, "ds_lamb_bsz64k_seq128.json")
  wrapper = (
    "import resource, subprocess, sys\n"
    "done = subprocess.run([sys.executable, '-m', 'bertadam_optax', 'port',\n"
    f"                      {str(config)!r}], capture_output=True, text=True)\n"
    "assert done.returncode == 0, done.stderr\n"
    "assert '1024 micro-batches' in done.stdout, done.stdout\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
  )
  result = subprocess.run(
    [sys.executable, "-c", wrapper],
    capture_output=True,
    text=True,
    cwd=ROOT,
    env={**os.environ, "PYTHONPATH": ROOT},
    timeout=300,
  )
  assert result.returncode == 0, result.stderr
  peak_kib = int(result.stdout.split()[-1])  # Linux reports KiB
  assert peak_kib < 500 * 1024, f"port peaked at {peak_kib / 1024:.0f} MiB"
