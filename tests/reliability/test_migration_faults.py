"""Migration faults: PyTorch BertAdam states that must not be taken silently.

The starting point of every case is a real optimizer state: a small torch
model trained three steps by pytorch-pretrained-bert 0.6.2's ``BertAdam``,
``state_dict()`` taken. Each case mutates it the way a broken pipeline does
(state keys that are not the ``param_groups`` ids, extra and missing ids,
steps that are not integers >= 0 or disagree, non-finite or negative moments,
wrong dtypes and shapes, malformed containers) and asserts ``from_torch``
raises one ValueError listing every problem, instead of restarting the run
at step 0 or training on garbage. ``to_torch`` gets the symmetric checks.
"""

from __future__ import annotations

import copy

import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax import alias
from bertadam_optax.schedules import pretrained_bert
from tests.references import require

torch = require("torch")
pytorch_pretrained_bert = require("pytorch_pretrained_bert")
# pylint: disable=g-import-not-at-top,wrong-import-position
from bertadam_optax.interop import torch as interop

pytestmark = pytest.mark.filterwarnings(
  "ignore:This overload of add_:UserWarning"
)

STEPS = 3
HPARAMS = dict(lr=1e-2, warmup=0.1, t_total=10, schedule="warmup_linear")
WHAT = "the torch optimizer state does not fit the optimizer"


class Net(torch.nn.Module):
  def __init__(self):
    super().__init__()
    self.dense_0 = torch.nn.Linear(4, 3)
    self.LayerNorm = torch.nn.LayerNorm(3)
    self.dense_1 = torch.nn.Linear(3, 2)

  def forward(self, x):
    return self.dense_1(torch.tanh(self.LayerNorm(self.dense_0(x))))


PARAMS = {
  "dense_0": {"kernel": jnp.zeros((4, 3)), "bias": jnp.zeros(3)},
  "LayerNorm": {"scale": jnp.zeros(3), "bias": jnp.zeros(3)},
  "dense_1": {"kernel": jnp.zeros((3, 2)), "bias": jnp.zeros(2)},
}
MAPPING = {
  "dense_0.weight": "dense_0.kernel",
  "dense_0.bias": "dense_0.bias",
  "LayerNorm.weight": "LayerNorm.scale",
  "LayerNorm.bias": "LayerNorm.bias",
  "dense_1.weight": "dense_1.kernel",
  "dense_1.bias": "dense_1.bias",
}
NAMES = list(MAPPING)
TX = alias.bertadam(
  pretrained_bert.pretrained_bert_schedule(
    HPARAMS["schedule"], HPARAMS["lr"], HPARAMS["t_total"], HPARAMS["warmup"]
  ),
  schedule=None,
)


@pytest.fixture(scope="module")
def trained():
  torch.manual_seed(0)
  model = Net()
  assert [n for n, _ in model.named_parameters()] == NAMES
  optimizer = pytorch_pretrained_bert.BertAdam(model.parameters(), **HPARAMS)
  rng = np.random.default_rng(0)
  for _ in range(STEPS):
    x = torch.as_tensor(rng.normal(size=(5, 4)).astype(np.float32))
    optimizer.zero_grad()
    (model(x) ** 2).mean().backward()
    optimizer.step()
  return model.state_dict(), optimizer.state_dict()


def convert(model_state_dict, optimizer_state_dict):
  return interop.from_torch(
    model_state_dict,
    optimizer_state_dict,
    params=PARAMS,
    optimizer=TX,
    mapping=MAPPING,
    param_names=NAMES,
  )


def test_the_unmutated_state_converts(trained):
  params, opt_state = convert(*trained)
  assert int(opt_state[1].count) == STEPS
  np.testing.assert_array_equal(
    opt_state[1].nu["dense_0"]["kernel"],
    trained[1]["state"][0]["next_v"].numpy().T,
  )
  assert params["dense_1"]["kernel"].shape == (3, 2)


def with_state(optimizer_state_dict, state):
  mutated = copy.deepcopy(optimizer_state_dict)
  mutated["state"] = state
  return mutated


def entries(optimizer_state_dict):
  return copy.deepcopy(optimizer_state_dict["state"])


# Each mutation: (state dict -> mutated state dict, lines the error lists).
def _string_keys(sd):
  return with_state(sd, {str(k): v for k, v in entries(sd).items()})


def _offset_ids(sd):
  return with_state(sd, {k + 100: v for k, v in entries(sd).items()})


def _extra_id(sd):
  state = entries(sd)
  state[6] = copy.deepcopy(state[0])
  return with_state(sd, state)


def _missing_and_extra(sd):
  state = entries(sd)
  state[42] = state.pop(2)
  return with_state(sd, state)


