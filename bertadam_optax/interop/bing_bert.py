r"""A DeepSpeedExamples bing_bert pretraining run as one optax optimizer.

A bing_bert run (``training/bing_bert/deepspeed_train.py``) is more than its
ds_config. :func:`plan_bing_bert` reads the ``--cf`` JSON and the ds_config
together as the script does:

* the learning rate of every optimizer step comes from the script's
  ``update_learning_rate``: ``--lr_schedule`` ``EE``
  (:func:`~bertadam_optax.schedules.warmup_exp_decay_exp`), ``EP``
  (:func:`~bertadam_optax.schedules.warmup_exp_decay_poly`) or anything else
  ``LE`` (:func:`~bertadam_optax.schedules.warmup_linear_decay_exp`), with the
  hyperparameters of the ``--cf`` section
  ``mixed_seq_training[max_seq_length]``,
  plus ``--lr_offset``, and only when the engine runs fp16;
* the parameter groups of ``prepare_optimizer_parameters``: no decay for the
  substrings of :func:`bertadam_optax.masks.bing_bert_weight_decay_mask`, the
  decay of the ``--cf`` section (default 0.01, not the ds_config's), and the
  pooler left out of the optimizer;
* the ds_config's optimizer, gradient clipping and accumulation (from the
  batch-size triple and the data-parallel size), read by
  :func:`~bertadam_optax.interop.plan_deepspeed_config` into the
  :class:`~bertadam_optax.interop.specs.Plan` that bing_bert's learning rate
  and mask then replace.

``plan.build()`` is the optax transformation; :func:`from_bing_bert` does both.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import warnings
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jax
import optax

from bertadam_optax import _validation
from bertadam_optax import transforms
from bertadam_optax.interop import deepspeed_config as ds_reader
from bertadam_optax.interop import specs

__all__ = [
  "BING_BERT_LR_SCHEDULES",
  "BingBertPlan",
  "bing_bert_learning_rate",
  "from_bing_bert",
  "plan_bing_bert",
  "plan_bing_bert_args",
]

BING_BERT_LR_SCHEDULES = {
  "EE": "warmup_exp_decay_exp",
  "EP": "warmup_exp_decay_poly",
  "LE": "warmup_linear_decay_exp",
}
"""``--lr_schedule`` -> schedule; any other value runs ``LE``, as the script."""

_ONEBIT = ("onebitadam", "zerooneadam", "onebitlamb")


@dataclasses.dataclass(frozen=True)
class BingBertPlan:
  """What a bing_bert run's optimizer does, checked; ``build()`` builds it.

  Attributes:
    deepspeed: the ds_config's :class:`~bertadam_optax.interop.specs.Plan`
      with bing_bert's learning rate (under fp16), weight decay and mask.
    training: the ``--cf`` section ``mixed_seq_training[str(max_seq_length)]``.
    max_seq_length: ``--max_seq_length``.
    lr_schedule: the schedule that runs (``"EE"``, ``"EP"`` or ``"LE"``).
    lr_offset: ``--lr_offset``.
    fp16: whether the ds_config enables fp16 (the script sets the learning
      rate only then).
    deepspeed_transformer_kernel: whether the fused kernel's bias and norm
      names are in the no-decay group too.
    data_parallel_size: DeepSpeed's world size.
    optimized_mask: ``params -> mask`` (False: the pooler, never updated).
    notes: what the port decided and why.
  """

  deepspeed: specs.Plan
  training: Mapping[str, Any]
  max_seq_length: int
  lr_schedule: str
  lr_offset: float
  fp16: bool
  deepspeed_transformer_kernel: bool
  data_parallel_size: int
  optimized_mask: Any = dataclasses.field(
    default_factory=lambda: specs.NamedMask(
      "bert_weight_decay_mask", {"no_decay": ("pooler",)}
    )
  )
  notes: tuple[str, ...] = ()

  source = "bing_bert"

  @property
  def learning_rate(self) -> Any:
    """The learning rate of each optimizer step (spec or float)."""
    return self.deepspeed.learning_rate

  @property
  def accumulation_steps(self) -> int:
    """Micro-batches per optimizer step."""
    return self.deepspeed.accumulation_steps

  @property
  def optimizer(self) -> Any:
    """The ds_config's optimizer spec."""
    return self.deepspeed.optimizer

  @property
  def clip_norm_includes_frozen(self) -> bool:
    """Whether the clip's norm covers the pooler.

    DeepSpeed's fp16 optimizers clip their own groups, its fp32 engine every
    parameter.
    """
    return not self.fp16

  def build(self) -> optax.GradientTransformation:
    """The optax transformation of the run."""
    labels = _frozen_labels(self.optimized_mask)
    if not self.clip_norm_includes_frozen:
      return optax.multi_transform(
        {"optimized": self.deepspeed.build(), "frozen": optax.set_to_zero()},
        labels,
      )
    inner = dataclasses.replace(
      self.deepspeed, clip=0.0, accumulation_steps=1
    ).build()
    step = optax.chain(
      transforms.clip_by_global_norm_torch(self.deepspeed.clip),
      optax.multi_transform(
        {"optimized": inner, "frozen": optax.set_to_zero()}, labels
      ),
    )
    if self.accumulation_steps == 1:
      return step
    return optax.MultiSteps(
      step, every_k_schedule=self.accumulation_steps, use_grad_mean=True
    ).gradient_transformation()

  def describe(self) -> list[str]:
    """What the optimizer does, one line per aspect (what ``port`` prints)."""
    lines = [
      f"source:        bing_bert deepspeed_train.py, max_seq_length="
      f"{self.max_seq_length}, data_parallel_size="
      f"{self.data_parallel_size}"
    ]
    lines += [
      line
      for line in self.deepspeed.describe()
      if not line.startswith(("source:", "note:"))
    ]
    lines.append(
      "frozen:        the pooler (not given to the optimizer); "
      "the clip's norm "
      + ("includes it" if self.clip_norm_includes_frozen else "leaves it out")
    )
    return lines + [
      f"note:          {n}" for n in self.deepspeed.notes + self.notes
    ]

  def to_source(self) -> str:
    """Python that builds the same optimizer from public names only."""
    frozen = (
      "optimizer = optax.multi_transform(\n"
      "    {{'optimized': {inner}, 'frozen': optax.set_to_zero()}},\n"
      "    lambda params: jax.tree.map(\n"
      "        lambda m: 'optimized' if m else 'frozen',\n"
      f"        {self.optimized_mask.to_source()}(params)))"
    )
    if not self.clip_norm_includes_frozen:
      source = self.deepspeed.to_source()
      return "import jax\n" + source + "\n" + frozen.format(inner="optimizer")
    inner = dataclasses.replace(self.deepspeed, clip=0.0, accumulation_steps=1)
    lines = [
      "import jax",
      inner.to_source(),
      frozen.format(inner="optimizer"),
      "optimizer = optax.chain(transforms.clip_by_global_norm_torch("
      f"{self.deepspeed.clip!r}), optimizer)",
    ]
    if self.accumulation_steps > 1:
      lines.append(
        "optimizer = optax.MultiSteps(optimizer, every_k_schedule="
        f"{self.accumulation_steps}, use_grad_mean=True)"
        ".gradient_transformation()"
      )
    return "\n".join(lines)


