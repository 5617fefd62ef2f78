"""The lock files in requirements/ match pyproject.toml.

Every requirement of the set's dependencies, extras and build-system is pinned at a version that
satisfies it, every pin carries its hashes, the three sets agree on each package they share, and
each lock records the digest of the dependency tables it was made from: after editing them in
pyproject.toml, run scripts/lock.sh.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
# The install sets and the extras each is made from (scripts/lock.sh, scripts/setup.sh, Dockerfile).
SETS: dict[str, tuple[str, ...]] = {"serve": (), "train": ("train",), "dev": ("dev",)}
# The platform the locks are resolved for: markers in pyproject are read as there.
TARGET = {
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
}
DIGEST_LINE = re.compile(r"^# pyproject-dependencies-sha256: ([0-9a-f]{64})$", re.MULTILINE)
PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)(?P<rest>.*)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}")
RELOCK = "run scripts/lock.sh"


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: frozenset[str]


@dataclass(frozen=True)
class Lock:
    digest: str | None
    pins: dict[NormalizedName, Pin]
    errors: tuple[str, ...]


def load_pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def dependency_digest(pyproject: dict[str, Any]) -> str:
    """The sha256 of pyproject's dependency tables, as scripts/lock.sh computes it.

    Each requirement loses its whitespace and case and each list is sorted, so reformatting does
    not count as a change; anything else does.
    """
    project = pyproject["project"]

    def normalised(requirements: list[str]) -> list[str]:
        return sorted("".join(text.split()).lower() for text in requirements)

    table = {
        "build-system.requires": normalised(pyproject.get("build-system", {}).get("requires", [])),
        "dependencies": normalised(project.get("dependencies", [])),
        "optional-dependencies": {
            str(canonicalize_name(extra)): normalised(requirements)
            for extra, requirements in project.get("optional-dependencies", {}).items()
        },
        "requires-python": "".join(project.get("requires-python", "").split()),
    }
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def expand(
    pyproject: dict[str, Any], extras: tuple[str, ...]
) -> tuple[list[Requirement], set[str]]:
    """The requirements of the project with these extras (its own extras followed), and the
    extras reached; build-system requirements included, markers read for TARGET."""
    project = pyproject["project"]
    own = canonicalize_name(project["name"])
    optional = {
        canonicalize_name(extra): requirements
        for extra, requirements in project.get("optional-dependencies", {}).items()
    }
    texts = list(project.get("dependencies", []))
    texts += pyproject.get("build-system", {}).get("requires", [])
    pending, seen = [canonicalize_name(extra) for extra in extras], set[str]()
    while pending:
        extra = pending.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for text in optional[extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == own:
                pending.extend(canonicalize_name(name) for name in requirement.extras)
            else:
                texts.append(text)
    requirements = [Requirement(text) for text in texts]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(TARGET)], seen


def parse_lock(text: str) -> Lock:
    """The pins of a pip-compile lock: each `name==version --hash=... ...` entry; anything else
    that is not a comment (an unpinned or unhashed line, an option, a URL) is an error."""
    match = DIGEST_LINE.search(text)
    pins: dict[NormalizedName, Pin] = {}
    errors: list[str] = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        entry = line.split(" #", 1)[0].strip()
        if not entry or entry.startswith("#"):
            continue
        pin = PIN.fullmatch(entry)
        hashes = HASH.findall(pin.group("rest")) if pin else []
        if pin is None or not hashes or HASH.sub("", pin.group("rest")).strip():
            errors.append(f"not a pin with hashes: {entry[:100]}")
            continue
        name = canonicalize_name(pin.group("name"))
        if name in pins:
            errors.append(f"pinned twice: {name}")
        pins[name] = Pin(Version(pin.group("version")), frozenset(hashes))
    return Lock(match.group(1) if match else None, pins, tuple(errors))


def unmet(requirements: list[Requirement], lock: Lock) -> list[str]:
    """The requirements that the lock does not pin, or pins at a version outside their range."""
    problems = []
    for requirement in requirements:
        pin = lock.pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} is pinned at {pin.version}")
    return problems


def read_lock(name: str) -> Lock:
    path = LOCKS / f"{name}.txt"
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: {RELOCK}"
    return parse_lock(path.read_text())


@pytest.mark.parametrize("name", SETS)
def test_lock_was_made_from_this_pyproject(name: str) -> None:
    lock = read_lock(name)
    assert lock.digest is not None, f"requirements/{name}.txt has no digest line: {RELOCK}"
    assert lock.digest == dependency_digest(load_pyproject()), (
        f"pyproject.toml's dependencies changed since requirements/{name}.txt was made: {RELOCK}"
    )


@pytest.mark.parametrize("name", SETS)
def test_every_requirement_is_pinned_in_range(name: str) -> None:
    requirements, _ = expand(load_pyproject(), SETS[name])
    problems = unmet(requirements, read_lock(name))
    assert not problems, f"requirements/{name}.txt: {problems}; {RELOCK}"


@pytest.mark.parametrize("name", SETS)
def test_every_line_is_a_pin_with_hashes(name: str) -> None:
    lock = read_lock(name)
    assert lock.pins, f"requirements/{name}.txt pins nothing"
    assert not lock.errors, f"requirements/{name}.txt: {lock.errors}; {RELOCK}"
    assert all(pin.hashes for pin in lock.pins.values())


def test_the_sets_agree_and_nest() -> None:
    """serve within train within dev, each package at one version with the same hashes."""
    serve, train, dev = (read_lock(name).pins for name in ("serve", "train", "dev"))
    for small, big in ((serve, train), (train, dev)):
        assert set(small) <= set(big), RELOCK
    for small in (serve, train):
        differ = sorted(name for name, pin in small.items() if dev.get(name) != pin)
        assert not differ, f"pinned differently from requirements/dev.txt: {differ}; {RELOCK}"


def test_dev_holds_every_extra() -> None:
    """scripts/setup.sh counts on a dev venv holding every extra."""
    pyproject = load_pyproject()
    _, reached = expand(pyproject, SETS["dev"])
    extras = {canonicalize_name(extra) for extra in pyproject["project"]["optional-dependencies"]}
    assert extras <= reached, f"extras outside the dev set: {sorted(extras - reached)}"


def test_the_check_sees_an_edit_that_was_not_relocked() -> None:
    """An edited dependency list changes the digest; a new package or a raised floor is unmet;
    a package dropped from a list changes the digest alone."""
    pyproject = load_pyproject()
    lock = read_lock("dev")
    before = unmet(expand(pyproject, SETS["dev"])[0], lock)

    edited = copy.deepcopy(pyproject)
    edited["project"]["dependencies"] += ["a-package-nobody-locked>=1", "numpy>=99"]
    assert dependency_digest(edited) != dependency_digest(pyproject)
    new = [
        problem for problem in unmet(expand(edited, SETS["dev"])[0], lock) if problem not in before
    ]
    assert len(new) == 2
    assert new[0] == "a-package-nobody-locked>=1 is not in the lock"
    assert new[1].startswith("numpy>=99 is pinned at ")

    dropped = copy.deepcopy(pyproject)
    dropped["project"]["optional-dependencies"]["dev"].pop()
    assert dependency_digest(dropped) != dependency_digest(pyproject)

    reformatted = copy.deepcopy(pyproject)
    reformatted["project"]["dependencies"].reverse()
    reformatted["project"]["dependencies"][0] = " " + reformatted["project"]["dependencies"][0]
    assert dependency_digest(reformatted) == dependency_digest(pyproject)


def test_the_parser_refuses_what_pip_would_not_hash() -> None:
    lock = parse_lock(
        "# pyproject-dependencies-sha256: " + "0" * 64 + "\n"
        "numpy==2.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via pyproject.toml\n"
        "pandas==2.2.0\n"
        "scipy>=1\n"
        "--index-url file:///somewhere\n"
    )
    assert lock.digest == "0" * 64
    assert set(lock.pins) == {"numpy"}
    assert len(lock.errors) == 3


def test_the_grpc_clients_lock_pins_what_its_input_asks_for_with_hashes() -> None:
    wanted = [
        Requirement(line)
        for line in (LOCKS / "grpc-clients.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    lock = read_lock("grpc-clients")
    assert not lock.errors, f"requirements/grpc-clients.txt: {lock.errors}; {RELOCK}"
    problems = unmet(wanted, lock)
    assert not problems, f"requirements/grpc-clients.txt: {problems}; {RELOCK}"
