"""mypy checks every package, the typed inter-broker messages of ``klamm.protocol`` included.

The folders install under the ``klamm`` namespace through a package-dir mapping that mypy
cannot follow in an editable install, so the check runs on a tree of links named as installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("broker", "client", "protocol", "zk")


def test_every_package_type_checks(tmp_path: Path) -> None:
    tree = tmp_path / "tree" / "klamm"
    tree.mkdir(parents=True)
    for name in PACKAGES:
        (tree / name).symlink_to(ROOT / name, target_is_directory=True)
    args = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
            "--cache-dir", str(tmp_path / "cache")]
    for name in PACKAGES:
        args += ["-p", f"klamm.{name}"]
    done = subprocess.run(args, cwd=tree.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