def _frozen_labels(optimized_mask):
  """``params -> labels`` for ``optax.multi_transform`` (pooler: frozen)."""

  def labels(params):
    return jax.tree.map(
      lambda m: "optimized" if m else "frozen", optimized_mask(params)
    )

  return labels


def _load_cf(cf: Any) -> dict:
  try:
    return ds_reader.load_config(cf)
  except ValueError as e:
    raise ValueError(str(e).replace("config=", "cf=", 1)) from None


def _section_names(sections):
  return [repr(int(k)) if k.isdigit() else repr(k) for k in sections]


def _training_section(cf: Mapping[str, Any], max_seq_length: int) -> dict:
  sections = cf.get("mixed_seq_training")
  if not isinstance(sections, Mapping):
    raise ValueError(
      "cf has no 'mixed_seq_training' object; expected the "
      "bing_bert --cf JSON with one section per sequence "
      "length."
    )
  key = str(max_seq_length)
  if key not in sections:
    raise ValueError(
      f"max_seq_length={max_seq_length!r} has no section in "
      f"cf['mixed_seq_training']; expected one of "
      f"{', '.join(_section_names(sections))}."
    )
  section = sections[key]
  if not isinstance(section, Mapping):
    raise ValueError(
      f"cf['mixed_seq_training'][{key!r}]={section!r} is not an object."
    )
  return dict(section)


