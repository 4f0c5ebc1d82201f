"""kubectl as a user would run it, against the test control plane."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None, user: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["kubectl", "--kubeconfig", str(kubeconfig)]
    if user:
        cmd += ["--context", user]
    proc = subprocess.run([*cmd, *args], input=stdin, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def kubectl_json(kubeconfig: Path, *args: str, user: str | None = None) -> Any:
    return json.loads(kubectl(kubeconfig, *args, "-o", "json", user=user).stdout)
