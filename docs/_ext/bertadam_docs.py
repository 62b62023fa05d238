"""Sphinx extension: the pages' figures and tables, generated from the code.

* ``schedule-plot``: a figure drawn by ``bertadam-optax plot`` at build time,
  captioned with the exact command that draws it, so every figure of the site
  can be reproduced from a shell. Names are given as arguments, or a whole
  family of the schedule registry with ``:family:``.
* ``benchmark-tables``: the tables of every ``benchmarks/results/*.json``
  (what ``bertadam-optax bench --out`` writes), with the machine they ran on.
* ``public-module``: a module's API page, from its ``__all__``: every name
  it exports is documented by autodoc, except submodules (linked) and names
  that a more specific module's page documents already (listed with a link),
  so an object has exactly one entry and new names appear by themselves.
* At ``builder-inited``, the committed notebooks are copied under
  ``_generated/notebooks`` so the site renders them with their outputs.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import pathlib
import shlex
import sys
from typing import Any
from typing import ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.errors import PycodeError
from sphinx.pycode import ModuleAnalyzer
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

DOCS = pathlib.Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
GENERATED = DOCS / "_generated"


def family_names(family: str) -> list[str]:
  """The registry names of one schedule family, in the registry's order."""
  from bertadam_optax.schedules import registry

  names = [
    name
    for name, info in registry.SCHEDULE_REGISTRY.items()
    if info.family == family
  ]
  if not names:
    families = sorted({i.family for i in registry.SCHEDULE_REGISTRY.values()})
    raise ValueError(
      f"no schedule of family {family!r}; families: {', '.join(families)}"
    )
  return names


class SchedulePlot(SphinxDirective):
  """``bertadam-optax plot NAMES OPTIONS -o PNG``, as a captioned figure."""

  optional_arguments = 100
  has_content = False
  option_spec: ClassVar[dict[str, Any]] = {
    "family": directives.unchanged,
    "options": directives.unchanged,
    "caption": directives.unchanged,
  }

  def run(self) -> list[nodes.Node]:
    from bertadam_optax.cli import main as cli

    names = list(self.arguments)
    if "family" in self.options:
      names += family_names(self.options["family"].strip())
    if not names:
      raise self.error("schedule-plot needs schedule names or :family:")
    flags = shlex.split(self.options.get("options", ""))
    key = hashlib.sha1(" ".join(names + flags).encode()).hexdigest()[:12]
    png = GENERATED / "plots" / f"{key}.png"
    drawn = png.with_name(f".{key}.{os.getpid()}.png")
    drawn.parent.mkdir(parents=True, exist_ok=True)
    argv = ["plot", *names, *flags, "-o", str(drawn)]
    status = cli.main(argv)
    if status == 0 and drawn.exists():
      replace_file(png, drawn.read_bytes())
      drawn.unlink()
    else:
      raise self.error(
        f"bertadam-optax {shlex.join(argv)} exited with status {status}"
      )
    command = shlex.join(
      ["bertadam-optax", "plot", *names, *flags, "-o", "schedules.png"]
    )
    figure = nodes.figure()
    figure += nodes.image(
      uri=f"/_generated/plots/{png.name}", alt=", ".join(names)
    )
    caption = nodes.caption()
    if "caption" in self.options:
      caption += nodes.Text(self.options["caption"] + " Drawn by ")
    else:
      caption += nodes.Text("Drawn by ")
    caption += nodes.literal(text=command)
    figure += caption
    return [figure]


