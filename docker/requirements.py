"""Print the requirements of the project's core plus the given extras, from pyproject.toml.

Used by the Dockerfile so that dependencies install in a layer of their own, before the code.
Usage: python requirements.py pyproject.toml [EXTRA ...]
"""

import re
import sys
import tomllib
from pathlib import Path


def requirements(project: dict, extras: list[str]) -> list[str]:
    name = project["name"]
    optional = project.get("optional-dependencies", {})
    out = list(project["dependencies"])
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for requirement in optional[extra]:
            own = re.fullmatch(rf"{re.escape(name)}\[([\w,-]+)\]", requirement)
            if own:
                pending.extend(own.group(1).split(","))
            else:
                out.append(requirement)
    return out


if __name__ == "__main__":
    project = tomllib.loads(Path(sys.argv[1]).read_text())["project"]
    print("\n".join(requirements(project, sys.argv[2:])))
