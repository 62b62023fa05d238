"""The notebooks in ``notebooks/`` run top to bottom, at their CI size.

Each is executed with nbclient in a kernel of the interpreter running the
tests (an ipykernel spec installed into a temporary Jupyter path), with
``BERTADAM_NOTEBOOK_SMALL=1``. Each notebook's source is ``NN_name.py`` in
jupytext's percent format; the committed ``.ipynb`` must hold exactly its
cells (what ``notebooks/build_notebooks.py`` writes), with their outputs.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

import pytest

from tests.references import require

nbclient = require("nbclient")
nbformat = require("nbformat")
kernelspec = require("ipykernel.kernelspec")

ROOT = pathlib.Path(__file__).resolve().parents[1]
FOLDER = ROOT / "notebooks"
NAMES = [
  "01_schedules_gallery.ipynb",
  "02_pretrain_tiny_bert.ipynb",
  "03_pytorch_parity.ipynb",
]
require("jupytext")
CELL_TIMEOUT_S = 120


def load_builder():
  spec = importlib.util.spec_from_file_location(
    "build_notebooks", FOLDER / "build_notebooks.py"
  )
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory):
  prefix = tmp_path_factory.mktemp("kernel")
  kernelspec.install(kernel_name="python3", prefix=str(prefix))
  return str(prefix / "share" / "jupyter")


@pytest.fixture
def small_kernel_env(jupyter_path, monkeypatch):
  monkeypatch.setenv("JUPYTER_PATH", jupyter_path)
  monkeypatch.setenv("BERTADAM_NOTEBOOK_SMALL", "1")
  # Cheaper XLA compilation: the small runs are dominated by compiling.
  flags = os.environ.get("XLA_FLAGS", "")
  monkeypatch.setenv(
    "XLA_FLAGS",
    (
      f"{flags} --xla_backend_optimization_level=0 "
      "--xla_llvm_disable_expensive_passes=true"
    ).strip(),
  )


def execute(nb):
  nbclient.NotebookClient(
    nb,
    timeout=CELL_TIMEOUT_S,
    kernel_name="python3",
    resources={"metadata": {"path": str(FOLDER)}},
  ).execute()
  return nb


def outputs(nb, output_type):
  return [
    o
    for cell in nb.cells
    if cell.cell_type == "code"
    for o in cell.outputs
    if o.output_type == output_type
  ]


def test_every_notebook_is_listed():
  assert sorted(p.name for p in FOLDER.glob("*.ipynb")) == NAMES
  assert sorted(p.name for p in FOLDER.glob("[0-9]*.py")) == [
    name.replace(".ipynb", ".py") for name in NAMES
  ]
  assert load_builder().NOTEBOOKS == NAMES


def test_the_kernel_is_this_interpreter(small_kernel_env):
  del small_kernel_env
  nb = nbformat.v4.new_notebook()
  nb.cells.append(
    nbformat.v4.new_code_cell(
      "import os, sys\nprint(sys.executable)\n"
      "print(os.environ['BERTADAM_NOTEBOOK_SMALL'])"
    )
  )
  text = "".join(o.text for o in outputs(execute(nb), "stream"))
  assert text.split() == [sys.executable, "1"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, small_kernel_env):
  del small_kernel_env
  nb = execute(nbformat.read(FOLDER / name, as_version=4))
  assert not outputs(nb, "error")
  assert outputs(nb, "display_data"), "no figure was drawn"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_built_and_executed(name):
  committed = nbformat.read(FOLDER / name, as_version=4)
  builder = load_builder()
  built = builder.build(name)
  assert [(c.cell_type, c.source) for c in committed.cells] == [
    (c.cell_type, c.source) for c in built.cells
  ], (
    f"edit notebooks/{name.replace('.ipynb', '.py')}, then run "
    "python notebooks/build_notebooks.py"
  )
  code = [c for c in committed.cells if c.cell_type == "code"]
  assert all(c.execution_count for c in code), "run build_notebooks.py"
  assert not outputs(committed, "error")
  assert outputs(committed, "display_data")