KEY_FAULTS = {
  "string keys": (
    _string_keys,
    [
      ("state keys that are no id of param_groups (6):"),
      "'0' (str)",
      "'5' (str)",
      "param_groups ids without a state (6):",
      "string keys come from a JSON",
    ],
  ),
  "offset ids": (
    _offset_ids,
    ["100 (int)", "105 (int)", "param_groups ids without a state (6):"],
  ),
  "extra id": (
    _extra_id,
    ["state keys that are no id of param_groups (1):", "6 (int)"],
  ),
  "missing and extra": (
    _missing_and_extra,
    ["42 (int)", "param_groups ids without a state (1):\n  2"],
  ),
}


@pytest.mark.parametrize("fault", sorted(KEY_FAULTS))
def test_state_keys_that_are_not_the_param_group_ids_are_listed(trained, fault):
  mutate, lines = KEY_FAULTS[fault]
  with pytest.raises(ValueError, match=WHAT) as e:
    convert(trained[0], mutate(trained[1]))
  for line in lines:
    assert line in str(e.value)


def _set(index, **changes):
  def mutate(sd):
    state = entries(sd)
    state[index] = dict(state[index], **changes)
    return with_state(sd, state)

  return mutate


BAD_STEPS = [
  -4,
  3.7,
  "3",
  None,
  True,
  float("nan"),
  float("inf"),
  torch.tensor(-1),
  torch.tensor(2.5),
  np.int64(-1),
  [3],
]


@pytest.mark.parametrize("step", BAD_STEPS, ids=repr)
def test_a_step_that_is_not_a_non_negative_integer_is_refused(trained, step):
  with pytest.raises(
    ValueError,
    match=r"(?s)steps that are not integers >= 0 "
    r"\(1\):\n  LayerNorm.weight: step=",
  ) as e:
    convert(trained[0], _set(2, step=step)(trained[1]))
  assert repr(step) in str(e.value)


@pytest.mark.parametrize(
  "step", [np.int64(STEPS), torch.tensor(STEPS), float(STEPS)], ids=repr
)
def test_integral_steps_of_other_types_are_taken(trained, step):
  state = entries(trained[1])
  for entry in state.values():
    entry["step"] = step
  _, opt_state = convert(trained[0], with_state(trained[1], state))
  assert int(opt_state[1].count) == STEPS


def test_steps_that_disagree_are_listed(trained):
  with pytest.raises(
    ValueError,
    match=r"(?s)different steps.*step 3: "
    r"dense_0.weight.*step 5: dense_1.bias",
  ):
    convert(trained[0], _set(5, step=5)(trained[1]))


def _moment(index, key, edit):
  def mutate(sd):
    state = entries(sd)
    value = state[index][key].clone()
    state[index] = dict(state[index], **{key: edit(value)})
    return with_state(sd, state)

  return mutate


def _put_at(value, x):
  value.view(-1)[0] = x
  return value


MOMENT_FAULTS = {
  "nan next_m": (
    _moment(0, "next_m", lambda v: _put_at(v, float("nan"))),
    "dense_0.weight: next_m holds 1 non-finite values",
  ),
  "inf next_m": (
    _moment(1, "next_m", lambda v: _put_at(v, float("inf"))),
    "dense_0.bias: next_m holds 1 non-finite values",
  ),
  "nan next_v": (
    _moment(3, "next_v", lambda v: _put_at(v, float("nan"))),
    "LayerNorm.bias: next_v holds 1 non-finite values",
  ),
  "-inf next_v": (
    _moment(4, "next_v", lambda v: _put_at(v, -float("inf"))),
    "dense_1.weight: next_v holds 1 non-finite values",
  ),
  "negative next_v": (
    _moment(5, "next_v", lambda v: _put_at(v, -1e-3)),
    "dense_1.bias: next_v holds 1 negative values",
  ),
  "integer next_m": (
    _moment(0, "next_m", lambda v: v.to(torch.int32)),
    ("dense_0.weight: next_m has dtype int32; expected floating"),
  ),
  "bool next_v": (
    _moment(2, "next_v", lambda v: v > 0),
    "LayerNorm.weight: next_v has dtype bool",
  ),
}


@pytest.mark.parametrize("fault", sorted(MOMENT_FAULTS))
def test_invalid_moments_are_listed(trained, fault):
  mutate, line = MOMENT_FAULTS[fault]
  with pytest.raises(ValueError, match="moments that are not valid") as e:
    convert(trained[0], mutate(trained[1]))
  assert line in str(e.value)


SHAPE_FAULTS = {
  "transposed next_m": _moment(0, "next_m", lambda v: v.T.contiguous()),
  "short next_v": _moment(1, "next_v", lambda v: v[:2]),
  "flat next_m": _moment(4, "next_m", lambda v: v.reshape(-1)),
}