def bing_bert_learning_rate(
  training: Mapping[str, Any],
  lr_schedule: str = "LE",
  lr_offset: float = 0.0,
  *,
  restore_step: int = 0,
) -> specs.BingBertScheduleSpec:
  r"""bing_bert's ``update_learning_rate`` as a schedule spec of the count.

  .. math::
    \eta(k) = \eta_0 \, f(k - k_r) + \eta_{\text{offset}}

  with ``f`` the ``lr_schedule`` of :data:`BING_BERT_LR_SCHEDULES` (any other
  value is ``LE``), its hyperparameters from ``training`` (``learning_rate``
  ``eta_0``, ``warmup_proportion``, ``total_training_steps``, and for EE/LE
  ``decay_rate`` and ``decay_step``), and ``k_r`` the step a ``--rewarmup``
  resume restarts the schedule at. ``k`` is the global step: the optimizer
  steps taken before this one.

  Args:
    training: the ``--cf`` section ``mixed_seq_training[str(max_seq_length)]``.
    lr_schedule: ``--lr_schedule``.
    lr_offset: ``--lr_offset``.
    restore_step: ``k_r`` (the restored global step with ``--rewarmup``).

  Returns:
    A :class:`~bertadam_optax.interop.specs.BingBertScheduleSpec`;
    ``build()`` is the function ``count -> learning rate``.

  Examples:
    >>> lr = bing_bert_learning_rate(
    ...     {'learning_rate': 1e-3, 'warmup_proportion': 0.1,
    ...      'total_training_steps': 100, 'decay_rate': 0.9,
    ...      'decay_step': 10}, 'EE', 1e-4).build()
    >>> round(float(lr(5)), 8)  # (5 / 10) ** 2 * 1e-3 + 1e-4
    0.00035

  References:
    DeepSpeedExamples, ``training/bing_bert/deepspeed_train.py``
    (``update_learning_rate``, ``load_checkpoint``).
  """
  if not isinstance(lr_schedule, str):
    raise ValueError(
      f"lr_schedule={lr_schedule!r} is not a string; expected "
      "'EE', 'EP' or 'LE'."
    )
  lr_schedule = lr_schedule if lr_schedule in ("EE", "EP") else "LE"
  name = BING_BERT_LR_SCHEDULES[lr_schedule]
  needed = ["learning_rate", "warmup_proportion", "total_training_steps"]
  if lr_schedule != "EP":
    needed += ["decay_rate", "decay_step"]
  for key in needed:
    if key not in training:
      raise ValueError(
        f"training section has no {key!r}; --lr_schedule "
        f"{lr_schedule} ({name}) needs {', '.join(needed)}."
      )
  return specs.BingBertScheduleSpec(
    name,
    training["learning_rate"],
    training["total_training_steps"],
    training["warmup_proportion"],
    decay_rate=None if lr_schedule == "EP" else training["decay_rate"],
    decay_step=None if lr_schedule == "EP" else training["decay_step"],
    lr_offset=_validation.to_float("lr_offset", lr_offset),
    restore_step=_validation.check_int("restore_step", restore_step),
  )


