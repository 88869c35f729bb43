"""The GPU machine's flow, run here: wheels cut into parts by gpu_wheels.sh, joined, checked and installed
offline by gpu_run.sh, and every stage of gpu_run.sh held to its time limit. (The gpu tests are test_gpu.py.)
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_wheel(folder: Path, name: str, payload: bytes) -> Path:
    """A pure-Python wheel of package `name` carrying `payload` uncompressed (so the wheel keeps its size)."""
    dist = f"{name}-1.0.dist-info"
    files = {f"{name}/__init__.py": f"PAYLOAD_BYTES = {len(payload)}\n".encode(), f"{name}/payload.bin": payload,
             f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    digest = {path: base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
              for path, data in files.items()}
    record = "".join(f"{path},sha256={digest[path]},{len(data)}\n" for path, data in files.items())
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for path, data in {**files, f"{dist}/RECORD": (record + f"{dist}/RECORD,,\n").encode()}.items():
            archive.writestr(path, data)
    return wheel


def script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "benchmarks" / name), *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHON": sys.executable, **env})


def test_parts_stay_under_their_size_and_join_back_into_the_wheels_installed_offline(tmp_path):
    source, wheels = tmp_path / "downloaded", tmp_path / "wheels"
    source.mkdir()
    big = make_wheel(source, "bigpkg", os.urandom(2_500_000))  # cut into 3 chunks of at most 1 MiB
    make_wheel(source, "smallpkg", b"x" * 1000)
    sizes = {path.name: path.stat().st_size for path in source.iterdir()}

    packed = script("gpu_wheels.sh", "pack", str(source), WHEELS=str(wheels), PART_MIB="1")
    assert packed.returncode == 0, packed.stderr
    assert "3 parts" in packed.stdout and "(2 wheels)" in packed.stdout, packed.stdout
    parts = sorted(wheels.glob("part-*"))
    assert [part.name for part in parts] == ["part-01", "part-02", "part-03"]
    assert all(sum(file.stat().st_size for file in part.iterdir()) <= 2**20 for part in parts)
    assert len(list(wheels.glob(f"part-*/{big.name}.chunk-*"))) == 3 and sizes == {
        path.name: path.stat().st_size for path in source.iterdir()}  # the source folder is left as it was

    env = dict(WHEELS=str(wheels), SITE=str(tmp_path / "site"), OUT=str(tmp_path / "out"))
    installed = script("gpu_run.sh", "install", **env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "2 wheels checked" in installed.stdout
    assert (tmp_path / "site" / "bigpkg" / "payload.bin").stat().st_size == 2_500_000
    assert (tmp_path / "out" / "stages.txt").read_text().startswith("install: ok")

    chunk = sorted(wheels.glob("part-*/*.chunk-01"))[0]
    chunk.write_bytes(chunk.read_bytes()[:-1])
    damaged = script("gpu_run.sh", "install", **env)
    assert damaged.returncode != 0
    assert "wheels missing or damaged" in damaged.stderr and "bigpkg-1.0-py3-none-any.whl: FAILED" in damaged.stdout
    assert (tmp_path / "out" / "stages.txt").read_text().splitlines()[-1].startswith("install: failed")


def test_a_hanging_stage_is_stopped_at_its_limit_with_its_children_and_the_next_stage_still_runs(tmp_path):
    pid_file = tmp_path / "child.pid"
    hanging = tmp_path / "test_hangs.py"
    hanging.write_text(f"""import subprocess, sys, time
def test_hangs_with_a_child_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open({str(pid_file)!r}, "w").write(str(child.pid))
    time.sleep(600)
""")
    started = time.monotonic()
    done = script("gpu_run.sh", "test", "bench", OUT=str(tmp_path / "out"), STAGE_SECONDS="25",
                  TESTS=f"{hanging} -p no:cacheprovider")
    assert time.monotonic() - started < 120
    stages = (tmp_path / "out" / "stages.txt").read_text().splitlines()
    assert stages[0].startswith("test: timed out after 25 s"), stages
    # Without CUDA the benchmark stage refuses to run the gpu preset: it still ran, and failed on its own.
    assert stages[1].startswith("bench: failed (1)") and "CUDA is not available" in done.stderr, stages
    assert done.returncode == 124  # the first failing stage's status
    child = int(pid_file.read_text())
    for _ in range(50):  # the grandchild got the stage's signal with its process group
        if not running(child):
            break
        time.sleep(0.1)
    else:
        os.kill(child, 9)
        raise AssertionError(f"process {child} of the timed-out stage is still running")


def running(pid: int) -> bool:
    """Whether process `pid` is alive (an exited one nobody has reaped yet is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")
