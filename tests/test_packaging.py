"""pyproject.toml installs every subpackage: a folder missing from its lists exists in the editable install
the tests use, but not in a wheel (`pip install .`), where its entry points then fail to import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("common", "datasets", "pipeline", "eval", "launch")


def test_every_python_package_folder_is_in_the_wheel() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = {name: Path(folder) for name, folder in setuptools["package-dir"].items()}
    found = {
        "coir." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP_LEVEL
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found - listed == set(), "folders with an __init__.py missing from [tool.setuptools] packages"
    assert listed - found == set(), "packages listed without a folder"
    for name in listed:
        assert folders[name] == Path(*name.split(".")[1:]), f"package-dir of {name}"


def test_every_entry_point_names_a_listed_package() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    for group, entries in project["project"]["entry-points"].items():
        for name, target in entries.items():
            module = target.split(":")[0]
            folder = ROOT.joinpath(*module.split(".")[1:])
            package = module if folder.is_dir() else module.rsplit(".", 1)[0]
            assert folder.is_dir() or folder.with_suffix(".py").is_file(), f"{group} {name}: no {module}"
            assert package in listed, f"entry point {group} {name}: {package} is not installed"