@pytest.mark.parametrize("fault", sorted(SHAPE_FAULTS))
def test_moment_shapes_are_checked(trained, fault):
  with pytest.raises(ValueError, match="moments whose shapes do not match"):
    convert(trained[0], SHAPE_FAULTS[fault](trained[1]))


def _drop(index, key):
  def mutate(sd):
    state = entries(sd)
    del state[index][key]
    return with_state(sd, state)

  return mutate


CONTAINER_FAULTS = {
  "entry without next_v": (_drop(0, "next_v"), "not BertAdam's"),
  "entry without step": (_drop(3, "step"), "not BertAdam's"),
  "entry is a list": (
    lambda sd: with_state(sd, {**entries(sd), 0: [1, 2]}),
    "not BertAdam's",
  ),
  "state is a list": (
    lambda sd: with_state(sd, list(entries(sd).values())),
    "is a list; expected a dict",
  ),
  "no param_groups": (
    lambda sd: {"state": entries(sd)},
    r"has no \['param_groups'\]",
  ),
  "param_groups a dict": (
    lambda sd: dict(sd, param_groups={"params": []}),
    "is not a list of dicts",
  ),
  "group without params": (
    lambda sd: dict(sd, param_groups=[{"lr": 1.0}]),
    "is not a list of dicts",
  ),
  "repeated ids": (
    lambda sd: dict(
      sd, param_groups=[dict(sd["param_groups"][0], params=[0, 1, 2, 3, 4, 4])]
    ),
    r"list the ids \['4'\] more than once",
  ),
  "state dict is None": (lambda sd: None, "is a NoneType"),
}


@pytest.mark.parametrize("fault", sorted(CONTAINER_FAULTS))
def test_malformed_containers_are_refused(trained, fault):
  mutate, pattern = CONTAINER_FAULTS[fault]
  with pytest.raises(ValueError, match=pattern):
    convert(trained[0], mutate(trained[1]))


def test_several_faults_come_in_one_error(trained):
  sd = _set(0, step=-4)(trained[1])
  sd = _moment(5, "next_v", lambda v: _put_at(v, -1.0))(sd)
  sd = _moment(1, "next_m", lambda v: v[:1])(sd)
  with pytest.raises(ValueError) as e:
    convert(trained[0], sd)
  message = str(e.value)
  for line in [
    "steps that are not integers >= 0 (1):",
    "dense_0.weight: step=-4",
    "moments whose shapes do not match (1):",
    "dense_1.bias: next_v holds 1 negative values",
  ]:
    assert line in message


# --- to_torch: the symmetric checks ----------------------------------------------


def _back(params, opt_state, param_groups):
  return interop.to_torch(
    params,
    opt_state,
    mapping=MAPPING,
    param_names=NAMES,
    param_groups=param_groups,
  )


def test_to_torch_round_trips_the_real_state(trained):
  params, opt_state = convert(*trained)
  _, sd = _back(params, opt_state, trained[1]["param_groups"])
  assert sorted(sd["state"]) == sorted(trained[1]["state"])
  for pid, entry in trained[1]["state"].items():
    assert sd["state"][pid]["step"] == entry["step"]
    np.testing.assert_array_equal(
      sd["state"][pid]["next_v"].numpy(), entry["next_v"].numpy()
    )


def _state_with(opt_state, **changes):
  stage = opt_state[1]._replace(**changes)
  return (opt_state[0], stage) + tuple(opt_state[2:])


TO_TORCH_FAULTS = {
  "negative count": (
    lambda s: _state_with(s, count=jnp.asarray(-2, jnp.int32)),
    "the BertAdam count is -2",
  ),
  "nan mu": (
    lambda s: _state_with(
      s,
      mu=dict(
        s[1].mu, dense_1=dict(s[1].mu["dense_1"], bias=jnp.full(2, jnp.nan))
      ),
    ),
    "dense_1.bias: next_m holds 2 non-finite values",
  ),
  "negative nu": (
    lambda s: _state_with(
      s,
      nu=dict(
        s[1].nu, LayerNorm=dict(s[1].nu["LayerNorm"], scale=-jnp.ones(3))
      ),
    ),
    "LayerNorm.weight: next_v holds 3 negative values",
  ),
}


@pytest.mark.parametrize("fault", sorted(TO_TORCH_FAULTS))
def test_to_torch_refuses_invalid_states(trained, fault):
  params, opt_state = convert(*trained)
  mutate, line = TO_TORCH_FAULTS[fault]
  with pytest.raises(ValueError, match="does not fit the torch optimizer") as e:
    _back(params, mutate(opt_state), trained[1]["param_groups"])
  assert line in str(e.value)


def test_to_torch_refuses_repeated_ids(trained):
  params, opt_state = convert(*trained)
  groups = [dict(trained[1]["param_groups"][0], params=[0, 0, 1, 2, 3, 4])]
  with pytest.raises(ValueError, match="more than once"):
    _back(params, opt_state, groups)
