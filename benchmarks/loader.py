"""`loader`: clips/s of the DALI loader and of the baseline (webdataset + PyAV + DataLoader workers).

Both read the same shards with the same sampling and augmentation settings, `threads` DALI threads
against `threads` DataLoader worker processes, inside the same CPU affinity mask (`--cpus`), so they
get the same CPU budget. Each repeat is one epoch (a new DALI pipeline, new workers); its first
`loader_warmup` batches are not timed. CPU time per clip is measured too: on a machine shared with other
work the busier loader gets a larger share of the cores, CPU time per clip stays what the loader costs.
"""
from __future__ import annotations

import contextlib
import gc
import os
import time
from typing import Iterator

from pipelines import build_loader, open_shards

from benchmarks.data import BenchmarkError
from benchmarks.settings import Settings
from benchmarks.stats import cpu_seconds, summarize, synchronize

BACKENDS = ("dali", "baseline")


@contextlib.contextmanager
def cpu_budget(cpus: int | None) -> Iterator[list[int]]:
    """Restrict this process (and the workers and threads it starts) to its first `cpus` cores."""
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed if cpus is None else allowed[:cpus]
    os.sched_setaffinity(0, chosen)
    try:
        yield chosen
    finally:
        os.sched_setaffinity(0, allowed)


def time_epoch(loader, warmup: int, max_batches: int | None, device) -> dict:
    """One epoch: clips/s after the warm-up batches, and CPU time per clip over the whole epoch.

    CPU time counts this process's threads (DALI) and the DataLoader workers, which are joined when the
    iterator closes; unlike clips/s it does not depend on what else the machine is running.
    """
    cpu_before, started = cpu_seconds(), time.perf_counter()
    timed_from, timed_clips, timed_batches, all_clips = started, 0, 0, 0
    batches = iter(loader)
    try:
        for number, batch in enumerate(batches):
            all_clips += batch["video"].shape[0]
            if number < warmup:
                if number == warmup - 1:
                    synchronize(device)
                    timed_from = time.perf_counter()
                continue
            timed_clips += batch["video"].shape[0]
            timed_batches += 1
            if max_batches is not None and timed_batches >= max_batches:
                break
        synchronize(device)
        finished = time.perf_counter()
    finally:
        batches.close()  # stops the pipeline, joins the workers
        gc.collect()
    cpu = cpu_seconds() - cpu_before
    return {"clips_per_s": timed_clips / (finished - timed_from), "warmup_s": timed_from - started,
            "timed_clips": timed_clips, "cpu_ms_per_clip": 1000 * cpu / all_clips,
            "cores_busy": cpu / (time.perf_counter() - started)}


def run(settings: Settings, shards_path) -> dict:
    shards = open_shards(shards_path)
    batches = shards.num_samples // settings.batch_size
    if batches <= settings.loader_warmup:
        raise BenchmarkError(f"{shards_path} holds {shards.num_samples} clips = {batches} batches of "
                             f"{settings.batch_size}, not more than the {settings.loader_warmup} warm-up batches; "
                             "use more videos (--videos-per-class), a smaller --batch-size or --loader-warmup")
    results = {}
    with cpu_budget(settings.cpus) as cores:
        for backend in BACKENDS:
            loader = build_loader(shards, "train", batch_size=settings.batch_size, num_frames=settings.num_frames,
                                  image_size=settings.input_size, seed=settings.seed, num_threads=settings.threads,
                                  prefetch=settings.prefetch, dtype=settings.loader_dtype, backend=backend)
            epochs = []
            for repeat in range(settings.loader_repeats):
                loader.set_epoch(repeat)
                epochs.append(time_epoch(loader, settings.loader_warmup, settings.loader_batches, settings.device))
            results[backend] = {"clips_per_s": summarize([e["clips_per_s"] for e in epochs], "clips/s"),
                                "warmup_s": summarize([e["warmup_s"] for e in epochs], "s"),
                                "cpu_ms_per_clip": summarize([e["cpu_ms_per_clip"] for e in epochs], "ms"),
                                "cores_busy": summarize([e["cores_busy"] for e in epochs], "cores"),
                                "timed_clips": sum(e["timed_clips"] for e in epochs)}
            del loader
            gc.collect()  # release the pipeline's threads and buffers before the next loader starts
    return {"status": "ok", **results, "cores": cores, "threads": settings.threads,
            "batches_per_epoch": batches, "num_samples": shards.num_samples,
            "decode_device": "gpu" if settings.device.type == "cuda" else "cpu",
            "dali_vs_baseline": results["dali"]["clips_per_s"]["median"] /
            results["baseline"]["clips_per_s"]["median"],
            "dali_cpu_advantage": results["baseline"]["cpu_ms_per_clip"]["median"] /
            results["dali"]["cpu_ms_per_clip"]["median"]}
