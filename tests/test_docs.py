"""The documentation site builds with warnings as errors, and its code runs.

* The whole site is built once per session, exactly as CONTRIBUTING.md says
  (``python -m sphinx -W --keep-going -b html docs OUT``), in a subprocess,
  into a temporary folder. Sphinx and its extensions come with the ``test``
  extra; under ``CI=true`` a missing one fails instead of skipping.
* Every public name of ``bertadam_optax.__all__``, ``schedules.__all__``,
  ``interop.__all__`` (and the other API modules) has an entry in the API
  reference, the guides' plots and the benchmark tables were generated, and
  the notebooks are pages of the site.
* Every ```python block of ``docs/**/*.md`` runs as written (in its own
  interpreter with 8 simulated CPU devices, from a scratch directory), except
  those preceded by ``<!-- not executed: why -->``.
"""

from __future__ import annotations

import html
import importlib
import inspect
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.references import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(
  p
  for p in DOCS.rglob("*.md")
  if "_build" not in p.parts and "_generated" not in p.parts
)
API_PAGES = {
  "bertadam_optax": "api/bertadam_optax.html",
  "bertadam_optax.schedules": "api/schedules.html",
  "bertadam_optax.interop": "api/interop.html",
  "bertadam_optax.transforms": "api/transforms.html",
  "bertadam_optax.checkpoint": "api/checkpoint.html",
  "bertadam_optax.flatten": "api/flatten.html",
}
BLOCK = re.compile(
  r"(<!-- not executed:[^>]*-->\n)?```python\n(.*?)```", flags=re.DOTALL
)
BLOCKS = [
  (page.relative_to(DOCS).as_posix(), code)
  for page in PAGES
  for marker, code in BLOCK.findall(page.read_text())
  if not marker
]


def build_site(out: pathlib.Path) -> pathlib.Path:
  """The built site's folder; the build's output is in the failure message."""
  for module in ("sphinx", "myst_nb", "sphinx_book_theme", "matplotlib"):
    require(module)
  env = dict(os.environ, MPLBACKEND="Agg", JAX_PLATFORMS="cpu")
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "sphinx",
      "-W",
      "--keep-going",
      "-b",
      "html",
      "-d",
      str(out / ".doctrees"),
      str(DOCS),
      str(out),
    ],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=900,
  )
  assert result.returncode == 0, (
    "the docs build failed (warnings are errors):\n"
    + result.stdout[-3000:]
    + "\n--- stderr ---\n"
    + result.stderr[-6000:]
  )
  return out


def check_pages(site):
  for page in [
    "index.html",
    "getting-started.html",
    "api/index.html",
    "guides/migrating-bertadam.html",
    "guides/porting-configs.html",
    "guides/schedules.html",
    "guides/flax.html",
    "guides/sharding.html",
    "guides/checkpoints.html",
    "guides/command-line.html",
    "guides/performance.html",
    *API_PAGES.values(),
  ]:
    assert (site / page).is_file(), page
  for optional in ("architecture", "guides/megatron"):
    if (DOCS / f"{optional}.md").exists():
      assert (site / f"{optional}.html").is_file(), optional


def check_api_entries(site):
  for module_name, page in API_PAGES.items():
    module = importlib.import_module(module_name)
    text = html.unescape((site / page).read_text())
    ids = set(re.findall(r'id="([^"]+)"', text))
    for name in module.__all__:
      obj = getattr(module, name)
      if inspect.ismodule(obj):
        assert obj.__name__ in text, (module_name, name)
      else:
        # Documented here, or listed here with a link to the page that does.
        assert (
          f"{module_name}.{name}" in ids
          or f"{name}: {module_name}" in text
          or re.search(rf"{re.escape(name)}</span></code>: ", text)
        ), f"{module_name}.{name} has no entry on {page}"


def check_figures_and_tables(site):
  schedules = (site / "guides/schedules.html").read_text()
  plots = re.findall(
    r'<img [^>]*src="\.\./_images/([0-9a-f]{12})\.png"', schedules
  )
  assert len(plots) >= 5
  for name in plots:
    assert (site / "_images" / f"{name}.png").stat().st_size > 10_000
  # Each figure says which command drew it.
  text = html.unescape(re.sub(r"<[^>]+>", "", schedules))
  assert text.count("Drawn by bertadam-optax plot ") == len(plots)
  results = sorted((ROOT / "benchmarks" / "results").glob("*.json"))
  performance = (site / "guides/performance.html").read_text()
  assert performance.count("<table") >= len(results) >= 1
  assert "flat_bertadam" in performance


def check_notebook_pages(site):
  for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
    page = site / "_generated" / "notebooks" / f"{notebook.stem}.html"
    assert page.is_file(), page
    assert "<img" in page.read_text(), f"{page.name} lost its figures"


def test_site(tmp_path):
  # One test builds the site once, whatever the number of pytest workers.
  site = build_site(tmp_path / "html")
  check_pages(site)
  check_api_entries(site)
  check_figures_and_tables(site)
  check_notebook_pages(site)


def test_docs_have_python_blocks():
  assert len(BLOCKS) >= 10
  pages = {page for page, _ in BLOCKS}
  assert "getting-started.md" in pages


@pytest.mark.parametrize(
  "page, code",
  BLOCKS,
  ids=[f"{page}-{i}" for i, (page, _) in enumerate(BLOCKS)],
)
def test_docs_python_block_runs(page, code, tmp_path):
  env = dict(os.environ)
  env["XLA_FLAGS"] = (
    env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
  ).strip()
  env["PYTHONPATH"] = str(ROOT)
  env["MPLBACKEND"] = "Agg"
  result = subprocess.run(
    [sys.executable, "-c", code],
    cwd=tmp_path,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, (
    f"a block of docs/{page} failed:\n{code}\n--- stderr ---\n"
    f"{result.stderr[-4000:]}"
  )
