"""The shipped widget/consentkit.js is exactly the build of widget/src/consentkit.js.

The readable source is what people edit; `make widget` minifies it with the esbuild pinned in
widget/package-lock.json, using the `build` script of widget/package.json. Here the same command
builds the source again into a temporary directory, and the result must be byte-identical to the
committed file: nobody edits the shipped file by hand, and nobody forgets to rebuild.

Without the pinned esbuild (`make widget-deps`, or `npm ci` in widget/) the check is skipped on a
developer's machine and fails in CI.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import in_ci

WIDGET = Path(__file__).resolve().parent.parent / "widget"
SOURCE = WIDGET / "src" / "consentkit.js"
SHIPPED = WIDGET / "consentkit.js"
ESBUILD = WIDGET / "node_modules" / ".bin" / "esbuild"
HEADER = "/* Generated from src/consentkit.js by make widget (esbuild)."


def package() -> dict[str, object]:
    return json.loads((WIDGET / "package.json").read_text("utf-8"))  # type: ignore[no-any-return]


def pinned_version() -> str:
    dev = package()["devDependencies"]
    assert isinstance(dev, dict)
    return str(dev["esbuild"])


def build_args(outfile: Path) -> list[str]:
    """The arguments of widget/package.json's `build` script, writing to ``outfile`` instead."""
    scripts = package()["scripts"]
    assert isinstance(scripts, dict)
    argv = shlex.split(scripts["build"])
    assert argv[0] == "esbuild", f"the build script should run esbuild: {scripts['build']}"
    outfiles = [i for i, arg in enumerate(argv) if arg.startswith("--outfile=")]
    assert [argv[i] for i in outfiles] == ["--outfile=consentkit.js"], argv
    argv[outfiles[0]] = f"--outfile={outfile}"
    return argv[1:]


def test_esbuild_is_pinned_exactly() -> None:
    version = pinned_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"pin an exact esbuild version, not {version!r}"
    lock = json.loads((WIDGET / "package-lock.json").read_text("utf-8"))
    assert lock["packages"][""]["devDependencies"]["esbuild"] == version
    assert lock["packages"]["node_modules/esbuild"]["version"] == version


def test_shipped_file_says_it_is_generated() -> None:
    first_line = SHIPPED.read_text("utf-8").splitlines()[0]
    assert first_line.startswith(HEADER), f"widget/consentkit.js should start with {HEADER!r}: {first_line!r}"


def test_shipped_widget_is_the_build_of_the_source(tmp_path: Path) -> None:
    if not ESBUILD.exists():
        reason = f"esbuild is not installed in {ESBUILD.parent.parent} (run `make widget-deps`)"
        if in_ci():
            pytest.fail(f"CI needs the pinned esbuild: {reason}")
        pytest.skip(reason)
    version = subprocess.run(
        [str(ESBUILD), "--version"], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert version == pinned_version(), (
        f"widget/node_modules has esbuild {version}, the lockfile pins {pinned_version()}: run `make widget-deps`"
    )
    built = tmp_path / "consentkit.js"
    done = subprocess.run(
        [str(ESBUILD), *build_args(built)], cwd=WIDGET, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"esbuild failed on {SOURCE}:\n{done.stderr}"
    assert built.read_bytes() == SHIPPED.read_bytes(), (
        "widget/consentkit.js is not the build of widget/src/consentkit.js: edit the source, then run `make widget`"
    )
