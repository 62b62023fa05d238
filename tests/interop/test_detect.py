"""Tests of ``bertadam_optax.interop.detect`` on every fixture of a real run
shape."""

from __future__ import annotations

import json
import os

import pytest

from bertadam_optax.interop import detect

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def _fixture(*parts):
  return os.path.join(FIXTURES, *parts)


def _all(suffix):
  found = []
  for folder, _, names in os.walk(FIXTURES):
    found += [os.path.join(folder, n) for n in names if n.endswith(suffix)]
  return sorted(found)


@pytest.mark.parametrize("path", _all(".sh"))
def test_every_script_is_a_launch_script(path):
  assert detect.detect_run_kind(path).kind == "launch_script"


@pytest.mark.parametrize("path", _all(".json"))
def test_every_json_fixture_is_told_apart(path):
  with open(path, encoding="utf-8") as f:
    config = json.load(f)
  name = os.path.basename(path)
  if "mixed_seq_training" in config:
    with pytest.raises(ValueError, match="give its ds_config"):
      detect.detect_run_kind(path)
    return
  kind = detect.detect_run_kind(path)
  want = (
    "training_arguments" if name.startswith("training_args") else "deepspeed"
  )
  assert kind.kind == want, kind.reason
  assert kind.reason


def test_training_arguments_with_fp16_is_not_a_ds_config():
  kind = detect.detect_run_kind(_fixture("hf", "training_args_fp16.json"))
  assert kind.kind == "training_arguments"
  assert "TrainingArguments fields" in kind.reason
  kind = detect.detect_run_kind(
    _fixture("hf", "training_args_deepspeed_dict.json")
  )
  assert "deepspeed" in kind.reason


def test_bing_bert_pair_in_either_order():
  cf = _fixture("bing_bert", "bert_large_mixed_seq.json")
  ds = _fixture("bing_bert", "ds_lamb_bsz64k_seq128.json")
  for paths in ([cf, ds], [ds, cf]):
    kind = detect.detect_run_kind(paths)
    assert kind.kind == "bing_bert" and kind.paths == (cf, ds)


def test_what_cannot_be_told(tmp_path):
  ambiguous = tmp_path / "a.json"
  ambiguous.write_text(json.dumps({"gradient_accumulation_steps": 2}))
  with pytest.raises(ValueError, match="cannot tell"):
    detect.detect_run_kind(ambiguous)
  broken = tmp_path / "b.json"
  broken.write_text("{not json")
  with pytest.raises(ValueError, match="not valid JSON"):
    detect.detect_run_kind(broken)
  with pytest.raises(ValueError, match="cannot be read"):
    detect.detect_run_kind(tmp_path / "missing.json")
  ds = _fixture("bing_bert", "ds_lamb_bsz64k_seq128.json")
  with pytest.raises(ValueError, match="none of these"):
    detect.detect_run_kind([ds, ds])
  with pytest.raises(ValueError, match="expected one file"):
    detect.detect_run_kind([])
