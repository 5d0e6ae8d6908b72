"""CMAP and MANME in the model registry while the installed metadata predates their entry points
(pyproject.toml lists them; a reinstall makes this a no-op). Importing this module registers them
in this process; `python tests/multilevel_registry.py MODULE ARGS...` runs a `coir` command module
(e.g. coir.pipeline.train_cli) with them registered, for tests that start a subprocess."""

from __future__ import annotations

import importlib
import runpy
import sys

MULTILEVEL_FAMILIES = ("cmap", "manme")


def register_multilevel_families() -> None:
    from coir.pipeline.models import registry

    specs = registry._specs()
    for name in MULTILEVEL_FAMILIES:
        if name not in specs:
            specs[name] = importlib.import_module(f"coir.pipeline.models.{name}").SPEC


register_multilevel_families()

if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