def plan_bing_bert(
  cf: Mapping[str, Any] | str | os.PathLike,
  deepspeed_config: Mapping[str, Any] | str | os.PathLike,
  *,
  max_seq_length: int,
  lr_schedule: str = "LE",
  lr_offset: float = 0.0,
  data_parallel_size: int = 1,
  deepspeed_transformer_kernel: bool = False,
  rewarmup: bool = False,
  resume_step: int | None = None,
) -> BingBertPlan:
  r"""Reads a bing_bert run (``--cf``, ds_config) into a :class:`BingBertPlan`.

  See :func:`from_bing_bert` for the math.

  Args:
    cf: the ``--cf`` JSON (path or dict).
    deepspeed_config: the ``--deepspeed_config`` JSON (path or dict).
    max_seq_length: ``--max_seq_length`` (selects the ``--cf`` section).
    lr_schedule: ``--lr_schedule`` (``EE``, ``EP``; anything else is ``LE``).
    lr_offset: ``--lr_offset``.
    data_parallel_size: DeepSpeed's world size.
    deepspeed_transformer_kernel: ``--deepspeed_transformer_kernel``.
    rewarmup: ``--rewarmup`` with a checkpoint loaded: the schedule restarts
      at ``resume_step``.
    resume_step: the global step the checkpoint restored (its
      ``last_global_step``); required with ``rewarmup``. The optax count is
      the global step: a resumed run's optax state counts from it, as
      :func:`bertadam_optax.interop.from_torch` sets it.

  Returns:
    A :class:`BingBertPlan`.

  Raises:
    ValueError: naming the key or argument, for a missing ``--cf`` section
      or key, or a bad ds_config.

  Examples:
    >>> plan = plan_bing_bert(
    ...     {'mixed_seq_training': {'128': {
    ...         'learning_rate': 4e-3, 'warmup_proportion': 0.1,
    ...         'total_training_steps': 1000, 'decay_rate': 0.9,
    ...         'decay_step': 100}}},
    ...     {'train_batch_size': 64, 'train_micro_batch_size_per_gpu': 8,
    ...      'optimizer': {'type': 'Lamb', 'params': {'lr': 4e-3}},
    ...      'fp16': {'enabled': True}},
    ...     max_seq_length=128, lr_schedule='EE', data_parallel_size=2)
    >>> plan.accumulation_steps, plan.optimizer.weight_decay
    (4, 0.01)

  References:
    DeepSpeedExamples, ``training/bing_bert/deepspeed_train.py``.
  """
  cf_dict = _load_cf(cf)
  ds = ds_reader.load_config(deepspeed_config)
  max_seq_length = _validation.check_int("max_seq_length", max_seq_length, 1)
  data_parallel_size = _validation.check_int(
    "data_parallel_size", data_parallel_size, 1
  )
  _validation.check_bool(
    "deepspeed_transformer_kernel", deepspeed_transformer_kernel
  )
  _validation.check_bool("rewarmup", rewarmup)
  lr_offset = _validation.to_float("lr_offset", lr_offset)
  training = _training_section(cf_dict, max_seq_length)
  notes = []
  if not isinstance(lr_schedule, str):
    raise ValueError(
      f"lr_schedule={lr_schedule!r} is not a string; expected "
      "'EE', 'EP' or 'LE'."
    )
  if lr_schedule not in BING_BERT_LR_SCHEDULES:
    notes.append(
      f"--lr_schedule {lr_schedule!r} runs LE, as "
      "update_learning_rate's else branch does."
    )
  effective = lr_schedule if lr_schedule in ("EE", "EP") else "LE"

  weight_decay = training.get("weight_decay", 0.01)
  _validation.check_non_negative(
    f"cf['mixed_seq_training']['{max_seq_length}']['weight_decay']",
    weight_decay,
  )
  section = ds.get("optimizer")
  if not isinstance(section, Mapping) or "type" not in section:
    raise ValueError(
      "deepspeed_config has no 'optimizer' section; bing_bert "
      "runs DeepSpeed's optimizer: expected {'type': ..., "
      "'params': {...}}."
    )
  params = dict(section.get("params") or {})
  if params.get("weight_decay", weight_decay) != weight_decay:
    notes.append(
      f"weight decay {weight_decay} from the --cf section (default 0.01), "
      f"not the ds_config's {params['weight_decay']}: "
      "prepare_optimizer_parameters sets it on every group."
    )
  if str(section["type"]).lower() in _ONEBIT:
    notes.append(
      "exp_avg_mask of position_embeddings.weight (rows past "
      f"max_seq_length={max_seq_length}): their gradients and momenta are "
      "zero on one worker, so the mask changes nothing; not applied."
    )

  fp16 = ds.get("fp16", {})
  fp16 = bool(isinstance(fp16, Mapping) and fp16.get("enabled", False))
  restore = 0
  if rewarmup:
    if resume_step is None:
      raise ValueError(
        "rewarmup=True needs resume_step: the global step the "
        "checkpoint restored (its 'last_global_step')."
      )
    restore = _validation.check_int("resume_step", resume_step)
  elif resume_step is not None:
    _validation.check_int("resume_step", resume_step)
    notes.append(
      "resume_step without rewarmup: the schedule continues at the "
      "global step; start the optax count there."
    )
  learning_rate = None
  if fp16:
    learning_rate = bing_bert_learning_rate(
      training, effective, lr_offset, restore_step=restore
    )
    if "scheduler" in ds:
      notes.append(
        "the ds_config's scheduler is overridden: "
        "update_learning_rate sets every step's rate first."
      )
    notes.append(
      "fp16 dynamic loss scaling skips steps on overflow; "
      "optax has no overflow: no step is skipped here."
    )
  else:
    notes.append(
      "fp16 is off: deepspeed_train.py sets a learning rate only under fp16 "
      "(its first step then fails on an unbound lr_this_step); the "
      "ds_config's learning rate is kept, lr_schedule and lr_offset are not "
      "applied."
    )
  config = dict(
    ds,
    optimizer={
      "type": section["type"],
      "params": dict(params, weight_decay=weight_decay),
    },
  )
  if fp16:
    config.pop("scheduler", None)
  with warnings.catch_warnings():
    # Its ignored keys (fp16, sparse_attention, ...) go to the plan's notes.
    warnings.simplefilter("ignore")
    deepspeed = ds_reader.plan_deepspeed_config(
      config,
      data_parallel_size=data_parallel_size,
      weight_decay_mask=specs.NamedMask(
        "bing_bert_weight_decay_mask",
        {"deepspeed_transformer_kernel": deepspeed_transformer_kernel}
        if deepspeed_transformer_kernel
        else {},
      ),
      learning_rate=learning_rate,
    )
  # bing_bert reads fp16 (and sets the rate): not an ignored key here.
  deepspeed = dataclasses.replace(
    deepspeed,
    notes=tuple(
      n.replace("'fp16', ", "").replace(", 'fp16'", "")
      for n in deepspeed.notes
      if "learning_rate argument" not in n
    ),
  )
  return BingBertPlan(
    deepspeed=deepspeed,
    training=training,
    max_seq_length=max_seq_length,
    lr_schedule=effective,
    lr_offset=lr_offset,
    fp16=fp16,
    deepspeed_transformer_kernel=deepspeed_transformer_kernel,
    data_parallel_size=data_parallel_size,
    notes=tuple(notes),
  )


