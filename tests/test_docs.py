"""The docs against the code: the settings table, relative links, and the README's size."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "configuration.md"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

TABLE_HEADER = re.compile(r"^\|\s*variable\s*\|\s*default\s*\|")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) or [text](target "title"), and <img src="..."> / <a href="...">.
MD_LINK = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.IGNORECASE)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _settings_table() -> dict[str, str]:
    """The configuration page's settings table: variable name -> default cell."""
    lines = CONFIGURATION.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if TABLE_HEADER.match(line))
    rows: dict[str, str] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        name = cells[0].strip("`")
        assert name not in rows, f"{CONFIGURATION.name}: {name} is listed twice"
        rows[name] = cells[1]
    return rows


def _documented_default(cell: str) -> str:
    """The default as written: the first code span (`10485760` (10 MiB) -> 10485760), else the
    cell's first word (unset)."""
    code = INLINE_CODE.search(cell)
    return code.group(0).strip("`") if code else cell.split(maxsplit=1)[0]


def _normalised(value: Any) -> str:
    """A field's default as the table writes it: None and "" are unset, numbers without a
    trailing .0, JSON for containers, paths in POSIX form."""
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(", ", ": "))
    if isinstance(value, Path):
        return value.as_posix()
    return str(value)


def test_the_settings_table_lists_every_setting() -> None:
    documented = set(_settings_table())
    fields = {name.upper() for name in Settings.model_fields}
    assert documented == fields, (
        f"not documented: {sorted(fields - documented)}; "
        f"documented but no such setting: {sorted(documented - fields)}"
    )


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_the_settings_table_gives_each_default(name: str) -> None:
    field = Settings.model_fields[name]
    default = field.get_default(call_default_factory=True)
    documented = _settings_table().get(name.upper())
    assert documented is not None, f"{name.upper()} is not in {CONFIGURATION.name}"
    assert _documented_default(documented) == _normalised(default)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "unset"),
        ("", "unset"),
        (Path("models"), "models"),
        (30.0, "30"),
        (0.5, "0.5"),
        (10 * 1024 * 1024, "10485760"),
        ({}, "{}"),
        ({"churn": 3}, '{"churn": 3}'),
        ("info", "info"),
    ],
)
def test_defaults_are_normalised_as_the_table_writes_them(value: Any, expected: str) -> None:
    assert _normalised(value) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("`10485760` (10 MiB)", "10485760"), ("unset", "unset"), ("`{}`", "{}")],
)
def test_documented_defaults_are_read_from_the_first_code_span(cell: str, expected: str) -> None:
    assert _documented_default(cell) == expected


def _links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = INLINE_CODE.sub("", text)
    return MD_LINK.findall(text) + HTML_LINK.findall(text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(text):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


def _relative_links() -> list[tuple[Path, str]]:
    return [
        (page, link)
        for page in PAGES
        for link in _links(page)
        if not re.match(r"^[a-z][a-z0-9+.-]*:", link, re.IGNORECASE)  # http:, mailto:, ...
    ]


def test_the_pages_have_relative_links() -> None:
    # Guards the link check below against a pattern that silently finds nothing.
    assert len(_relative_links()) > 20


@pytest.mark.parametrize(
    ("page", "link"),
    _relative_links(),
    ids=[f"{page.name}:{link}" for page, link in _relative_links()],
)
def test_relative_links_point_to_existing_files(page: Path, link: str) -> None:
    path, _, fragment = link.partition("#")
    target = (page.parent / unquote(path)).resolve() if path else page
    assert target.exists(), f"{page.relative_to(ROOT)}: {link} points to nothing"
    if fragment and target.suffix == ".md":
        assert fragment in _anchors(target), (
            f"{page.relative_to(ROOT)}: {link}: {target.relative_to(ROOT)} has no such heading"
        )


def test_every_docs_page_is_linked_from_the_readme_and_links_back() -> None:
    readme_targets = {
        (ROOT / link.partition("#")[0]).resolve()
        for link in _links(README)
        if not link.startswith("#")
    }
    for page in sorted(DOCS.glob("*.md")):
        assert page.resolve() in readme_targets, f"the README does not link docs/{page.name}"
        assert any(link.partition("#")[0] == "../README.md" for link in _links(page)), (
            f"docs/{page.name} does not link back to the README"
        )


def test_the_readme_is_a_front_door() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 220
    assert "scripts/serve.sh" in text
    assert "scripts/test.sh" in text
