"""The release wheel (README, "Releasing"). Skipped unless RNNFAST_WHEEL_TEST is set:

- ``RNNFAST_WHEEL_TEST=1``: runs ``.ci/wheel`` (build the wheel as cibuildwheel does,
  auditwheel repair, install into a fresh venv, demo and tests there) and checks the
  repaired wheel. Minutes from scratch; quick when its build folder is up to date.
- ``RNNFAST_WHEEL_TEST=installed``: checks the rnnfast this Python imports as an
  installed release wheel (cibuildwheel's test-command and ``.ci/wheel`` run this):
  every kernel build is there and the loader picks the widest this CPU runs, no CUDA
  or test-only modules, manylinux tag.
"""

import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

MODE = os.environ.get("RNNFAST_WHEEL_TEST", "")
ROOT = Path(__file__).resolve().parents[1]

installed = pytest.mark.skipif(MODE != "installed", reason="checks an installed release wheel: "
                               "set RNNFAST_WHEEL_TEST=installed")
build = pytest.mark.skipif(MODE in ("", "installed"), reason="builds the wheel (minutes): set "
                           "RNNFAST_WHEEL_TEST=1")


def expected_levels():
    """CMakeLists' RNNFAST_ISA_LEVELS default for this machine, widest first."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        return ["x86-64-v4", "x86-64-v3", "x86-64"]
    return ["generic"]


@installed
def test_imported_from_site_packages():
    import rnnfast

    where = Path(rnnfast.__file__).resolve()
    paths = sysconfig.get_paths()
    libs = {Path(paths["purelib"]).resolve(), Path(paths["platlib"]).resolve()}
    assert any(lib in where.parents for lib in libs), f"rnnfast imported from {where}, not {libs}"
    assert importlib.metadata.version("rnnfast") == rnnfast.__version__


@installed
def test_wheel_tag_is_manylinux_for_this_python():
    tags = [line.split(":", 1)[1].strip()
            for line in importlib.metadata.distribution("rnnfast").read_text("WHEEL").splitlines()
            if line.startswith("Tag:")]
    py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert tags, "no Tag in the WHEEL file"
    for tag in tags:
        interp, abi, plat = tag.split("-")
        assert (interp, abi) == (py, py), tag
        assert re.fullmatch(rf"manylinux_\d+_\d+_{platform.machine()}", plat), tag


@installed
def test_every_kernel_build_is_installed_and_the_widest_is_loaded():
    import rnnfast
    from rnnfast import _cpu, _loader

    want = expected_levels()
    assert _loader.available_levels() == want
    supported = [lv for lv in want if _cpu.supports(lv)]
    assert supported, f"no kernel build of {want} runs on this CPU"
    assert rnnfast.build_info()["isa_level"] == supported[0]
    for level in supported:
        core = importlib.import_module(f"rnnfast.{_loader.module_name(level)}")
        assert core.build_info()["isa_level"] == level


@installed
def test_no_cuda_or_test_only_modules():
    for name in ("_cuda", "_cuda_emulated"):
        assert importlib.util.find_spec(f"rnnfast.{name}") is None, name
    import rnnfast

    pkg = Path(rnnfast.__file__).parent
    mods = sorted(p.name.split(".", 1)[0] for p in pkg.glob("*.so"))
    assert mods == sorted(["_cpu", *(f"_core_{lv.replace('-', '_')}" for lv in expected_levels())])
    assert not (pkg.parent / "rnnfast.libs").exists(), "auditwheel grafted libraries into the wheel"


@installed
def test_demo_from_the_installed_wheel(tmp_path):
    out = subprocess.run([sys.executable, "-m", "rnnfast", "demo", "--epochs", "1", "--units", "8"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "| naive last value |" in out.stdout


@build
def test_ci_wheel_builds_repairs_installs_and_runs_the_demo():
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("RNNFAST_WHEEL_TEST", None)
    out = subprocess.run(["bash", str(ROOT / ".ci" / "wheel")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=3600)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-6000:]
    m = re.search(r"repaired wheel: (\S+\.whl)", out.stdout)
    assert m, out.stdout[-3000:]
    wheel = Path(m.group(1))
    assert re.fullmatch(r"rnnfast-[^-]+-(cp\d+)-\1-manylinux_\d+_\d+_[\w.]+\.whl", wheel.name), wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    for level in expected_levels():
        assert any(n.startswith(f"rnnfast/_core_{level.replace('-', '_')}.") for n in names), level
    assert not any("_cuda" in n for n in names)
    assert "| naive last value |" in out.stdout  # the demo ran from the fresh venv
