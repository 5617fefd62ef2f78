"""`python -m app.promote NAME VERSION` (`tabserve promote`): publish a copy of an existing
version as the model's next version, to roll forward to a shadowed version or back to a known
one without retraining.

The copy is made beside the versions and renamed into place, as training publishes: a service
watching the directory (MODEL_RELOAD_SECONDS) sees either no new version or a complete one,
and swaps to it as it does to a newly trained one. Files are hard-linked where the file system
allows (versions are never changed once published), else copied. The copy is served under its
new number; its metadata still names the version it was trained as (`trained_as` in
`GET /model`), which is the lineage an operator reads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from app.bundle import BundleError, publish_version, read_metadata, read_stats, resolve_version_dir


def promote(model_root: Path, name: str, version: int) -> Path:
    """Publish version `version` of model `name` again as its next version; the new directory.
    The source must be a readable bundle: a broken one is refused rather than published."""
    source = resolve_version_dir(model_root, name, version)
    read_metadata(source)
    read_stats(source)
    with publish_version(model_root / name) as (scratch, new_version):
        shutil.copytree(source, scratch, copy_function=_link_or_copy, dirs_exist_ok=True)
    return model_root / name / str(new_version)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(src, dst)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m app.promote", description=__doc__.split("\n")[0])
    p.add_argument("name", help="the model's name (its directory under --model-dir)")
    p.add_argument("version", type=int, help="the version to publish again")
    p.add_argument(
        "--model-dir",
        type=Path,
        default=Path(os.environ.get("MODEL_DIR", "models")),
        help="the models' root (default: MODEL_DIR, else %(default)s)",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        published = promote(args.model_dir, args.name, args.version)
    except BundleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot publish the copy: {exc}", file=sys.stderr)
        return 2
    print(
        f"published {args.name} version {args.version} as version {published.name}", file=sys.stderr
    )
    print(published)
    return 0


if __name__ == "__main__":
    sys.exit(main())