class PublicModule(SphinxDirective):
  """``automodule`` of the names in ``__all__`` this page owns."""

  required_arguments = 1
  has_content = False

  def _owner(self, obj: Any, module: str) -> str | None:
    """The API module listed before ``module`` that also exports ``obj``."""
    for other in self.config.bertadam_api_modules:
      if other == module:
        return None
      exported = importlib.import_module(other)
      for name in getattr(exported, "__all__", ()):
        if getattr(exported, name, None) is obj:
          return f"{other}.{name}"
    return None

  def _entry(self, module_name: str, name: str, obj: Any) -> list[str]:
    """The reST that documents ``module_name.name``."""
    qualified = f"{module_name}.{name}"
    if inspect.isclass(obj):
      return [
        f".. autoclass:: {qualified}",
        "   :members:",
        "   :undoc-members:",
        "",
      ]
    if callable(obj):
      return [f".. autofunction:: {qualified}", ""]
    # Constants: their docstring is the string literal after the assignment,
    # in the module that assigns them (found by Sphinx's source analyzer).
    lines = [f".. py:data:: {name}", f"   :module: {module_name}", ""]
    for home in sorted(
      m
      for m in list(sys.modules)
      if m == "bertadam_optax" or m.startswith("bertadam_optax.")
    ):
      if getattr(sys.modules[home], name, None) is not obj:
        continue
      try:
        docs = ModuleAnalyzer.for_module(home).find_attr_docs()
      except PycodeError:
        continue
      if ("", name) in docs:
        lines += ["   " + line for line in docs[("", name)]]
        break
    value = repr(obj)
    if len(value) <= 400:
      lines += ["", "   Value: ``" + value.replace("`", "\\`") + "``"]
    return [*lines, ""]

  def run(self) -> list[nodes.Node]:
    module_name = self.arguments[0]
    if module_name not in self.config.bertadam_api_modules:
      raise self.error(f"{module_name} is not in bertadam_api_modules")
    module = importlib.import_module(module_name)
    names = list(getattr(module, "__all__", ()))
    if not names:
      raise self.error(f"{module_name} has no __all__")
    own, elsewhere, submodules = [], [], []
    for name in names:
      obj = getattr(module, name)
      if inspect.ismodule(obj):
        submodules.append(obj.__name__)
        continue
      owner = self._owner(obj, module_name)
      if owner:
        elsewhere.append((name, owner))
      else:
        own.append(name)
    lines = [f".. automodule:: {module_name}", ""]
    for name in own:
      lines += self._entry(module_name, name, getattr(module, name))
    if submodules:
      lines += ["", ".. rubric:: Submodules", ""]
      lines += [f"* :py:mod:`{sub}`" for sub in submodules]
    if elsewhere:
      lines += ["", ".. rubric:: Also exported here", ""]
      lines += [f"* ``{name}``: :py:obj:`{owner}`" for name, owner in elsewhere]
    container = nodes.section()
    rst = StringList(lines, source=f"<public-module {module_name}>")
    # Parsed as reStructuredText: autodoc writes reST.
    from sphinx.util.docutils import switch_source_input

    with switch_source_input(self.state, rst):
      nested_parse_with_titles(self.state, rst, container)
    return container.children


def _number(value: Any, spec: str) -> str:
  return "-" if value is None else format(value, spec)


def _table(rows: list[list[str]], header: list[str]) -> nodes.table:
  table = nodes.table()
  group = nodes.tgroup(cols=len(header))
  table += group
  for _ in header:
    group += nodes.colspec(colwidth=1)
  head = nodes.thead()
  body = nodes.tbody()
  for cells, section in [(header, head), *[(r, body) for r in rows]]:
    row = nodes.row()
    for text in cells:
      entry = nodes.entry()
      entry += nodes.paragraph(text=text)
      row += entry
    section += row
  group += head
  group += body
  return table


