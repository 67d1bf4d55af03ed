"""The C plugin kit, examples/plugins/prism_kit.h: its unit tests (Tests/fixtures/c_kit/
test_prism_kit.c) and the example provider built on it (Tests/fixtures/c_kit/
test_example_provider.c, which compiles examples/plugins/c_example_provider.c in), each compiled
warning-free with `cc -std=c11 -Wall -Wextra -Werror -pedantic -fsanitize=address,undefined` and
run. The C programs exit 0 only when every check passed; they print "<n> checks, <m> failed".

When the compiler has no sanitizer runtime (a probe program does not build or run), the tests
fall back to building without sanitizers and say so in a warning (shown in pytest's summary).
They need only a C compiler (CC, default cc), not the gateway binary."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KIT_DIR = REPO / "examples" / "plugins"
ABI_INCLUDE = REPO / "Sources" / "PrismPluginABI" / "include"
FIXTURES = REPO / "Tests" / "fixtures" / "c_kit"
CC = os.environ.get("CC") or "cc"
STRICT = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer",
            "-g"]
SUMMARY = re.compile(r"^(\d+) checks, (\d+) failed$", re.MULTILINE)


def _run(cmd: list[str], env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def _sanitizer_env(leaks: bool) -> dict:
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = f"detect_leaks={1 if leaks else 0}:abort_on_error=0:exitcode=23"
    env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"
    return env


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """{"flags": extra compiler flags, "env": environment for the programs}. Probes whether
    -fsanitize=address,undefined builds and runs here (with leak detection if that works)."""
    if shutil.which(CC) is None:
        pytest.fail(f"no C compiler ({CC}); set CC", pytrace=False)
    tmp = tmp_path_factory.mktemp("c-kit-probe")
    source = tmp / "probe.c"
    source.write_text("#include <stdlib.h>\nint main(void) { free(malloc(8)); return 0; }\n")
    binary = tmp / "probe"
    built = _run([CC, *STRICT, *SANITIZE, "-o", str(binary), str(source)])
    if built.returncode == 0:
        for leaks in (True, False):
            env = _sanitizer_env(leaks)
            if _run([str(binary)], env=env, timeout=30).returncode == 0:
                return {"flags": SANITIZE, "env": env, "sanitized": True}
        reason = "the sanitized probe program does not run here"
    else:
        reason = f"{CC} cannot build with -fsanitize=address,undefined: {built.stderr.strip()[:300]}"
    warnings.warn(f"sanitizer runtime absent ({reason}): the C kit tests run WITHOUT sanitizers",
                  pytest.PytestWarning)
    return {"flags": [], "env": dict(os.environ), "sanitized": False}


@pytest.fixture(scope="module")
def build(toolchain: dict, tmp_path_factory: pytest.TempPathFactory):
    """build(source) -> the program, compiled with the strict flags (and sanitizers)."""
    out = tmp_path_factory.mktemp("c-kit")
    built: dict[str, Path] = {}

    def compile_(source: Path) -> Path:
        if source.name not in built:
            binary = out / source.stem
            cmd = [CC, *STRICT, *toolchain["flags"], "-I", str(KIT_DIR), "-I", str(ABI_INCLUDE),
                   "-o", str(binary), str(source)]
            proc = _run(cmd)
            assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
            built[source.name] = binary
        return built[source.name]
    return compile_


def _run_checks(binary: Path, env: dict) -> str:
    proc = _run([str(binary)], env=env)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{binary.name} exited {proc.returncode}:\n{output[-6000:]}"
    summary = SUMMARY.search(proc.stdout)
    assert summary and int(summary.group(1)) > 0 and summary.group(2) == "0", output[-6000:]
    return proc.stdout


@pytest.mark.time_limit(180)
def test_prism_kit_unit_tests(build, toolchain):
    """Parsing edge cases (escapes, surrogates, cut input, deep nesting, numbers), writer
    escaping, buffers, OpenAI shapes and round trips."""
    _run_checks(build(FIXTURES / "test_prism_kit.c"), toolchain["env"])


@pytest.mark.time_limit(180)
def test_prism_kit_does_not_follow_the_c_locale(build, toolchain, tmp_path):
    """Numbers are read and written with '.', whatever LC_NUMERIC says: the unit tests again, in a
    locale with a decimal comma (compiled here with localedef when the system has none)."""
    binary = build(FIXTURES / "test_prism_kit.c")
    localedef = shutil.which("localedef")
    if localedef is None:
        pytest.skip("localedef not found: no decimal-comma locale to test with")
    made = _run([localedef, "-i", "de_DE", "-f", "UTF-8", str(tmp_path / "de_DE.UTF-8")], timeout=120)
    if not (tmp_path / "de_DE.UTF-8").exists():
        pytest.skip(f"localedef could not build de_DE.UTF-8: {made.stderr.strip()[:200]}")
    env = dict(toolchain["env"], LOCPATH=str(tmp_path))
    output = _run_checks(binary, env)
    assert "no locale with a decimal comma" not in output, output


@pytest.mark.time_limit(180)
def test_example_provider_under_sanitizers(build, toolchain):
    """examples/plugins/c_example_provider.c, driven through fake host sinks: config handling,
    upstream requests, usage, stream events and error translation as its README documents."""
    _run_checks(build(FIXTURES / "test_example_provider.c"), toolchain["env"])


def test_prism_kit_header_stands_alone(tmp_path):
    """Without <prism_plugin.h> the header still compiles warning-free (sections 1-4 only)."""
    if shutil.which(CC) is None:
        pytest.fail(f"no C compiler ({CC}); set CC", pytrace=False)
    source = tmp_path / "alone.c"
    source.write_text('#include "prism_kit.h"\n'
                      "#ifdef PRISM_PLUGIN_H\n#error the kit must not pull in the ABI header\n#endif\n"
                      "int alone(void);\nint alone(void) { pk_json v; return pk_json_parse(\"[]\", 2, &v); }\n")
    proc = _run([CC, *STRICT, "-O2", "-I", str(KIT_DIR), "-c", "-o", str(tmp_path / "alone.o"), str(source)])
    assert proc.returncode == 0, proc.stderr


def test_example_provider_exports_only_its_entry(c_plugins):
    """The kit's functions are static: the plugin's dynamic symbol table holds only the entry."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not found")
    proc = _run([nm, "-D", "--defined-only", str(c_plugins / "c-example-provider.so")])
    assert proc.returncode == 0, proc.stderr
    symbols = sorted(line.split()[-1] for line in proc.stdout.splitlines() if line.strip())
    assert symbols == ["prism_plugin_entry_v1"], proc.stdout
