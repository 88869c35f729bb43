"""`loader`: clips/s of the DALI loader (sparse and dense decoding) and of the baseline (webdataset + PyAV +
DataLoader workers); on a GPU machine also of the DALI loader decoding on the CPU instead of NVDEC.

All read the same shards with the same sampling and augmentation settings, `threads` DALI threads
against `threads` DataLoader worker processes, inside the same CPU affinity mask (`--cpus`), so they
get the same CPU budget. The DALI loader runs twice: decoding only the GOPs that hold the sampled frames
(`dali`, the default) and every frame up to the last sampled one (`dali-dense`, as the baseline decodes).
Each repeat is one epoch (a new DALI pipeline, new workers); its first `loader_warmup` batches are not
timed; with `loader_batches` the shards are listed as often as it takes for that many timed batches
(every read decodes its clip anew), so a fast loader is timed over more than a few batches. CPU time
per clip is measured too: on a machine shared with other work the busier loader gets a larger share of
the cores, CPU time per clip stays what the loader costs.
"""
from __future__ import annotations

import gc
import statistics
import tempfile
import time
from pathlib import Path

from pipelines import build_loader, open_shards

from benchmarks.data import BenchmarkError, repeated_manifest
from benchmarks.settings import Settings
from benchmarks.stats import cpu_budget, cpu_seconds, ratio, summarize, synchronize

# Row name -> build_loader options; the DALI rows without a decode_device decode where the run config says
# (auto: NVDEC when there is a GPU). `dali-cpu` runs only where that is the GPU (elsewhere it is `dali`).
LOADERS = {"dali": {"backend": "dali", "sparse_decode": True},
           "dali-dense": {"backend": "dali", "sparse_decode": False},
           "dali-cpu": {"backend": "dali", "sparse_decode": True, "decode_device": "cpu"},
           "baseline": {"backend": "baseline"}}


def loader_rows(decode_device: str) -> dict[str, dict]:
    """The rows to measure on a machine whose DALI loader decodes on `decode_device` ("gpu" or "cpu")."""
    return {name: options for name, options in LOADERS.items() if name != "dali-cpu" or decode_device == "gpu"}


def time_epoch(loader, warmup: int, max_batches: int | None, device) -> dict:
    """One epoch: clips/s after the warm-up batches, and CPU time per clip over the whole epoch.

    CPU time counts this process's threads (DALI), its source workers and the DataLoader workers; unlike
    clips/s it does not depend on what else the machine is running.
    """
    cpu_before, started = cpu_seconds(), time.perf_counter()
    timed_from, timed_clips, timed_batches, all_clips = started, 0, 0, 0
    cpu_timed_from = cpu_before
    batches = iter(loader)
    try:
        for number, batch in enumerate(batches):
            all_clips += batch["video"].shape[0]
            if number < warmup:
                if number == warmup - 1:
                    synchronize(device)
                    timed_from, cpu_timed_from = time.perf_counter(), cpu_seconds()
                continue
            timed_clips += batch["video"].shape[0]
            timed_batches += 1
            if max_batches is not None and timed_batches >= max_batches:
                break
        synchronize(device)
        finished, cpu_timed = time.perf_counter(), cpu_seconds() - cpu_timed_from
    finally:
        batches.close()  # stops the pipeline, joins the workers
        gc.collect()
    cpu = cpu_seconds() - cpu_before
    return {"clips_per_s": timed_clips / (finished - timed_from), "warmup_s": timed_from - started,
            "timed_clips": timed_clips, "cpu_ms_per_clip": 1000 * cpu / all_clips,
            "steady_cpu_ms_per_clip": 1000 * cpu_timed / timed_clips,
            "cores_busy": cpu / (time.perf_counter() - started)}


def measure(shards, settings: Settings, max_batches: int | None, **options) -> dict:
    """`loader_repeats` epochs of one train loader built with `options` (see LOADERS), summarized.

    DALI loaders also give the frames decoded per clip (the mean over the epochs' clips), the frames
    decoded per second at the median rate, and the clips that had to be decoded from the start
    (irregular GOPs).
    """
    loader = build_loader(shards, "train", settings.run.data, seed=settings.run.seed,
                          dtype=settings.run.deepspeed.precision, **options)
    epochs, decoded = [], []
    for repeat in range(settings.loader_repeats):
        loader.set_epoch(repeat)
        epochs.append(time_epoch(loader, settings.loader_warmup, max_batches, settings.device))
        if options["backend"] == "dali":
            decoded.append(loader.decode_stats)
    del loader
    gc.collect()  # release the pipeline's threads and buffers before the next loader starts
    rate = summarize([e["clips_per_s"] for e in epochs], "clips/s")
    frames_per_clip = statistics.mean(d["frames_decoded_per_clip"] for d in decoded) if decoded else None
    return {"clips_per_s": rate,
            "warmup_s": summarize([e["warmup_s"] for e in epochs], "s"),
            "cpu_ms_per_clip": summarize([e["cpu_ms_per_clip"] for e in epochs], "ms"),
            "steady_cpu_ms_per_clip": summarize([e["steady_cpu_ms_per_clip"] for e in epochs], "ms"),
            "cores_busy": summarize([e["cores_busy"] for e in epochs], "cores"),
            "timed_clips": sum(e["timed_clips"] for e in epochs),
            "frames_decoded_per_clip": frames_per_clip,
            "frames_decoded_per_s": None if frames_per_clip is None else frames_per_clip * rate["median"],
            "dense_clips": sum(d["dense_clips"] for d in decoded) if decoded else None}


def run(settings: Settings, shards_path) -> dict:
    batch_size = settings.run.data.batch_size
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as manifests:
        repeats = 1
        if settings.loader_batches is not None:
            clips = (settings.loader_warmup + settings.loader_batches) * batch_size
            shards_path, repeats = repeated_manifest(shards_path, clips, Path(manifests))
        shards = open_shards(shards_path)
        batches = shards.num_samples // batch_size
        if batches <= settings.loader_warmup:
            raise BenchmarkError(f"{shards_path} holds {shards.num_samples} clips = {batches} batches of {batch_size}, "
                                 f"not more than the {settings.loader_warmup} warm-up batches; use more videos "
                                 "(--videos-per-class), a smaller --batch-size or --loader-warmup, or --loader-batches")
        with cpu_budget(settings.cpus) as cores:
            results = {name: measure(shards, settings, settings.loader_batches, **options)
                       for name, options in loader_rows(settings.decode_device).items()}
    rate = {name: result["clips_per_s"]["median"] for name, result in results.items()}
    return {"status": "ok", **results, "cores": cores, "threads": settings.run.data.workers,
            "batches_per_epoch": batches, "num_samples": shards.num_samples, "shard_repeats": repeats,
            "decode_device": settings.decode_device,
            "dali_vs_baseline": ratio(rate["dali"], rate["baseline"]),
            "sparse_vs_dense": ratio(rate["dali"], rate["dali-dense"]),
            # NVDEC against DALI's CPU decoder on the same cores (GPU machines only).
            "gpu_vs_cpu_decode": ratio(rate["dali"], rate.get("dali-cpu")),
            "dali_cpu_advantage": ratio(results["baseline"]["cpu_ms_per_clip"]["median"],
                                        results["dali"]["cpu_ms_per_clip"]["median"])}
