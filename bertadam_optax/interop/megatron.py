r"""A Megatron-LM run's command line as one optax optimizer.

:func:`plan_megatron_args` reads Megatron-LM's arguments (as ``pretrain_gpt.py``
parses them: a list of tokens, a launch script's text, or a dict of argument
names) into a :class:`MegatronPlan`; :func:`from_megatron_args` builds it:

``MultiSteps(clip -> moments -> scheduled weight decay -> learning rate)``

* ``--optimizer adam``: torch ``AdamW`` (what megatron-core runs without Apex
  or Transformer Engine, and what their fused Adams compute), with bias
  correction, ``--adam-beta1/2``, ``--adam-eps``; ``--optimizer sgd``: torch
  ``SGD`` with ``--sgd-momentum`` and its coupled L2 weight decay.
* ``--lr*``: :func:`~bertadam_optax.schedules.megatron_lr_schedule`;
  ``--*weight-decay*``:
  :func:`~bertadam_optax.schedules.megatron_wd_schedule`, both counted in
  samples as Megatron-LM's ``get_optimizer_param_scheduler`` sets them up
  (iteration counts times the global batch size; ``--lr-warmup-fraction``
  of the decay length), advancing by the global batch size per update.
* Megatron's no-decay rule (``wd_mult = 0`` for biases and 1-D parameters):
  :func:`megatron_weight_decay_mask`.
* ``--clip-grad``: torch's ``clip_grad_norm_`` over all parameters
  (``clip_coeff = max_norm / (norm + 1e-6)``), 0 disables it.
* ``--global-batch-size / (--micro-batch-size * data parallel size)``
  micro-batches per update: ``optax.MultiSteps`` (Megatron divides each
  micro-batch loss by their number: the mean of the gradients).

Arguments that change the update and are not reproduced (``--decoupled-lr``,
``--rampup-batch-size``, ...) raise ``ValueError`` naming them; arguments
without effect on the optimizer (model shape, data, logging) are listed in
:attr:`MegatronPlan.notes`.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import shlex
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import optax

from bertadam_optax import _validation
from bertadam_optax import transforms
from bertadam_optax.masks import megatron_weight_decay_mask
from bertadam_optax.schedules import megatron as megatron_schedules

__all__ = [
  "MegatronPlan",
  "from_megatron_args",
  "megatron_weight_decay_mask",
  "parse_megatron_args",
  "plan_megatron_args",
]

# Megatron-LM's defaults (megatron/training/arguments.py and
# training_config.py at core_v0.16.1) for the arguments read here.
_DEFAULTS = {
  "lr": None,
  "min_lr": 0.0,
  "lr_warmup_init": 0.0,
  "lr_decay_style": "linear",
  "lr_wsd_decay_style": "exponential",
  "lr_decay_iters": None,
  "lr_decay_samples": None,
  "lr_wsd_decay_iters": None,
  "lr_wsd_decay_samples": None,
  "lr_warmup_fraction": None,
  "lr_warmup_iters": 0,
  "lr_warmup_samples": 0,
  "train_iters": None,
  "train_samples": None,
  "micro_batch_size": None,
  "global_batch_size": None,
  "weight_decay": 0.01,
  "start_weight_decay": None,
  "end_weight_decay": None,
  "weight_decay_incr_style": "constant",
  "clip_grad": 1.0,
  "adam_beta1": 0.9,
  "adam_beta2": 0.999,
  "adam_eps": 1e-08,
  "sgd_momentum": 0.9,
  "optimizer": "adam",
  "apply_wd_to_qk_layernorm": False,
  "no_weight_decay_cond_type": None,
}

_FLOATS = (
  "lr",
  "min_lr",
  "lr_warmup_init",
  "lr_warmup_fraction",
  "weight_decay",
  "start_weight_decay",
  "end_weight_decay",
  "clip_grad",
  "adam_beta1",
  "adam_beta2",
  "adam_eps",
  "sgd_momentum",
)
_INTS = (
  "lr_decay_iters",
  "lr_decay_samples",
  "lr_wsd_decay_iters",
  "lr_wsd_decay_samples",
  "lr_warmup_iters",
  "lr_warmup_samples",
  "train_iters",
  "train_samples",
  "micro_batch_size",
  "global_batch_size",
)
_FLAGS = ("apply_wd_to_qk_layernorm",)

# Arguments that change the update and are not reproduced.
_REFUSED = {
  "decoupled_lr": "a separate learning rate for the embedding and output "
  "layers (a second param group)",
  "decoupled_min_lr": "a separate minimum learning rate for the embedding "
  "and output layers",
  "rampup_batch_size": "a batch size that grows during training (the "
  "accumulation and the scheduler increment change "
  "per step)",
  "calculate_per_token_loss": "gradients summed per token instead of "
  "averaged over micro-batches",
  "warmup": "Megatron's old warmup argument (use --lr-warmup-*)",
  "iterations_to_skip": "updates skipped at given iterations",
  "use_precision_aware_optimizer": "optimizer states in reduced precision",
}

# Same update, but worth saying how the port differs or why it is fine.
_NOTED = {
  "fp16": "--fp16: Megatron keeps fp32 main params and skips the update "
  "when the loss scale overflows; the port applies every update in "
  "the parameters' dtype (wrap it in optax.apply_if_finite to skip "
  "non-finite steps)",
  "bf16": "--bf16: Megatron keeps fp32 main params; keep the JAX params in "
  "float32 (or use mu_dtype/bf16 params knowingly)",
  "loss_scale": "--loss-scale: a static loss scale only rescales the loss "
  "and gradients, no effect on the update",
  "initial_loss_scale": "--initial-loss-scale: loss scaling, see --fp16",
  "min_loss_scale": "--min-loss-scale: loss scaling, see --fp16",
  "loss_scale_window": "--loss-scale-window: loss scaling, see --fp16",
  "hysteresis": "--hysteresis: loss scaling, see --fp16",
  "use_distributed_optimizer": "--use-distributed-optimizer: shards the "
  "optimizer state, same update",
  "override_opt_param_scheduler": "--override-opt_param-scheduler: only "
  "matters when resuming from a checkpoint",
  "use_checkpoint_opt_param_scheduler": "--use-checkpoint-opt_param-"
  "scheduler: only matters when "
  "resuming from a checkpoint",
  "optimizer_cpu_offload": "--optimizer-cpu-offload: where the update runs, "
  "same update",
  "accumulate_allreduce_grads_in_fp32": "--accumulate-allreduce-grads-in-"
  "fp32: gradient precision only",
  "overlap_grad_reduce": "--overlap-grad-reduce: communication overlap, "
  "same update",
  "overlap_param_gather": "--overlap-param-gather: communication overlap, "
  "same update",
}

_OPTIMIZERS = ("adam", "sgd")

_TRAINING_SCRIPT = re.compile(r"\.py$")
_PRETRAIN_SCRIPT = re.compile(r"(^|/)pretrain_\w+\.py$")


def _flag_name(key: str) -> str:
  return "--" + key.replace("_", "-")


def _expand(
  token: str, scalars: Mapping[str, str], arrays: Mapping[str, list[str]]
) -> list[str]:
  """One shell word, with ``${A[@]}``, ``${X}`` and ``$X`` from the script."""
  match = re.fullmatch(r"\$\{(\w+)\[@\]\}", token)
  if match and match.group(1) in arrays:
    return [
      word
      for item in arrays[match.group(1)]
      for word in _expand(item, scalars, {})
    ]

  def scalar(m):
    name = m.group(1) or m.group(2)
    return scalars.get(name, m.group(0))

  expanded = re.sub(r"\$\{(\w+)\}|\$(\w+)", scalar, token)
  if re.fullmatch(r"\$\{\w+\}|\$\w+", token) and expanded != token:
    # A bare $OPTS is split into words, as an unquoted shell expansion is.
    return expanded.split()
  return [expanded]


def _tokens_of_script(text: str) -> list[str]:
  """The arguments of the training script a launch script runs."""
  text = text.replace("\\\r\n", " ").replace("\\\n", " ")
  arrays = {
    m.group(1): shlex.split(m.group(2), comments=True)
    for m in re.finditer(
      r"^\s*([A-Za-z_]\w*)=\((.*?)\)", text, re.MULTILINE | re.DOTALL
    )
  }
  body = re.sub(
    r"^\s*([A-Za-z_]\w*)=\((.*?)\)", "", text, flags=re.MULTILINE | re.DOTALL
  )
  scalars = {}
  commands = []
  for line in body.splitlines():
    words = shlex.split(line, comments=True)
    if not words:
      continue
    if words[0] == "export":
      words = words[1:]
    assignment = (
      re.fullmatch(r"([A-Za-z_]\w*)=(.*)", words[0]) if words else None
    )
    if assignment and len(words) == 1:
      scalars[assignment.group(1)] = assignment.group(2)
      continue
    scripts = [i for i, w in enumerate(words) if _TRAINING_SCRIPT.search(w)]
    if scripts:
      # The arguments are what follows the script (a launcher's own options,
      # torchrun --nproc_per_node ..., come before it).
      commands.append((words[scripts[0]], words[scripts[0] + 1 :]))
  if not commands:
    # A bare argument string: every word is an argument.
    command = shlex.split(body, comments=True)
  else:
    # Megatron's entry points are pretrain_*.py; a script that also runs
    # e.g. tools/preprocess_data.py trains with the last of those.
    training = [
      args for script, args in commands if _PRETRAIN_SCRIPT.search(script)
    ]
    command = (training or [args for _, args in commands])[-1]
  return [word for token in command for word in _expand(token, scalars, arrays)]


def parse_megatron_args(
  args: str | Sequence[str] | Mapping[str, Any],
) -> dict[str, Any]:
  """Megatron-LM arguments as a dict of argument names (``lr_decay_style``).

  Args:
    args: a list of command-line tokens (``["--lr", "1e-4", ...]``), one
      string (an argument line, or a launch script such as a
      ``pretrain_gpt.sh``: line continuations, comments, ``NAME=value`` and
      ``NAME=( ... )`` assignments and their ``$NAME`` / ``${NAME[@]}``
      expansions are read; only the arguments after the ``.py`` training
      script on its command line count), or a dict of argument names
      (``lr_decay_style`` or ``--lr-decay-style``).

  Returns:
    A dict: flags map to ``True``, options to their string value (a list for
    several values), dict input keeps its values.

  Examples:
    >>> from bertadam_optax.interop.megatron import parse_megatron_args
    >>> parse_megatron_args("python pretrain_gpt.py --lr 1e-4 \\\\\\n --fp16")
    {'lr': '1e-4', 'fp16': True}
  """
  if isinstance(args, Mapping):
    return {str(k).lstrip("-").replace("-", "_"): v for k, v in args.items()}
  if isinstance(args, str):
    tokens = _tokens_of_script(args)
  elif isinstance(args, Sequence) and all(isinstance(t, str) for t in args):
    tokens = list(args)
  else:
    raise ValueError(
      f"args={args!r} is not Megatron-LM arguments; expected "
      "a list of tokens, one string or a dict."
    )
  parsed: dict[str, Any] = {}
  key = None
  for token in tokens:
    if token.startswith("--"):
      key, eq, value = token[2:].partition("=")
      key = key.replace("-", "_")
      parsed[key] = value if eq else True
      continue
    if key is None:
      raise ValueError(f"args: {token!r} comes before any --argument.")
    previous = parsed[key]
    if previous is True:
      parsed[key] = token
    elif isinstance(previous, list):
      previous.append(token)
    else:
      parsed[key] = [previous, token]
  return parsed


@dataclasses.dataclass(frozen=True)
class MegatronPlan:
  """What a Megatron-LM command line makes of the optimizer, before building.

  Attributes:
    source: ``"megatron"``.
    optimizer: ``"adam"`` (torch AdamW) or ``"sgd"``.
    lr_schedule: keyword arguments of
      :func:`~bertadam_optax.schedules.megatron_lr_schedule`.
    wd_schedule: keyword arguments of
      :func:`~bertadam_optax.schedules.megatron_wd_schedule`.
    clip: ``--clip-grad``, the global-norm bound (0: none).
    accumulation_steps: micro-batches per update.
    betas: ``(--adam-beta1, --adam-beta2)``.
    eps: ``--adam-eps``.
    momentum: ``--sgd-momentum``.
    apply_wd_to_qk_layernorm: ``--apply-wd-to-qk-layernorm``.
    global_batch_size, micro_batch_size, data_parallel_size: the batch.
    train_iters: optimizer updates of the run.
    notes: what was ignored, and how the port differs.
  """

  optimizer: str
  lr_schedule: Mapping[str, Any]
  wd_schedule: Mapping[str, Any]
  clip: float
  accumulation_steps: int
  betas: tuple[float, float]
  eps: float
  momentum: float
  apply_wd_to_qk_layernorm: bool
  global_batch_size: int
  micro_batch_size: int
  data_parallel_size: int
  train_iters: int
  notes: tuple[str, ...] = ()
  source: str = "megatron"

  @property
  def learning_rate(self) -> optax.Schedule:
    """The learning rate per optimizer update."""
    return megatron_schedules.megatron_lr_schedule(**self.lr_schedule)

  @property
  def weight_decay(self) -> optax.Schedule:
    """The weight decay per optimizer update (before the mask)."""
    return megatron_schedules.megatron_wd_schedule(**self.wd_schedule)

  @property
  def weight_decay_mask(self) -> Callable[[Any], Any]:
    """Megatron's no-decay rule, a function of the parameters."""
    if self.apply_wd_to_qk_layernorm:
      return functools.partial(
        megatron_weight_decay_mask, apply_wd_to_qk_layernorm=True
      )
    return megatron_weight_decay_mask

  def build(self) -> optax.GradientTransformation:
    """The optimizer (see the module docstring for the chain)."""
    clip = (
      transforms.clip_by_global_norm_torch(self.clip)
      if self.clip > 0
      else optax.identity()
    )
    decay = transforms.add_scheduled_decayed_weights(
      self.weight_decay, self.weight_decay_mask
    )
    if self.optimizer == "adam":
      # Adam's bias-corrected moments ratio (torch's formula, in float32
      # without optax's float64 constants under jax_enable_x64).
      core = [
        transforms.scale_by_bertadam(
          b1=self.betas[0], b2=self.betas[1], eps=self.eps, bias_correction=True
        ),
        decay,
      ]
    else:
      # torch SGD: L2 decay into the gradient, then the momentum buffer.
      core = [decay] + (
        [optax.trace(decay=self.momentum)] if self.momentum != 0 else []
      )
    optimizer = optax.chain(
      clip, *core, transforms.scale_by_learning_rate(self.learning_rate)
    )
    if self.accumulation_steps > 1:
      optimizer = optax.MultiSteps(
        optimizer, every_k_schedule=self.accumulation_steps
      ).gradient_transformation()
    return optimizer

  def describe(self) -> list[str]:
    """Lines saying what the port builds (printed by ``bertadam-optax port``)."""
    lr, wd = self.lr_schedule, self.wd_schedule
    if self.optimizer == "adam":
      opt = (
        f"optimizer: adam (torch AdamW): betas={self.betas!r}, eps={self.eps!r}"
      )
    else:
      opt = f"optimizer: sgd (torch SGD): momentum={self.momentum!r}"
    style = lr["lr_decay_style"]
    if style == "WSD":
      style += (
        f" (annealing {lr['wsd_decay_steps']!r} samples, "
        f"{lr['lr_wsd_decay_style']})"
      )
    lines = [
      "source: Megatron-LM arguments",
      opt,
      (
        f"learning rate: megatron_lr_schedule {style}: {lr['init_lr']!r} -> "
        f"{lr['max_lr']!r} over {lr['lr_warmup_steps']!r} samples, then to "
        f"{lr['min_lr']!r} at {lr['lr_decay_steps']!r} samples"
      ),
      (
        f"weight decay: megatron_wd_schedule {wd['wd_incr_style']}: "
        f"{wd['start_wd']!r} -> {wd['end_wd']!r} over "
        f"{wd['wd_incr_steps']!r} samples; none on biases and 1-D params"
      ),
      (
        f"clip: torch clip_grad_norm_ (global) at {self.clip!r}"
        if self.clip > 0
        else "clip: none"
      ),
      (
        f"batch: global {self.global_batch_size} = {self.accumulation_steps} "
        f"accumulated x micro {self.micro_batch_size} x data parallel "
        f"{self.data_parallel_size}; scheduler advances "
        f"{lr['increment']} samples per update"
      ),
      f"updates: {self.train_iters}",
    ]
    return lines + [f"note: {note}" for note in self.notes]

  def to_source(self) -> str:
    """Python that builds the same optimizer from public names only."""
    lr_args = ", ".join(f"{k}={v!r}" for k, v in self.lr_schedule.items())
    wd_args = ", ".join(f"{k}={v!r}" for k, v in self.wd_schedule.items())
    mask = "megatron_weight_decay_mask"
    if self.apply_wd_to_qk_layernorm:
      mask = (
        "functools.partial(megatron_weight_decay_mask, "
        "apply_wd_to_qk_layernorm=True)"
      )
    lines = [
      "import functools" if self.apply_wd_to_qk_layernorm else None,
      "import optax",
      "from bertadam_optax import transforms",
      "from bertadam_optax.masks import megatron_weight_decay_mask",
      "from bertadam_optax.schedules import megatron_lr_schedule",
      "from bertadam_optax.schedules import megatron_wd_schedule",
      "",
      f"learning_rate = megatron_lr_schedule({lr_args})",
      f"weight_decay = megatron_wd_schedule({wd_args})",
      "optimizer = optax.chain(",
    ]
    if self.clip > 0:
      lines.append(f"    transforms.clip_by_global_norm_torch({self.clip!r}),")
    decay = (
      f"    transforms.add_scheduled_decayed_weights(weight_decay, {mask}),"
    )
    if self.optimizer == "adam":
      lines.append(
        f"    transforms.scale_by_bertadam(b1={self.betas[0]!r}, "
        f"b2={self.betas[1]!r}, eps={self.eps!r}, "
        "bias_correction=True),"
      )
      lines.append(decay)
    else:
      lines.append(decay)
      if self.momentum != 0:
        lines.append(f"    optax.trace(decay={self.momentum!r}),")
    lines += ["    transforms.scale_by_learning_rate(learning_rate),", ")"]
    if self.accumulation_steps > 1:
      lines.append(
        "optimizer = optax.MultiSteps(optimizer, every_k_schedule="
        f"{self.accumulation_steps}).gradient_transformation()"
      )
    return "\n".join(line for line in lines if line is not None) + "\n"


