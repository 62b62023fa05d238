"""The wheel is what users install: the package and its data, and it works.

``python -m build --wheel`` runs on a copy of the checkout (nothing is written
into the tree under test). The wheel must hold ``bertadam_optax`` (with
``py.typed`` and the CLI's data) and its metadata only: no tests, notebooks,
benchmarks or docs. It is then installed, without its dependencies, into a
fresh virtual environment that sees this interpreter's site-packages through
a ``.pth`` line (so nothing is downloaded), and README's quickstart and
``bertadam-optax list`` run from that install, in a folder where the checkout
is not importable.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile

import pytest

from tests.references import require

ROOT = pathlib.Path(__file__).resolve().parents[1]
IGNORED = shutil.ignore_patterns(
  ".git",
  ".venv",
  "__pycache__",
  "*.egg-info",
  "build",
  "dist",
  "_build",
  "_generated",
  ".pytest_cache",
  "bertadam-demo",
)


def run(command, **kwargs):
  result = subprocess.run(
    command, capture_output=True, text=True, timeout=300, **kwargs
  )
  assert result.returncode == 0, (
    f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n"
    f"--- stderr ---\n{result.stderr[-3000:]}"
  )
  return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
  require("build")
  source = tmp_path_factory.mktemp("source") / "bertadam-optax"
  shutil.copytree(ROOT, source, ignore=IGNORED)
  out = tmp_path_factory.mktemp("dist")
  # No isolation: the build backend (setuptools) is the one installed here,
  # so the test needs no network.
  run(
    [
      sys.executable,
      "-m",
      "build",
      "--wheel",
      "--no-isolation",
      "--skip-dependency-check",
      "--outdir",
      str(out),
      str(source),
    ]
  )
  wheels = list(out.glob("bertadam_optax-*.whl"))
  assert len(wheels) == 1, wheels
  return wheels[0]


def test_wheel_holds_the_package_and_its_data_only(wheel):
  names = zipfile.ZipFile(wheel).namelist()
  top = {name.split("/")[0] for name in names}
  dist_info = {t for t in top if t.endswith(".dist-info")}
  assert top - dist_info == {"bertadam_optax"}, sorted(top)
  assert "bertadam_optax/py.typed" in names
  assert any(n.startswith("bertadam_optax/cli/data/") for n in names)
  for unwanted in ("tests/", "notebooks/", "benchmarks/", "docs/"):
    assert not any(unwanted in name for name in names), unwanted
  # Every module of the checkout's package is in the wheel.
  modules = {
    p.relative_to(ROOT).as_posix()
    for p in (ROOT / "bertadam_optax").rglob("*.py")
  }
  assert modules <= set(names), sorted(modules - set(names))
  metadata = zipfile.ZipFile(wheel).read(f"{dist_info.pop()}/METADATA").decode()
  assert re.search(r"^Name: bertadam-optax$", metadata, flags=re.M)
  assert "Requires-Dist: optax" in metadata


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> pathlib.Path:
  """A fresh venv with the wheel installed; returns its folder."""
  env_dir = tmp_path_factory.mktemp("venv") / "venv"
  venv.EnvBuilder(with_pip=False).create(env_dir)
  python = env_dir / "bin" / "python"
  purelib = run(
    [
      str(python),
      "-c",
      "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]
  ).stdout.strip()
  # The dependencies (jax, optax, ...) come from this interpreter's
  # site-packages, listed after the venv's own: the wheel's copy of the
  # package wins. A plain path line does not run that folder's .pth files,
  # so an editable install of the checkout there stays out of sight.
  pathlib.Path(purelib, "dependencies.pth").write_text(
    sysconfig.get_paths()["purelib"] + "\n"
  )
  run(
    [
      sys.executable,
      "-m",
      "pip",
      "--python",
      str(python),
      "install",
      "--no-deps",
      "--no-index",
      "--quiet",
      str(wheel),
    ]
  )
  return env_dir


def clean_env():
  env = {
    k: v
    for k, v in os.environ.items()
    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
  }
  env["JAX_PLATFORMS"] = "cpu"
  return env


def test_quickstart_runs_from_the_wheel(installed, tmp_path):
  readme = (ROOT / "README.md").read_text()
  quickstart = re.search(
    r"## Quickstart\n+```python\n(.*?)```", readme, flags=re.DOTALL
  ).group(1)
  code = (
    "import bertadam_optax, pathlib, sys\n"
    f"assert pathlib.Path(bertadam_optax.__file__).is_relative_to("
    f"{str(installed)!r}), bertadam_optax.__file__\n" + quickstart
  )
  result = run(
    [str(installed / "bin" / "python"), "-c", code],
    cwd=tmp_path,
    env=clean_env(),
  )
  assert float(result.stdout.split()[-1]) == pytest.approx(1e-6)


def test_console_script_lists_the_schedules(installed, tmp_path):
  script = installed / "bin" / "bertadam-optax"
  assert script.exists()
  result = run([str(script), "list"], cwd=tmp_path, env=clean_env())
  for name in (
    "warmup_linear",
    "pretrained_bert.warmup_linear",
    "transformers.cosine",
  ):
    assert re.search(rf"^\s*{re.escape(name)}\b", result.stdout, flags=re.M), (
      name,
      result.stdout[:2000],
    )
