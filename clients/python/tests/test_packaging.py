"""The package builds as a wheel and installs with `pip install ./clients/python` (into a scratch
virtualenv that sees this interpreter's packages, so no dependency is downloaded; pip fetches
only the build backend, hatchling, from the package index)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]


def run(*cmd: str, cwd: Path = PACKAGE, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.time_limit(300)
def test_builds_a_wheel_with_its_type_information(tmp_path: Path) -> None:
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(PACKAGE))
    [wheel] = list(tmp_path.glob("prism_gateway_client-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {"prism/__init__.py", "prism/py.typed", "prism/_client.py", "prism/types.py"} <= names
    assert not any(n.startswith("tests/") for n in names)
    assert "Requires-Dist: openai<4,>=3.0" in metadata or "Requires-Dist: openai>=3.0,<4" in metadata, metadata


@pytest.mark.time_limit(300)
def test_pip_installs_the_directory(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--system-site-packages", str(venv))
    python = venv / "bin" / "python"
    # The command the README gives, from the repository root.
    run(str(python), "-m", "pip", "install", "-q", "./clients/python", cwd=PACKAGE.parents[1])
    shown = run(str(python), "-c", "import prism, openai; from prism import Prism, AsyncPrism; "
                                   "print(prism.__file__); print(prism.__version__)", cwd=tmp_path)
    location, version = shown.stdout.split()
    assert location.startswith(str(venv)), location  # the installed copy, not src/
    assert (Path(location).parent / "py.typed").is_file()
    assert version == (PACKAGE / "src" / "prism" / "_version.py").read_text().split('"')[1]