def _value(args: Mapping[str, Any], key: str) -> Any:
  """``args[key]`` typed and checked, or Megatron's default."""
  value = args.get(key, _DEFAULTS[key])
  if value is None:
    return None
  name = _flag_name(key)
  if key in _FLAGS:
    return _validation.check_bool(name, value)
  if isinstance(value, list):
    raise ValueError(f"{name}={' '.join(value)!r} takes one value.")
  if key in _FLOATS or key in _INTS:
    if isinstance(value, str):
      try:
        value = (
          float(value)
          if key in _FLOATS or not value.lstrip("-").isdigit()
          else int(value)
        )
      except ValueError:
        raise ValueError(f"{name}={value!r} is not a number.") from None
    if key in _INTS:
      return _validation.check_int(name, value, 0, None)
    return _validation.to_float(name, value)
  if not isinstance(value, str):
    raise ValueError(f"{name}={value!r} is not a string.")
  return value


def plan_megatron_args(
  args: str | Sequence[str] | Mapping[str, Any], *, data_parallel_size: int = 1
) -> MegatronPlan:
  """Reads Megatron-LM arguments into a :class:`MegatronPlan`.

  Follows Megatron-LM's ``validate_args`` and
  ``get_optimizer_param_scheduler`` (core_v0.16.1): its assertions become
  ``ValueError`` naming the arguments.

  Args:
    args: see :func:`parse_megatron_args`.
    data_parallel_size: the data-parallel size of the Megatron run (world
      size / (tensor * pipeline * context parallel sizes)), which sets the
      default global batch size and the number of accumulated micro-batches.

  Returns:
    A :class:`MegatronPlan`.

  Examples:
    >>> from bertadam_optax.interop import plan_megatron_args
    >>> plan = plan_megatron_args(
    ...     "--micro-batch-size 4 --global-batch-size 16 --train-iters 100 "
    ...     "--lr 3e-4 --min-lr 3e-5 --lr-decay-style cosine "
    ...     "--lr-warmup-iters 10", data_parallel_size=2)
    >>> plan.optimizer, plan.accumulation_steps  # 16 / (4 * 2) micro-batches
    ('adam', 2)
    >>> # Megatron's scheduler counts samples: iterations * global batch size.
    >>> plan.lr_schedule["lr_warmup_steps"], plan.lr_schedule["lr_decay_steps"]
    (160, 1600)

  Raises:
    ValueError: a missing, invalid, contradictory or unsupported argument,
      named as on Megatron's command line.
  """
  parsed = parse_megatron_args(args)
  dp = _validation.check_int("data_parallel_size", data_parallel_size, 1)
  for key, why in _REFUSED.items():
    value = parsed.get(key)
    if value is not None and value is not False:
      raise ValueError(
        f"{_flag_name(key)}={value!r} is not supported by the port: {why}."
      )
  read = set(_DEFAULTS) | set(_REFUSED) | set(_NOTED)
  ignored = _validation.unknown_keys(
    parsed, read, what="a Megatron-LM argument"
  )
  a = {key: _value(parsed, key) for key in _DEFAULTS}
  notes = [
    why for key, why in _NOTED.items() if parsed.get(key) not in (None, False)
  ]
  if ignored:
    notes.append(
      "ignored (no effect on the optimizer): "
      + " ".join(_flag_name(k) for k in ignored)
    )

  optimizer = _validation.check_choice(
    "--optimizer", a["optimizer"], _OPTIMIZERS
  )
  if a["no_weight_decay_cond_type"] is not None:
    _validation.check_choice(
      "--no-weight-decay-cond-type",
      a["no_weight_decay_cond_type"],
      ("apply_wd_to_qk_layernorm",),
    )
    a["apply_wd_to_qk_layernorm"] = True
  if a["lr"] is None:
    raise ValueError(
      "--lr is required (Megatron's OptimizerParamScheduler needs max_lr)."
    )
  micro = a["micro_batch_size"]
  if micro is None or micro <= 0:
    raise ValueError(
      f"--micro-batch-size={micro!r}: expected an integer > 0 "
      "(Megatron asserts it)."
    )
  gbs = a["global_batch_size"]
  if gbs is None:
    gbs = micro * dp
  if gbs <= 0 or gbs % (micro * dp):
    raise ValueError(
      f"--global-batch-size={gbs!r} is not a positive multiple of "
      f"--micro-batch-size ({micro}) times the data parallel size ({dp})."
    )

  fraction = a["lr_warmup_fraction"]
  if fraction is not None:
    _validation.check_number(
      "--lr-warmup-fraction", fraction, 0.0, 1.0, high_inclusive=False
    )
  if a["train_iters"]:
    for key, ok in (
      ("train_samples", a["train_samples"] is None),
      ("lr_decay_samples", a["lr_decay_samples"] is None),
      ("lr_warmup_samples", a["lr_warmup_samples"] == 0),
    ):
      if not ok:
        raise ValueError(
          f"{_flag_name(key)}={a[key]!r} with --train-iters: "
          "Megatron expects iteration-based arguments only."
        )
    if fraction is not None and a["lr_warmup_iters"] != 0:
      raise ValueError(
        "--lr-warmup-fraction and --lr-warmup-iters: Megatron "
        "takes only one of them."
      )
    train_iters = a["train_iters"]
    decay_steps = (
      a["lr_decay_iters"] if a["lr_decay_iters"] is not None else train_iters
    ) * gbs
    wd_steps = train_iters * gbs
    wsd_steps = (
      None if a["lr_wsd_decay_iters"] is None else a["lr_wsd_decay_iters"] * gbs
    )
    warmup_steps = (
      fraction * decay_steps
      if fraction is not None
      else a["lr_warmup_iters"] * gbs
    )
    unit = "--lr-wsd-decay-iters"
    unread = "lr_wsd_decay_samples"
  elif a["train_samples"]:
    for key, ok in (
      ("lr_decay_iters", a["lr_decay_iters"] is None),
      ("lr_warmup_iters", a["lr_warmup_iters"] == 0),
    ):
      if not ok:
        raise ValueError(
          f"{_flag_name(key)}={a[key]!r} with --train-samples: "
          "Megatron expects sample-based arguments only."
        )
    if fraction is not None and a["lr_warmup_samples"] != 0:
      raise ValueError(
        "--lr-warmup-fraction and --lr-warmup-samples: "
        "Megatron takes only one of them."
      )
    train_iters = a["train_samples"] // gbs
    decay_steps = (
      a["lr_decay_samples"]
      if a["lr_decay_samples"] is not None
      else a["train_samples"]
    )
    wd_steps = a["train_samples"]
    wsd_steps = a["lr_wsd_decay_samples"]
    warmup_steps = (
      fraction * decay_steps if fraction is not None else a["lr_warmup_samples"]
    )
    unit = "--lr-wsd-decay-samples"
    unread = "lr_wsd_decay_iters"
  else:
    raise ValueError(
      "either --train-iters or --train-samples is required "
      "(Megatron raises without one)."
    )
  if a[unread] is not None:
    notes.append(
      f"{_flag_name(unread)}: not read by Megatron with "
      f"{'--train-iters' if a['train_iters'] else '--train-samples'}"
      f" (it reads {unit})"
    )
  if a["lr_decay_style"] == "WSD" and wsd_steps is None:
    raise ValueError(
      f"--lr-decay-style WSD requires {unit} (Megatron "
      "asserts wsd_decay_steps is not None)."
    )

  if a["weight_decay_incr_style"] == "constant":
    for key in ("start_weight_decay", "end_weight_decay"):
      if a[key] is not None:
        raise ValueError(
          f"{_flag_name(key)}={a[key]!r} with "
          "--weight-decay-incr-style constant: Megatron "
          "asserts it is unset (use --weight-decay)."
        )
    start_wd = end_wd = a["weight_decay"]
  else:
    for key in ("start_weight_decay", "end_weight_decay"):
      if a[key] is None:
        raise ValueError(
          f"{_flag_name(key)} is required with "
          "--weight-decay-incr-style "
          f"{a['weight_decay_incr_style']}."
        )
    start_wd, end_wd = a["start_weight_decay"], a["end_weight_decay"]

  lr_schedule = {
    "max_lr": a["lr"],
    "min_lr": a["min_lr"],
    "lr_warmup_steps": warmup_steps,
    "lr_decay_steps": decay_steps,
    "lr_decay_style": a["lr_decay_style"],
    "init_lr": a["lr_warmup_init"],
    "wsd_decay_steps": wsd_steps,
    "lr_wsd_decay_style": a["lr_wsd_decay_style"],
    "increment": gbs,
  }
  wd_schedule = {
    "start_wd": start_wd,
    "end_wd": end_wd,
    "wd_incr_steps": wd_steps,
    "wd_incr_style": a["weight_decay_incr_style"],
    "increment": gbs,
  }
  _rename_errors(megatron_schedules.megatron_lr_schedule, lr_schedule)
  _rename_errors(megatron_schedules.megatron_wd_schedule, wd_schedule)
  clip = _validation.to_float("--clip-grad", a["clip_grad"], 0.0)
  betas = (
    _validation.to_float(
      "--adam-beta1", a["adam_beta1"], 0.0, 1.0, high_inclusive=False
    ),
    _validation.to_float(
      "--adam-beta2", a["adam_beta2"], 0.0, 1.0, high_inclusive=False
    ),
  )
  eps = _validation.to_float("--adam-eps", a["adam_eps"], 0.0)
  momentum = _validation.to_float("--sgd-momentum", a["sgd_momentum"], 0.0)
  return MegatronPlan(
    optimizer=optimizer,
    lr_schedule=lr_schedule,
    wd_schedule=wd_schedule,
    clip=clip,
    accumulation_steps=gbs // (micro * dp),
    betas=betas,
    eps=eps,
    momentum=momentum,
    apply_wd_to_qk_layernorm=a["apply_wd_to_qk_layernorm"],
    global_batch_size=gbs,
    micro_batch_size=micro,
    data_parallel_size=dp,
    train_iters=train_iters,
    notes=tuple(notes),
  )