def from_bing_bert(
  cf: Mapping[str, Any] | str | os.PathLike,
  deepspeed_config: Mapping[str, Any] | str | os.PathLike,
  *,
  max_seq_length: int,
  lr_schedule: str = "LE",
  lr_offset: float = 0.0,
  data_parallel_size: int = 1,
  deepspeed_transformer_kernel: bool = False,
  rewarmup: bool = False,
  resume_step: int | None = None,
) -> optax.GradientTransformation:
  r"""The optax optimizer of a DeepSpeedExamples bing_bert pretraining run.

  .. math::
    g &= \tfrac1A \textstyle\sum_{a=1}^{A} g_a, \qquad
    g \leftarrow g \min\left(1, \tfrac{c}{\lVert g \rVert_2 + 10^{-6}}\right)
    \\
    p &\leftarrow p - \eta_k \, \mathrm{opt}(g, p; \lambda M)
    \quad\text{(pooler: unchanged)}, \qquad
    \eta_k = \eta_0 f(k) + \eta_{\text{offset}}

  ``A`` from the ds_config's batch triple and ``data_parallel_size``, ``c`` its
  ``gradient_clipping`` (the norm over the optimized parameters under fp16,
  over all with fp16 off, as DeepSpeed's fp16 optimizers and its engine clip),
  ``opt`` its optimizer (``Lamb``: :func:`scale_by_fused_lamb`; ``Adam``:
  FusedAdam; ``OneBitAdam``/``ZeroOneAdam``/``OneBitLamb``: their one-worker
  math, :func:`bertadam_optax.transforms.scale_by_onebit_adam`,
  :func:`~bertadam_optax.transforms.scale_by_zero_one_adam` and
  :func:`~bertadam_optax.transforms.scale_by_onebit_lamb`), ``lambda`` the
  ``--cf`` weight decay (default 0.01) on the leaves of
  :func:`bertadam_optax.masks.bing_bert_weight_decay_mask`, and ``f`` the
  ``--lr_schedule`` (:func:`bing_bert_learning_rate`) when fp16 is on; with
  fp16 off the ds_config's lr stays (the plan says so). Past
  ``total_training_steps`` EP holds progress at 1, as
  :func:`bertadam_optax.schedules.bert_schedule` does.

  Args:
    cf: the ``--cf`` JSON (path or dict).
    deepspeed_config: the ``--deepspeed_config`` JSON (path or dict).
    max_seq_length: ``--max_seq_length``.
    lr_schedule: ``--lr_schedule``.
    lr_offset: ``--lr_offset``.
    data_parallel_size: DeepSpeed's world size.
    deepspeed_transformer_kernel: ``--deepspeed_transformer_kernel``.
    rewarmup: ``--rewarmup`` (with ``resume_step``).
    resume_step: the restored global step.

  Returns:
    An ``optax.GradientTransformation``.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = from_bing_bert(
    ...     {'mixed_seq_training': {'128': {
    ...         'learning_rate': 4e-3, 'warmup_proportion': 0.1,
    ...         'total_training_steps': 1000, 'decay_rate': 0.9,
    ...         'decay_step': 100}}},
    ...     {'train_batch_size': 8, 'train_micro_batch_size_per_gpu': 8,
    ...      'optimizer': {'type': 'Lamb', 'params': {'lr': 4e-3}},
    ...      'fp16': {'enabled': True}}, max_seq_length=128)
    >>> params = {'bert.pooler.dense.weight': jnp.ones(2),
    ...           'bert.encoder.dense.weight': jnp.ones(2)}
    >>> updates, _ = tx.update(params, tx.init(params), params)
    >>> float(updates['bert.pooler.dense.weight'][0])
    0.0

  References:
    DeepSpeedExamples, ``training/bing_bert/deepspeed_train.py``
    (``update_learning_rate``, ``prepare_optimizer_parameters``, ``train``,
    ``load_checkpoint``); DeepSpeed ``deepspeed/runtime/engine.py`` and
    ``deepspeed/runtime/fp16/unfused_optimizer.py`` (the clip).
  """
  return plan_bing_bert(
    cf,
    deepspeed_config,
    max_seq_length=max_seq_length,
    lr_schedule=lr_schedule,
    lr_offset=lr_offset,
    data_parallel_size=data_parallel_size,
    deepspeed_transformer_kernel=deepspeed_transformer_kernel,
    rewarmup=rewarmup,
    resume_step=resume_step,
  ).build()


