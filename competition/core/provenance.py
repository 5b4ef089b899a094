"""What produced an artifact: the code's commit, the package versions and the machine (float results are
machine-specific: docs/BENCHMARKS.md)."""
from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import subprocess

from competition.core.paths import REPO_ROOT

PACKAGES = ("numpy", "pandas", "scikit-learn", "torch", "timm", "librosa", "opensmile", "transformers",
            "opencv-python-headless")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, str]:
    """CPU model and the widest vector extension (the kernels oneDNN/OpenCV pick depend on it)."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = next((x for x in ("avx512f", "avx2", "avx", "sse4_2") if x in flags), "unknown")
    return {"cpu": model, "isa": isa, "arch": platform.machine()}


def run_card() -> dict:
    """Package versions, commit and machine, recorded beside every fold result."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return {"commit": git_commit(), "python": platform.python_version(), "packages": versions,
            "machine": machine_info()}
