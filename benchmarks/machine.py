"""The machine a report was measured on: CPU, GPU, driver, library versions, code revision."""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
# Distributions whose versions a reader needs to compare two reports; DALI ships under a CUDA-specific name.
LIBRARIES = ("torch", "torchvision", "nvidia-dali-cuda120", "nvidia-dali-cuda130", "deepspeed", "open_clip_torch",
             "webdataset", "av", "numpy", "matplotlib")


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    match = re.search(r"^MemTotal:\s*(\d+) kB", text, re.MULTILINE)
    return round(int(match.group(1)) / 2**20, 1) if match else None


def gpu_info() -> dict | None:
    if not torch.cuda.is_available():
        return None
    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"name": properties.name, "memory_gib": round(properties.total_memory / 2**30, 1),
            "multiprocessors": properties.multi_processor_count, "count": torch.cuda.device_count(),
            "driver": nvidia_driver(), "cuda_runtime": torch.version.cuda}


def nvidia_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import av
        versions["ffmpeg (PyAV)"] = str(av.ffmpeg_version_info)
    except (ImportError, AttributeError):
        pass
    return versions


def code_revision() -> str | None:
    """Commit of the checkout, with `+dirty` when tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def describe_machine() -> dict:
    return {
        "os": f"{platform.system()} {platform.release()}",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib(),
        "gpu": gpu_info(),
        "torch_threads": torch.get_num_threads(),
        "libraries": library_versions(),
        "revision": code_revision(),
    }


def machine_slug(machine: dict) -> str:
    """Short file-name-safe name of the machine kind, e.g. `cpu-amd-epyc-2cores` or `gpu-nvidia-h100-80gb-hbm3`."""
    if machine["gpu"]:
        text = f"gpu-{machine['gpu']['name']}"
    else:
        text = f"cpu-{machine['cpu']}-{machine['cpus_usable']}cores"
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
