"""Writes each ``NN_name.ipynb`` from its ``NN_name.py`` source, executed.

    python notebooks/build_notebooks.py            # full size, outputs kept
    python notebooks/build_notebooks.py --small    # the CI size, a quick look

The sources are Python files in jupytext's percent format (``# %%`` starts a
code cell, ``# %% [markdown]`` a text cell), so ruff, pyright and reviewers
read the code as code. Edit the ``.py`` files, never the ``.ipynb``, then rerun
this script. It executes each notebook with an ipykernel of the interpreter
running it and stores the outputs, so the committed notebooks read well on a
code host and in the documentation site (which renders them unexecuted).
``tests/test_notebooks.py`` executes them again, small, in CI.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile

import jupytext
import nbclient
import nbformat
from nbformat import v4

HERE = pathlib.Path(__file__).resolve().parent
SMALL_ENV = "BERTADAM_NOTEBOOK_SMALL"


def source_of(name: str) -> pathlib.Path:
  """The jupytext (percent format) source of notebook ``name``."""
  return HERE / pathlib.Path(name).with_suffix(".py").name


NOTEBOOKS = sorted(p.with_suffix(".ipynb").name for p in HERE.glob("[0-9]*.py"))


def build(name: str) -> nbformat.NotebookNode:
  """The notebook ``name``, without outputs, from its ``.py`` source."""
  text = jupytext.reads(source_of(name).read_text(), fmt="py:percent")
  nb = v4.new_notebook()
  nb.metadata["kernelspec"] = {
    "name": "python3",
    "display_name": "Python 3",
    "language": "python",
  }
  nb.metadata["language_info"] = {"name": "python"}
  stem = name.split("_")[0]
  for i, source_cell in enumerate(text.cells):
    cell = (
      v4.new_markdown_cell(source_cell.source)
      if source_cell.cell_type == "markdown"
      else v4.new_code_cell(source_cell.source)
    )
    cell["id"] = f"nb{stem}-{i:02d}"  # stable ids: no churn on rebuilds
    nb.cells.append(cell)
  return nb


def execute(
  nb: nbformat.NotebookNode, *, small: bool, timeout: int = 600
) -> nbformat.NotebookNode:
  """Runs ``nb`` in place with an ipykernel of this interpreter."""
  # Imported here: only executing needs a kernel, not listing or building.
  import ipykernel.kernelspec

  with tempfile.TemporaryDirectory() as prefix:
    ipykernel.kernelspec.install(kernel_name="python3", prefix=prefix)
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", SMALL_ENV)}
    os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share", "jupyter")
    os.environ[SMALL_ENV] = "1" if small else "0"
    try:
      nbclient.NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(HERE)}},
      ).execute()
    finally:
      for key, value in saved.items():
        if value is None:
          os.environ.pop(key, None)
        else:
          os.environ[key] = value
  return nb


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument(
    "--small", action="store_true", help="execute at the CI size"
  )
  parser.add_argument(
    "--no-execute",
    action="store_true",
    help="write the notebooks without outputs",
  )
  parser.add_argument("names", nargs="*", help="only these notebooks")
  args = parser.parse_args(argv)
  for name in NOTEBOOKS:
    if args.names and name not in args.names:
      continue
    nb = build(name)
    if not args.no_execute:
      execute(nb, small=args.small)
    nbformat.write(nb, HERE / name)
    print(f"wrote {HERE / name}", file=sys.stderr)


if __name__ == "__main__":
  main()