def plan_bing_bert_args(
  args: Sequence[str],
  *,
  data_parallel_size: int = 1,
  resume_step: int | None = None,
) -> BingBertPlan:
  """:func:`plan_bing_bert` from ``deepspeed_train.py``'s command line.

  Reads the options of bing_bert's ``utils.get_argument_parser`` that decide
  the optimizer (``--cf``/``--config-file``, ``--max_seq_length`` (default
  512), ``--lr_schedule``, ``--lr_offset``, ``--deepspeed_config``,
  ``--deepspeed_transformer_kernel``, ``--rewarmup``,
  ``--load_training_checkpoint``/``--load_checkpoint_id``); the others leave
  the optimizer alone. ``--rewarmup`` acts only with a checkpoint loaded.

  Args:
    args: the program's arguments, file paths resolved.
    data_parallel_size: DeepSpeed's world size.
    resume_step: the restored global step (for ``--rewarmup``).

  Returns:
    A :class:`BingBertPlan`.
  """
  parser = argparse.ArgumentParser(
    prog="deepspeed_train.py", add_help=False, allow_abbrev=False
  )
  parser.add_argument("--config-file", "--cf", dest="cf")
  parser.add_argument("--max_seq_length", type=int, default=512)
  parser.add_argument("--lr_schedule", default="LE")
  parser.add_argument("--lr_offset", type=float, default=0.0)
  parser.add_argument("--deepspeed_config")
  parser.add_argument("--deepspeed_transformer_kernel", action="store_true")
  parser.add_argument("--rewarmup", action="store_true")
  parser.add_argument("--load_training_checkpoint", "--load_cp")
  parser.add_argument("--load_checkpoint_id", "--load_cp_id")
  try:
    ns, _ = parser.parse_known_args(list(args))
  except SystemExit as e:
    raise ValueError(
      f"deepspeed_train.py arguments {' '.join(args)!r} do not parse."
    ) from e
  for name, value in (
    ("--cf", ns.cf),
    ("--deepspeed_config", ns.deepspeed_config),
  ):
    if value is None:
      raise ValueError(
        f"deepspeed_train.py is launched without {name}; "
        "bing_bert reads its optimizer from it."
      )
  resumed = ns.load_training_checkpoint is not None and (
    ns.load_checkpoint_id is not None
  )
  rewarmup = ns.rewarmup and resumed
  plan = plan_bing_bert(
    ns.cf,
    ns.deepspeed_config,
    max_seq_length=ns.max_seq_length,
    lr_schedule=ns.lr_schedule,
    lr_offset=ns.lr_offset,
    data_parallel_size=data_parallel_size,
    deepspeed_transformer_kernel=ns.deepspeed_transformer_kernel,
    rewarmup=rewarmup,
    resume_step=resume_step if rewarmup else None,
  )
  notes = list(plan.notes)
  if ns.rewarmup and not resumed:
    notes.append("--rewarmup without a loaded checkpoint does nothing.")
  if resumed and not rewarmup:
    notes.append(
      f"resumes from {ns.load_training_checkpoint} "
      f"({ns.load_checkpoint_id}): the schedule continues at the "
      "restored global step; start the optax count there."
    )
  return dataclasses.replace(plan, notes=tuple(notes))
