"""Build the API reference (HTML, from docstrings) with pdoc: ``.venv/bin/python docs/build.py [OUT]``.

Every module of ``adapt``, ``strategies`` and ``scenarios`` is listed explicitly, because pdoc
documents only what a package's ``__all__`` names and our ``__all__`` lists names, not submodules.
Warnings are errors: a docstring pdoc cannot render fails the build.
"""
from __future__ import annotations

import pkgutil
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("adapt", "strategies", "scenarios")


def modules() -> list[str]:
    """The packages, plus each submodule that pdoc would not reach by itself: pdoc recurses into a
    package's submodules only when the package has no ``__all__``."""
    import importlib

    names = list(PACKAGES)
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            parent = importlib.import_module(info.name.rsplit(".", 1)[0])
            if hasattr(parent, "__all__"):
                names.append(info.name)
    return sorted(names)


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else ROOT / "site" / "api"
    sys.path.insert(0, str(ROOT))
    import pdoc

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*modules(), output_directory=out)
    ours = [w for w in caught if "pdoc" in str(w.filename) or str(w.category.__name__) == "UserWarning"]
    for w in ours:
        print(f"warning: {w.message}", file=sys.stderr)
    print(f"API reference: {out / 'index.html'} ({len(modules())} modules)")
    return 1 if ours else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
