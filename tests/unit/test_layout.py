"""The tree is the architecture: what ships, and the contracts that keep the layers one-way.

Both checks run the real tools (pip's wheel build, import-linter) because a contract that is
only read, never run against a breach, is a contract nobody knows still holds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEV_MODULES = {"devenv", "demo", "bench", "synthetic"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """What `pip install .` (the Dockerfile's install) puts into the operator image."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True)
    (wheel,) = out.glob("launchgate-*.whl")
    with zipfile.ZipFile(wheel) as z:
        return z.namelist()


def test_the_product_package_ships_its_layers(wheel_files: list[str]) -> None:
    for layer in ("api", "core", "adapters", "controller", "cli"):
        assert f"launchgate/{layer}/__init__.py" in wheel_files, layer
    assert "launchgate/config.py" in wheel_files


def test_pip_install_ships_no_developer_tooling(wheel_files: list[str]) -> None:
    modules = [f for f in wheel_files if f.endswith(".py")]
    assert not [f for f in modules if f.startswith("launchgate_dev/")]
    assert not [f for f in modules if Path(f).stem in DEV_MODULES], modules


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the package found first on the path: `root/operator`."""
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml")], cwd=root,
                          env={"PYTHONPATH": str(root / "operator"), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)


def test_the_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/durations.py", "import kubernetes", "core and api do no I/O"),
    ("core/gates.py", "import requests", "core and api do no I/O"),
    ("api/gate.py", "import kopf", "core and api do no I/O"),
    ("core/rollout.py", "from launchgate.adapters import metrics", "layers are one-way"),
    ("adapters/kube.py", "from launchgate.controller import schedule", "layers are one-way"),
])
def test_the_import_contracts_catch_a_breach(tmp_path: Path, module: str, line: str, contract: str) -> None:
    shutil.copytree(ROOT / "operator" / "launchgate", tmp_path / "operator" / "launchgate",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "operator" / "launchgate" / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert f"{contract} BROKEN" in result.stdout, result.stdout