class BenchmarkTables(SphinxDirective):
  """Every benchmark result file, one table per tree of tensors."""

  has_content = False
  option_spec: ClassVar[dict[str, Any]] = {"pattern": directives.unchanged}

  HEADER: ClassVar[list[str]] = [
    "optimizer",
    "median ms",
    "min-max ms",
    "compile s",
    "peak / (p+m+v)",
    "GB/s @32B",
    "x floor",
    "x optax",
    "x torch fused+clip",
  ]

  def run(self) -> list[nodes.Node]:
    pattern = self.options.get("pattern", "benchmarks/results/*.json")
    files = sorted(ROOT.glob(pattern))
    if not files:
      raise self.error(f"no benchmark results match {pattern}")
    out: list[nodes.Node] = []
    for path in files:
      self.env.note_dependency(str(path))
      report = json.loads(path.read_text())
      machine = report["machine"]
      section = nodes.rubric(text=f"{path.relative_to(ROOT)}")
      out.append(section)
      out.append(
        nodes.paragraph(
          text=(
            f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
            f"{machine.get('memory_gib', 0):.0f} GiB; "
            f"jax {machine.get('jax')}, "
            f"optax {machine.get('optax')}, torch {machine.get('torch', '-')} "
            f"({machine.get('torch_threads', '?')} threads); backend "
            f"{machine.get('backend')}; load average at the start "
            f"{_number((machine.get('load_average') or [None])[0], '.1f')}; "
            f"{report['rounds']} interleaved rounds x "
            f"{report['steps_per_round']} timed steps per candidate; started "
            f"{report['started']}."
          )
        )
      )
      for tree in report["trees"]:
        bandwidth = (
          f", torch fused AdamW {tree['fused_torch_gbs']:.1f} GB/s"
          if tree.get("fused_torch_gbs")
          else ""
        )
        out.append(
          nodes.paragraph(
            text=(
              f"{tree['tree']}: {tree['tensors']} tensors, "
              f"{tree['params'] / 1e6:.1f}M float32 parameters; triad "
              f"{tree['triad_gbs']:.1f} GB/s{bandwidth}; floor (32 B/param at "
              f"{tree['bandwidth_gbs']:.1f} GB/s) "
              f"{tree['floor_s'] * 1e3:.1f} ms"
            )
          )
        )
        rows = [
          [
            r["name"],
            f"{r['median_s'] * 1e3:.1f}",
            f"{r['min_s'] * 1e3:.1f}-{r['max_s'] * 1e3:.1f}",
            _number(r.get("compile_s"), ".2f"),
            _number(r.get("peak_over_state"), ".2f"),
            _number(r.get("bandwidth_gbs"), ".1f"),
            _number(r.get("x_floor"), ".2f"),
            _number(r.get("x_optax"), ".2f"),
            _number(r.get("x_torch_fused_clip"), ".2f"),
          ]
          for r in tree["results"]
        ]
        out.append(_table(rows, self.HEADER))
    return out


def replace_file(target: pathlib.Path, data: bytes) -> None:
  """Writes ``data`` to ``target`` atomically, unless it is there already.

  Two builds may run at once (tests in parallel): each sees either the old
  file or the whole new one, never a half-written one.
  """
  if target.exists() and target.read_bytes() == data:
    return
  target.parent.mkdir(parents=True, exist_ok=True)
  temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
  temporary.write_bytes(data)
  os.replace(temporary, target)


def copy_notebooks(app: Sphinx) -> None:
  """The committed notebooks, with their outputs, as pages of the site."""
  del app
  target = GENERATED / "notebooks"
  sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
  for notebook in sources:
    replace_file(target / notebook.name, notebook.read_bytes())
  names = {notebook.name for notebook in sources}
  for stale in target.glob("*.ipynb"):
    if stale.name not in names:
      stale.unlink(missing_ok=True)


def drop_missing_optional_pages(
  app: Sphinx, docname: str, source: list[str]
) -> None:
  """Leaves out of the index's toctrees the optional pages not written yet."""
  if docname != app.config.root_doc:
    return
  missing = {
    page
    for page in app.config.bertadam_optional_pages
    if not (DOCS / f"{page}.md").exists()
  }
  source[0] = (
    "\n".join(
      line for line in source[0].splitlines() if line.strip() not in missing
    )
    + "\n"
  )


def setup(app: Sphinx) -> dict[str, Any]:
  app.add_directive("schedule-plot", SchedulePlot)
  app.add_directive("benchmark-tables", BenchmarkTables)
  app.add_directive("public-module", PublicModule)
  app.add_config_value("bertadam_api_modules", [], "env")
  app.add_config_value("bertadam_optional_pages", [], "env")
  app.connect("source-read", drop_missing_optional_pages)
  app.connect("builder-inited", copy_notebooks)
  return {
    "parallel_read_safe": True,
    "parallel_write_safe": True,
    "version": "1",
  }
