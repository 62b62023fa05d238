r"""Times one optimizer step of bertadam against optax and PyTorch.

The harness behind ``bertadam-optax bench``, which loads this file from a
source checkout when it runs (it is not part of the installed package)::

  python benchmarks/optimizer_step.py --trees base,large,small \
      --out benchmarks/results/cpu.json
  bertadam-optax bench --trees tiny --rounds 1 --steps 2

Both take the same flags and check them the same way, before any work.

An optimizer step is memory-bound. BertAdam reads every gradient twice (the
clipping norm, then the update) and reads and writes the parameters and both
moments: at least 32 bytes per float32 parameter. This module times one step
of :func:`bertadam_optax.bertadam` against the optimizers a user would pick
instead, on parameter trees with the real shapes of BERT-base and BERT-large
and on a tree of many small tensors, and relates every time to that 32-byte
floor at the memory bandwidth measured in the same run.

Candidates of one tree are timed interleaved, round after round, so that the
noise of a shared machine falls on all of them alike. Only one candidate's
parameters and state are alive at a time; the gradients are shared.

It reproduces nothing; the PyTorch references are ``torch.optim.AdamW`` (fused
and foreach) with ``torch.nn.utils.clip_grad_norm_`` and ``BertAdam`` of
pytorch-pretrained-bert 0.6.2.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import json
import math
import os
import platform
import re
import statistics
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import alias
from bertadam_optax import flatten

__all__ = [
  "TREES",
  "bert_shapes",
  "check_trees",
  "main",
  "markdown",
  "run",
  "run_tree",
  "small_shapes",
]

# Bytes a BertAdam step must move per float32 parameter: the gradient twice
# (norm, update), parameter and both moments read and written.
FLOOR_BYTES = 32
# Bytes torch's fused AdamW moves per parameter: no clipping pass.
FUSED_BYTES = 28
# STREAM triad a = b + s * c: two reads and one write per element.
TRIAD_BYTES = 12

LR, B1, B2, EPS, WEIGHT_DECAY, MAX_NORM = 1e-4, 0.9, 0.999, 1e-6, 0.01, 1.0
WARMUP, T_TOTAL = 0.1, 10_000

Shapes = list[tuple[str, tuple[int, ...]]]


def bert_shapes(
  layers: int,
  hidden: int,
  intermediate: int,
  vocab: int = 30522,
  positions: int = 512,
) -> Shapes:
  """The parameter shapes of ``BertForPreTraining``, in torch's layout."""
  shapes = [
    ("embeddings.word_embeddings.weight", (vocab, hidden)),
    ("embeddings.position_embeddings.weight", (positions, hidden)),
    ("embeddings.token_type_embeddings.weight", (2, hidden)),
    ("embeddings.LayerNorm.weight", (hidden,)),
    ("embeddings.LayerNorm.bias", (hidden,)),
  ]
  for i in range(layers):
    prefix = f"encoder.layer.{i}."
    for name in (
      "attention.self.query",
      "attention.self.key",
      "attention.self.value",
      "attention.output.dense",
    ):
      shapes += [
        (prefix + name + ".weight", (hidden, hidden)),
        (prefix + name + ".bias", (hidden,)),
      ]
    shapes += [
      (prefix + "attention.output.LayerNorm.weight", (hidden,)),
      (prefix + "attention.output.LayerNorm.bias", (hidden,)),
      (prefix + "intermediate.dense.weight", (intermediate, hidden)),
      (prefix + "intermediate.dense.bias", (intermediate,)),
      (prefix + "output.dense.weight", (hidden, intermediate)),
      (prefix + "output.dense.bias", (hidden,)),
      (prefix + "output.LayerNorm.weight", (hidden,)),
      (prefix + "output.LayerNorm.bias", (hidden,)),
    ]
  shapes += [
    ("pooler.dense.weight", (hidden, hidden)),
    ("pooler.dense.bias", (hidden,)),
    ("cls.predictions.bias", (vocab,)),
    ("cls.predictions.transform.dense.weight", (hidden, hidden)),
    ("cls.predictions.transform.dense.bias", (hidden,)),
    ("cls.predictions.transform.LayerNorm.weight", (hidden,)),
    ("cls.predictions.transform.LayerNorm.bias", (hidden,)),
    ("cls.seq_relationship.weight", (2, hidden)),
    ("cls.seq_relationship.bias", (2,)),
  ]
  return shapes


