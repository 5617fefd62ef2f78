"""The committed message modules are what scripts/protos.sh makes from the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "app" / "grpc" / "protos"


def test_generated_modules_are_up_to_date(tmp_path: Path) -> None:
    subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "protos.sh"), str(tmp_path)],
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        check=True,
    )
    made = sorted(p.name for p in tmp_path.iterdir())
    assert made == ["oip_v2_pb2.py", "oip_v2_pb2.pyi", "tf_serving_pb2.py", "tf_serving_pb2.pyi"]
    for name in made:
        committed = (PROTOS / name).read_text()
        assert (tmp_path / name).read_text() == committed, f"{name}: run scripts/protos.sh"
