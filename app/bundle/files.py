"""The bundle on disk: file names, reading and writing documents, versions, atomic publishing."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from app.bundle.errors import BundleError
from app.bundle.metadata import Metadata, StorageCost
from app.bundle.preprocessing import PreprocessingStats
from app.bundle.reference import ReferenceDistributions

SAVED_MODEL_DIR = "saved_model"
STATS_FILE = "preprocessing.json"
METADATA_FILE = "metadata.json"
LITERT_FILE = "model.tflite"
LITERT_QUANTIZED_FILE = "model_quantized.tflite"
REFERENCE_FILE = "reference.json"
REPORT_DIR = "report"
MODEL_CARD_FILE = "model_card.html"
_PARTIAL_PREFIX = ".partial-"

_M = TypeVar("_M", bound=BaseModel)

ARTEFACTS = {
    "saved_model": SAVED_MODEL_DIR,
    "litert": LITERT_FILE,
    "litert_quantized": LITERT_QUANTIZED_FILE,
    "statistics": STATS_FILE,
    "metadata": METADATA_FILE,
    "reference": REFERENCE_FILE,
    "report": REPORT_DIR,
}
"""The bundle's artefacts by name, as the storage cost lists them."""
LITERT_SERVING = ("litert", "statistics", "metadata", "reference")
"""What a LiteRT-only service reads of a version."""


def storage(version_dir: Path) -> StorageCost:
    """Bytes on disk of each artefact present, of the whole version directory, and of what a
    LiteRT-only service (the slim image) reads."""
    files = {
        name: size
        for name, relative in ARTEFACTS.items()
        if (size := _bytes_under(version_dir / relative)) is not None
    }
    return StorageCost(
        files=files,
        total_bytes=_bytes_under(version_dir) or 0,
        litert_serving_bytes=sum(files.get(name, 0) for name in LITERT_SERVING),
    )


def _bytes_under(path: Path) -> int | None:
    """A file's size, or the sizes of every file under a directory; None when absent."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return None
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def read_stats(version_dir: Path) -> PreprocessingStats:
    return _read_json(version_dir / STATS_FILE, PreprocessingStats)


def read_metadata(version_dir: Path) -> Metadata:
    return _read_json(version_dir / METADATA_FILE, Metadata)


def read_reference(version_dir: Path) -> ReferenceDistributions | None:
    """The drift reference, or None for a bundle from before training wrote one."""
    if not (version_dir / REFERENCE_FILE).exists():
        return None
    return _read_json(version_dir / REFERENCE_FILE, ReferenceDistributions)


def _read_json(path: Path, model: type[_M]) -> _M:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(path, "file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(path, f"cannot be read ({exc})") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise BundleError(path, f"invalid {model.__name__} at {where}: {first['msg']}") from None


def write_json(path: Path, document: BaseModel) -> None:
    path.write_text(document.model_dump_json(indent=2) + "\n", encoding="utf-8")


def list_versions(model_dir: Path) -> list[int]:
    """Published versions of one model, ascending. Half-written versions are never listed."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def list_models(model_root: Path) -> dict[str, list[int]]:
    """Every model under the root that has published versions, by name, with its versions
    ascending. Hidden directories are skipped; a root that cannot be read holds none."""
    try:
        dirs = [p for p in model_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return {}
    found = {p.name: list_versions(p) for p in sorted(dirs)}
    return {name: versions for name, versions in found.items() if versions}


def resolve_version_dir(model_root: Path, name: str, version: int | None = None) -> Path:
    """The directory of `version` of model `name`, or of its newest version when None."""
    model_dir = model_root / name
    versions = list_versions(model_dir)
    if not versions:
        raise BundleError(model_dir, "no model versions found (expected <version>/ directories)")
    if version is None:
        return model_dir / str(versions[-1])
    if version not in versions:
        available = ", ".join(map(str, versions))
        raise BundleError(model_dir / str(version), f"version not found (available: {available})")
    return model_dir / str(version)


@contextmanager
def publish_version(model_dir: Path) -> Iterator[tuple[Path, int]]:
    """Yield a scratch directory and the version number it will get; publish it on success.

    The scratch directory lives beside the versions, so the final rename is atomic: a reader
    scanning `model_dir` sees either no new version or a complete one. If the block raises,
    the scratch directory is removed and nothing is published.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=_PARTIAL_PREFIX, dir=model_dir))
    scratch.chmod(0o755)  # mkdtemp makes it private; a server running as another user reads it
    try:
        version = _next_version(model_dir)
        yield scratch, version
        _rename_into_place(scratch, model_dir, version)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _next_version(model_dir: Path) -> int:
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def _rename_into_place(scratch: Path, model_dir: Path, version: int) -> None:
    target = model_dir / str(version)
    # rename(2) replaces an empty directory silently; refuse any existing one instead.
    if target.exists():
        raise BundleError(target, "another writer published this version meanwhile; run again")
    try:
        scratch.rename(target)
    except OSError as exc:
        raise BundleError(target, f"cannot publish the version ({exc.strerror})") from None