def small_shapes(
  count: int = 2000, largest: int = 65536, seed: int = 0
) -> Shapes:
  """``count`` vectors of log-uniformly distributed sizes in [1, largest]."""
  rng = np.random.default_rng(seed)
  sizes = np.exp(rng.uniform(0.0, math.log(largest), count)).astype(int)
  return [(f"t{i:04d}", (int(n),)) for i, n in enumerate(sizes)]


# XLA:CPU compiles a few kernels per tensor; at 2,000 tensors that takes
# several minutes and GBs per tree-wise optimizer (0.2-0.5 s per tensor
# measured on the 2-core machine), so only the packed one runs there.
TREE_WISE_SKIPPED = {
  "small": "compiling a step over 2,000 separate tensors takes minutes "
  "per optimizer on XLA:CPU; flat_bertadam is the path for them",
}

TREES: dict[str, Callable[[], Shapes]] = {
  "base": lambda: bert_shapes(12, 768, 3072),
  "large": lambda: bert_shapes(24, 1024, 4096),
  "small": small_shapes,
  "tiny": lambda: bert_shapes(2, 64, 256, vocab=1000, positions=64),
}


def _gradients(shapes: Shapes, seed: int = 0) -> dict[str, np.ndarray]:
  # Values of a real gradient's magnitude: every large tensor is clipped, and
  # no moment underflows into float32 denormals.
  rng = np.random.default_rng(seed)
  return {
    name: (rng.standard_normal(shape, np.float32) * 1e-3)
    for name, shape in shapes
  }


# --------------------------------------------------------------------------
# Memory and machine.


def _status_kib(field: str) -> int:
  with open("/proc/self/status") as f:
    return int(re.search(field + r":\s+(\d+)", f.read()).group(1))


def _reset_peak_rss() -> bool:
  try:
    with open("/proc/self/clear_refs", "w") as f:
      f.write("5")
    return True
  except OSError:
    return False


class _PeakMemory:
  """Peak resident memory above what was resident on entry, in bytes."""

  def __enter__(self):
    gc.collect()
    self.base = _status_kib("VmRSS") * 1024
    self.resettable = _reset_peak_rss()
    self.peak = None
    return self

  def __exit__(self, *exc):
    if self.resettable:
      self.peak = _status_kib("VmHWM") * 1024 - self.base


def machine() -> dict[str, Any]:
  """A description of the machine the numbers were taken on."""
  model = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      model = re.search(r"model name\s*:\s*(.*)", f.read()).group(1)
  except (OSError, AttributeError):
    pass
  info = {
    "cpu": model,
    "cores": os.cpu_count(),
    "memory_gib": round(
      os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1
    ),
    "jax": jax.__version__,
    "optax": optax.__version__,
    "backend": jax.default_backend(),
    "devices": [str(d) for d in jax.devices()],
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
    "load_average": os.getloadavg(),
  }
  torch = _torch()
  if torch is not None:
    info["torch"] = torch.__version__
    info["torch_threads"] = torch.get_num_threads()
  return info


def _torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return torch


