"""The install and build paths the Dockerfile uses, exercised here since no Docker engine runs."""
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DIST = Path(os.environ.get("PRISM_BIN", REPO / "dist" / "prism-gateway")).parent


def run(*args, env=None):
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def test_every_install_mode_resolves_its_packages():
    for mode in ("--runtime", "--build-only", None):
        args = ["bash", str(REPO / "scripts" / "install.sh"), "--dry-run"] + ([mode] if mode else [])
        result = run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "packages resolve" in result.stdout


def test_dist_carries_the_swift_runtime_the_image_ships():
    lib = DIST / "lib"
    names = {p.name for p in lib.glob("*.so*")}
    assert any(n.startswith("libswiftCore.so") for n in names), names
    # With the image's LD_LIBRARY_PATH every Swift library resolves to dist/lib, none is missing.
    env = dict(os.environ, LD_LIBRARY_PATH=str(lib))
    for binary in [DIST / "prism-gateway", *sorted((DIST / "plugins").glob("*.so"))]:
        out = run("ldd", str(binary), env=env).stdout
        assert "not found" not in out, out
        for line in out.splitlines():
            if "libswift" in line and "=>" in line:
                assert str(lib) in line, f"{binary.name}: {line.strip()}"


def test_image_health_check_command_works_against_the_binary(gateway):
    gw = gateway({"providers": {"mock": {"type": "mock", "models": ["m"]}}})
    # The Dockerfile's HEALTHCHECK runs exactly this.
    result = run("curl", "-fsS", "-o", "/dev/null", gw.url("/healthz"))
    assert result.returncode == 0, result.stderr
