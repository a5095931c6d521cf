"""Packaging: the licence, the build-system floor, and the version written once."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import tidings

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_license_file_is_the_mit_license_pyproject_names():
    assert PYPROJECT["project"]["license"] == "MIT"
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text


def test_the_build_system_is_new_enough_for_an_spdx_license_string():
    (requirement,) = PYPROJECT["build-system"]["requires"]
    floor = re.fullmatch(r"setuptools>=(\d+)", requirement)
    assert floor is not None and int(floor.group(1)) >= 77  # PEP 639 support


def test_the_version_is_written_in_one_place():
    assert "version" not in PYPROJECT["project"]
    assert "version" in PYPROJECT["project"]["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {
        "attr": "tidings.__version__"}
    assert importlib.metadata.version("tidings") == tidings.__version__
    result = subprocess.run([str(Path(sys.executable).parent / "tidings"), "--version"],
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout == f"tidings {tidings.__version__}\n"


def test_a_built_wheel_carries_the_version_and_the_license(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--wheel-dir", str(tmp_path), str(ROOT)],
                   check=True, timeout=600, capture_output=True)
    (wheel,) = tmp_path.glob("tidings-*.whl")
    assert wheel.name.startswith(f"tidings-{tidings.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"tidings-{tidings.__version__}.dist-info/METADATA").decode()
    assert f"tidings-{tidings.__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in metadata