def triad_bandwidth(elements: int = 2**25, repeats: int = 10) -> float:
  """STREAM triad ``a = b + s * c`` in float32 with torch, bytes/s (best)."""
  torch = _torch()
  if torch is None:
    b = np.ones(elements, np.float32)
    c = np.ones(elements, np.float32)
    a = np.empty_like(b)

    def triad():
      np.multiply(c, np.float32(3.0), out=a)
      np.add(a, b, out=a)

    bytes_moved = 5 * 4 * elements  # numpy needs two passes
  else:
    b = torch.ones(elements)
    c = torch.ones(elements)
    a = torch.empty(elements)

    def triad():
      torch.add(b, c, alpha=3.0, out=a)

    bytes_moved = TRIAD_BYTES * elements
  triad()
  best = min(_timed(triad) for _ in range(repeats))
  return bytes_moved / best


def _timed(fn: Callable[[], Any]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


# --------------------------------------------------------------------------
# Candidates: each builds its state, runs steps, and frees everything.


@dataclasses.dataclass
class Candidate:
  """One optimizer under test.

  ``start(grads)`` allocates the parameters and state and returns a callable
  running one step (synchronously); ``stop()`` frees them.
  """

  name: str
  framework: str
  start: Callable[[], Callable[[], None]]
  stop: Callable[[], None]
  compile_s: float | None = None
  structure: dict[str, Any] | None = None


def _jax_candidate(
  name: str,
  make_opt: Callable[[], optax.GradientTransformation],
  shapes: Shapes,
  grads: dict[str, jax.Array],
  layout: flatten.Layout | None = None,
) -> Candidate:
  """``layout``: parameters and gradients live packed (:mod:`flatten`)."""
  opt = make_opt()
  abstract = {n: jax.ShapeDtypeStruct(s, jnp.float32) for n, s in shapes}
  if layout is not None:
    abstract = jax.eval_shape(functools.partial(flatten.pack, layout), abstract)
    grads = _pack_numpy(layout, grads, abstract)
  abstract_state = jax.eval_shape(opt.init, abstract)

  def step(params, grads, state):
    updates, state = opt.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  start = time.perf_counter()
  lowered = jax.jit(step, donate_argnums=(0, 2)).lower(
    abstract, abstract, abstract_state
  )
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  cell: dict[str, Any] = {}

  def begin():
    cell["params"] = jax.tree.map(
      lambda a: jnp.full(a.shape, 0.02, a.dtype), abstract
    )
    cell["state"] = jax.jit(opt.init)(cell["params"])
    jax.block_until_ready(cell)

    def one_step():
      cell["params"], cell["state"] = compiled(
        cell["params"], grads, cell["state"]
      )
      jax.block_until_ready((cell["params"], cell["state"]))

    return one_step

  return Candidate(
    name,
    "jax",
    begin,
    cell.clear,
    compile_s,
    structure=_structure(compiled.as_text()),
  )


def _pack_numpy(
  layout: flatten.Layout, tree: Any, packed: dict[str, jax.ShapeDtypeStruct]
) -> dict[str, jax.Array]:
  # flatten.pack, without compiling one small kernel per leaf outside jit;
  # ``packed`` (its abstract result) gives each group's block shape.
  flat = {g: np.zeros(n, np.float32) for g, n in layout.sizes.items()}
  for (group, offset, size, _), leaf in zip(
    layout.slots, layout.treedef.flatten_up_to(tree)
  ):
    flat[group][offset : offset + size] = np.ravel(leaf)
  return {g: jnp.asarray(a.reshape(packed[g].shape)) for g, a in flat.items()}


def _structure(hlo: str) -> dict[str, Any]:
  """Counts in the compiled step's HLO that the step time follows."""
  entry = hlo[hlo.index("\nENTRY") :]
  return {
    "fusions": len(re.findall(r"= [^=]*\bfusion\(", entry)),
    "copies": len(re.findall(r"= \S+ copy\(", entry)),
    "f64_ops": len(re.findall(r"\bf64\[", hlo)),
  }


def _torch_candidate(
  name: str, kind: str, shapes: Shapes, grads: Sequence[Any]
) -> Candidate:
  torch = _torch()
  cell: dict[str, Any] = {}

  def begin():
    params = [torch.nn.Parameter(torch.full(s, 0.02)) for _, s in shapes]
    for p, g in zip(params, grads):
      p.grad = g
    clip = None
    if kind == "bertadam":
      from pytorch_pretrained_bert import optimization  # pylint: disable=g-import-not-at-top

      opt = optimization.BertAdam(
        params,
        lr=LR,
        warmup=WARMUP,
        t_total=T_TOTAL,
        b1=B1,
        b2=B2,
        e=EPS,
        weight_decay=WEIGHT_DECAY,
        max_grad_norm=MAX_NORM,
      )
    else:
      fused = kind.startswith("fused")
      opt = torch.optim.AdamW(
        params,
        lr=LR,
        betas=(B1, B2),
        eps=EPS,
        weight_decay=WEIGHT_DECAY,
        fused=fused,
        foreach=not fused,
      )
      if kind.endswith("+clip"):
        clip = lambda: torch.nn.utils.clip_grad_norm_(
          params, MAX_NORM, foreach=True
        )
    cell.update(params=params, opt=opt)

    def one_step():
      if clip is not None:
        clip()
      opt.step()

    return one_step

  return Candidate(name, "torch", begin, cell.clear)


def candidates(
  tree: str,
  shapes: Shapes,
  grads_np: dict[str, np.ndarray],
  with_torch: bool,
  log: Callable[[str], None] = print,
) -> Iterator[Candidate]:
  """Every candidate for ``tree``, in table order."""
  schedule = dict(warmup=WARMUP, t_total=T_TOTAL)
  hyper = dict(
    b1=B1, b2=B2, e=EPS, weight_decay=WEIGHT_DECAY, max_grad_norm=MAX_NORM
  )
  layout = flatten.layout_of(
    {n: jax.ShapeDtypeStruct(s, jnp.float32) for n, s in shapes}
  )
  yield _jax_candidate(
    "flat_bertadam (packed params)",
    lambda: flatten.flat_bertadam(layout, LR, **schedule, **hyper),
    shapes,
    grads_np,
    layout,
  )
  if tree in TREE_WISE_SKIPPED:
    log(f"[{tree}] tree-wise JAX candidates skipped: {TREE_WISE_SKIPPED[tree]}")
  else:
    grads = {n: jnp.asarray(g) for n, g in grads_np.items()}
    yield _jax_candidate(
      "bertadam", lambda: alias.bertadam(LR, **schedule, **hyper), shapes, grads
    )
    yield _jax_candidate(
      "bertadam(clip='global')",
      lambda: alias.bertadam(LR, **schedule, **hyper, clip="global"),
      shapes,
      grads,
    )
    yield _jax_candidate(
      "optax clip_by_global_norm+adamw",
      lambda: optax.chain(
        optax.clip_by_global_norm(MAX_NORM),
        optax.adamw(LR, B1, B2, EPS, weight_decay=WEIGHT_DECAY),
      ),
      shapes,
      grads,
    )
  if not with_torch:
    return
  torch = _torch()
  torch_grads = [torch.from_numpy(grads_np[n].copy()) for n, _ in shapes]
  yield _torch_candidate(
    "torch BertAdam (pytorch-pretrained-bert)", "bertadam", shapes, torch_grads
  )
  yield _torch_candidate(
    "torch AdamW(fused)+clip_grad_norm_", "fused+clip", shapes, torch_grads
  )
  yield _torch_candidate("torch AdamW(fused)", "fused", shapes, torch_grads)
  yield _torch_candidate("torch AdamW(foreach)", "foreach", shapes, torch_grads)


# --------------------------------------------------------------------------
# The run.


def run_tree(
  tree: str,
  *,
  rounds: int = 3,
  steps: int = 4,
  with_torch: bool = True,
  log: Callable[[str], None] = print,
) -> dict[str, Any]:
  """Times every candidate on one tree, interleaved over ``rounds``."""
  shapes = TREES[tree]()
  n_params = sum(math.prod(s) for _, s in shapes)
  log(f"[{tree}] {len(shapes)} tensors, {n_params / 1e6:.1f}M params")
  grads_np = _gradients(shapes)
  cands = list(candidates(tree, shapes, grads_np, with_torch, log))
  del grads_np
  times: dict[str, list[float]] = {c.name: [] for c in cands}
  peaks: dict[str, int] = {}
  triads = []
  for r in range(rounds):
    triads.append(triad_bandwidth())
    for c in cands:
      with _PeakMemory() as mem:
        one_step = c.start()
        one_step()  # warm-up: first-touch page faults, allocator
        for _ in range(steps):
          times[c.name].append(_timed(one_step))
        c.stop()
        del one_step
      if mem.peak is not None:
        peaks[c.name] = max(peaks.get(c.name, 0), mem.peak)
      gc.collect()
      log(
        f"  round {r + 1}/{rounds} {c.name}: "
        f"{statistics.median(times[c.name][-steps:]) * 1e3:.1f} ms"
      )
  results = []
  for c in cands:
    results.append(
      dict(
        name=c.name,
        framework=c.framework,
        times_s=times[c.name],
        median_s=statistics.median(times[c.name]),
        min_s=min(times[c.name]),
        max_s=max(times[c.name]),
        compile_s=c.compile_s,
        peak_bytes=peaks.get(c.name),
        structure=c.structure,
      )
    )
  del cands
  gc.collect()
  return _derive(tree, len(shapes), n_params, results, max(triads))


def _derive(
  tree: str,
  n_tensors: int,
  n_params: int,
  results: list[dict[str, Any]],
  triad: float,
) -> dict[str, Any]:
  by_name = {r["name"]: r for r in results}
  fused = by_name.get("torch AdamW(fused)")
  fused_bw = FUSED_BYTES * n_params / fused["median_s"] if fused else None
  bandwidth = max(triad, fused_bw or 0.0)
  floor_s = FLOOR_BYTES * n_params / bandwidth
  optax_r = by_name.get("optax clip_by_global_norm+adamw")
  torch_clip = by_name.get("torch AdamW(fused)+clip_grad_norm_")
  # Parameters and both moments are the candidate's own; the gradients are
  # shared by all candidates, hence counted once, outside the peak.
  own_bytes = 3 * 4 * n_params
  for r in results:
    r["bandwidth_gbs"] = FLOOR_BYTES * n_params / r["median_s"] / 1e9
    r["x_floor"] = r["median_s"] / floor_s
    r["x_optax"] = r["median_s"] / optax_r["median_s"] if optax_r else None
    r["x_torch_fused_clip"] = (
      r["median_s"] / torch_clip["median_s"] if torch_clip else None
    )
    r["peak_over_state"] = (
      r["peak_bytes"] / own_bytes if r["peak_bytes"] is not None else None
    )
  return dict(
    tree=tree,
    tensors=n_tensors,
    params=n_params,
    triad_gbs=triad / 1e9,
    fused_torch_gbs=fused_bw / 1e9 if fused_bw else None,
    bandwidth_gbs=bandwidth / 1e9,
    floor_s=floor_s,
    results=results,
  )


def markdown(report: dict[str, Any]) -> str:
  """The table of one tree's results."""
  lines = [
    f"**{report['tree']}**: {report['tensors']} tensors, "
    f"{report['params'] / 1e6:.1f}M float32 params; triad "
    f"{report['triad_gbs']:.1f} GB/s"
    + (
      f", torch fused AdamW {report['fused_torch_gbs']:.1f} GB/s"
      if report["fused_torch_gbs"]
      else ""
    )
    + f"; floor (32 B/param at {report['bandwidth_gbs']:.1f} GB/s) "
    f"{report['floor_s'] * 1e3:.1f} ms",
    "",
    "| optimizer | median ms | min-max ms | compile s | peak / (p+m+v) |"
    " GB/s @32B | x floor | x optax | x torch fused+clip |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
  ]

  def fmt(value, spec):
    return "-" if value is None else format(value, spec)

  for r in report["results"]:
    lines.append(
      f"| {r['name']} | {r['median_s'] * 1e3:.1f} | "
      f"{r['min_s'] * 1e3:.1f}-{r['max_s'] * 1e3:.1f} | "
      f"{fmt(r['compile_s'], '.2f')} | {fmt(r['peak_over_state'], '.2f')} | "
      f"{r['bandwidth_gbs']:.1f} | {r['x_floor']:.2f} | "
      f"{fmt(r['x_optax'], '.2f')} | {fmt(r['x_torch_fused_clip'], '.2f')} |"
    )
  return "\n".join(lines)


def check_trees(trees: Sequence[str]) -> list[str]:
  """``trees`` if each is a name of :data:`TREES`, else a ``ValueError``."""
  if not trees:
    raise ValueError(
      f"trees={list(trees)!r} is empty; expected names of {sorted(TREES)}."
    )
  for tree in trees:
    if tree not in TREES:
      raise ValueError(f"tree={tree!r} is not one of {sorted(TREES)}.")
  return list(trees)


def _write_json(report: dict[str, Any], out: str) -> None:
  # Atomic: an interrupted run keeps the previous file or the last complete
  # report, never half of one.
  from bertadam_optax.cli import main as cli  # pylint: disable=g-import-not-at-top

  with cli.atomic_output(out, "w") as f:
    json.dump(report, f, indent=1)


def run(
  trees: Sequence[str],
  *,
  rounds: int = 3,
  steps: int = 4,
  with_torch: bool = True,
  out: str | None = None,
  log: Callable[[str], None] = print,
) -> dict[str, Any]:
  """Runs the suite on ``trees``, prints the tables, optionally saves JSON.

  Args:
    trees: names of :data:`TREES`.
    rounds: interleaved rounds over all candidates (>= 1).
    steps: timed steps per candidate and round (>= 1).
    with_torch: time the PyTorch candidates too (if torch is installed).
    out: a JSON path, rewritten after every tree.
    log: where the progress lines and the tables go.

  Returns:
    The report written to ``out``: the machine, the settings and one entry
    per tree with every candidate's times, compile time, peak memory and
    compiled structure.
  """
  check_trees(trees)
  for name, value in (("rounds", rounds), ("steps", steps)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(
        f"{name}={value!r} is out of range; expected an integer >= 1."
      )
  if with_torch and _torch() is None:
    log("torch is not installed: timing the JAX candidates only.")
    with_torch = False
  report = dict(
    machine=machine(),
    rounds=rounds,
    steps_per_round=steps,
    started=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    trees=[],
  )
  for tree in trees:
    report["trees"].append(
      run_tree(tree, rounds=rounds, steps=steps, with_torch=with_torch, log=log)
    )
    log("")
    log(markdown(report["trees"][-1]))
    log("")
    if out:  # after every tree, so an interrupted run keeps what it measured
      _write_json(report, out)
      log(f"wrote {out}")
  return report


def main(argv: Sequence[str] | None = None) -> int:
  """``python benchmarks/optimizer_step.py ARGS``: ``bertadam-optax bench``.

  The same parser and checks (a bad flag is one line on stderr, exit 2).
  """
  import sys  # pylint: disable=g-import-not-at-top

  from bertadam_optax.cli import bench  # pylint: disable=g-import-not-at-top
  from bertadam_optax.cli import main as cli  # pylint: disable=g-import-not-at-top

  argv = list(sys.argv[1:] if argv is None else argv)
  # Run as a script this module is __main__: the command uses it as it is
  # rather than importing the file a second time.
  sys.modules.setdefault(bench.HARNESS_MODULE, sys.modules[__name__])
  return cli.main(["bench", *argv])


if __name__ == "__main__":
  raise SystemExit(main())