_SCHEDULE_ARG_FLAGS = {
  "max_lr": "--lr",
  "min_lr": "--min-lr",
  "init_lr": "--lr-warmup-init",
  "lr_warmup_steps": "--lr-warmup-*",
  "lr_decay_steps": "--lr-decay-*",
  "lr_decay_style": "--lr-decay-style",
  "wsd_decay_steps": "--lr-wsd-decay-*",
  "lr_wsd_decay_style": "--lr-wsd-decay-style",
  "start_wd": "--start-weight-decay",
  "end_wd": "--end-weight-decay",
  "wd_incr_steps": "--train-*",
  "wd_incr_style": "--weight-decay-incr-style",
}


def _rename_errors(factory, kwargs):
  """Builds the schedule once so its checks speak in Megatron's flags."""
  try:
    factory(**kwargs)
  except ValueError as e:
    flags = [
      flag
      for arg, flag in _SCHEDULE_ARG_FLAGS.items()
      if re.search(rf"\b{arg}\b", str(e))
    ]
    raise ValueError(f"Megatron arguments ({', '.join(flags)}): {e}") from e


def from_megatron_args(
  args: str | Sequence[str] | Mapping[str, Any], *, data_parallel_size: int = 1
) -> optax.GradientTransformation:
  r"""The optimizer a Megatron-LM command line trains with, as one optax chain.

  ``plan_megatron_args(args, data_parallel_size=...).build()``: at update
  ``k`` (``n = k * B`` samples, ``B`` the global batch size), with the mean
  gradient ``g`` of the ``B / (b * d)`` micro-batches:

  .. math::
    g &\leftarrow g \cdot \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}
      \right) \\
    p &\leftarrow p - \eta(n) \left(\mathrm{Adam}(g) + \lambda(n)\, m\, p
      \right)

  with :math:`\eta` and :math:`\lambda` Megatron's schedules
  (:func:`~bertadam_optax.schedules.megatron_lr_schedule`,
  :func:`~bertadam_optax.schedules.megatron_wd_schedule`), ``Adam`` torch's
  bias-corrected moments ratio and ``m`` the no-decay mask
  (:func:`megatron_weight_decay_mask`).

  Args:
    args: Megatron-LM arguments (see :func:`parse_megatron_args`).
    data_parallel_size: the run's data-parallel size.

  Returns:
    An ``optax.GradientTransformation``; feed it one micro-batch gradient per
    call (of ``micro batch * data_parallel_size`` samples).

  Examples:
    >>> import jax.numpy as jnp
    >>> from bertadam_optax.interop import from_megatron_args
    >>> opt = from_megatron_args(
    ...     "--micro-batch-size 4 --global-batch-size 16 --train-iters 100 "
    ...     "--lr 3e-4 --min-lr 3e-5 --lr-decay-style cosine "
    ...     "--lr-warmup-iters 10 --weight-decay 0.1 --adam-beta2 0.95",
    ...     data_parallel_size=2)
    >>> state = opt.init({"kernel": jnp.ones((2, 2)), "bias": jnp.zeros(2)})

  References:
    Megatron-LM core_v0.16.1 ``megatron/training/arguments.py``
    (``validate_args``), ``megatron/training/training.py``
    (``get_optimizer_param_scheduler``, ``train_step``); megatron-core 0.16.1
    ``megatron/core/optimizer/__init__.py``.
  """
  return plan_megatron_args(args, data_parallel_size=data_parallel_size).build()
