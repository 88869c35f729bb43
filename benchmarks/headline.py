"""The numbers a reader wants first: DALI vs baseline, sparse vs dense decoding, decode cost against its
limit and the peers, overlap efficiency, MFU, and where the time goes."""
from __future__ import annotations

import operator

from benchmarks.stats import ratio

# Targets from the design (reported against, not enforced): (comparison, value).
TARGETS = {"dali_vs_baseline": (">=", 2.0), "sparse_vs_dense": (">=", 1.3), "sparse_vs_dense_long": (">=", 3.0),
           "long_vs_short_cost": ("<=", 2.0), "decode_vs_limit": ("<=", 1.5), "dali_vs_best_peer": ("<", 1.0),
           "overlap_efficiency": (">=", 0.9), "e2e_clips_per_s": (">=", 1500.0)}
COMPARISONS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}
# Frames per video of the long and the short videos the length targets compare.
LONG_VIDEO, SHORT_VIDEO = 480, 48
# The e2e target holds for this configuration on an H100.
E2E_TARGET_SETUP = {"arch": "ViT-B-32", "num_frames": 8, "precision": "bf16"}


def _median(section: dict | None, *path: str) -> float | None:
    if not section or section.get("status") != "ok":
        return None
    value = section
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _length_row(lengths: dict | None, frames: int) -> dict | None:
    if not lengths or lengths.get("status") != "ok":
        return None
    return next((row for row in lengths["rows"] if row["frames"] == frames), None)


def _default_encoding_decode(codecs: dict | None, settings: dict) -> dict | None:
    """The codec sweep's decode results at the default set's encoding (codec, GOP, short side)."""
    if not codecs or codecs.get("status") != "ok":
        return None
    point = (settings.get("shard_codec"), settings.get("shard_gop"), settings.get("shard_short_side"))
    return next((row["decode"] for row in codecs["rows"]
                 if (row["codec"], row["gop"], row["short_side"]) == point), None)


def compute(sections: dict, settings: dict, machine: dict) -> dict:
    loader, step, e2e = sections.get("loader"), sections.get("step"), sections.get("e2e")
    long, short = (_length_row(sections.get("lengths"), frames) for frames in (LONG_VIDEO, SHORT_VIDEO))
    decode = _default_encoding_decode(sections.get("codecs"), settings)
    # The limit is a CPU decoder's; NVDEC's CPU time is not comparable with it.
    decoded_on_cpu = decode is not None and sections["codecs"]["decoder"] == "cpu"
    dali_decode_ms = decode["dali"]["cpu_ms_per_clip"]["median"] if decode else None
    peer_ms = {name: peer["cpu_ms_per_clip"]["median"] for name, peer in (decode["peers"] if decode else {}).items()
               if "error" not in peer}
    best_peer = min(peer_ms, key=peer_ms.get, default=None)
    dali = _median(loader, "dali", "clips_per_s", "median")
    baseline = _median(loader, "baseline", "clips_per_s", "median")
    step_rate = _median(step, "clips_per_s", "median")
    e2e_rate = _median(e2e, "clips_per_s")
    slowest = min((rate for rate in (dali, step_rate) if rate is not None), default=None)
    flops, peak = _median(step, "flops_per_clip"), _median(step, "matmul_bf16_tflops")
    gpu = machine.get("gpu")
    e2e_target_applies = bool(gpu and "H100" in gpu["name"]) and all(
        settings.get(key) == value for key, value in E2E_TARGET_SETUP.items())
    return {
        "dali_clips_per_s": dali,
        "baseline_clips_per_s": baseline,
        "dali_vs_baseline": ratio(dali, baseline),
        "dali_cpu_advantage": _median(loader, "dali_cpu_advantage"),
        "dali_dense_clips_per_s": _median(loader, "dali-dense", "clips_per_s", "median"),
        "sparse_vs_dense": _median(loader, "sparse_vs_dense"),
        "sparse_vs_dense_long": long["sparse_vs_dense"] if long else None,
        "long_vs_short_cost": ratio(long["sparse"]["steady_cpu_ms_per_clip"]["median"],
                                    short["sparse"]["steady_cpu_ms_per_clip"]["median"]) if long and short else None,
        "dali_decode_cpu_ms": dali_decode_ms,
        "limit_cpu_ms": decode["limit"]["cpu_ms_per_clip"]["median"] if decode else None,
        "decode_vs_limit": decode["dali_vs_limit"] if decoded_on_cpu else None,
        "best_peer": best_peer,
        "best_peer_cpu_ms": peer_ms.get(best_peer),
        "dali_vs_best_peer": ratio(dali_decode_ms, peer_ms.get(best_peer)),
        "step_clips_per_s": step_rate,
        "e2e_clips_per_s": e2e_rate,
        "data_wait_pct": _median(e2e, "data_wait_pct"),
        "overlap_efficiency": ratio(e2e_rate, slowest if dali is not None and step_rate is not None else None),
        "step_mfu": _median(step, "mfu"),
        "e2e_mfu": None if None in (flops, peak, e2e_rate) else flops * e2e_rate / (peak * 1e12),
        "bottleneck": None if dali is None or step_rate is None else ("loader" if dali < step_rate else "model step"),
        "e2e_target_applies": e2e_target_applies,
        "targets": TARGETS,
    }


def verdicts(headline: dict) -> dict[str, bool | None]:
    """Whether each target is met; None where it was not measured or does not apply here."""
    met = {key: None if headline[key] is None else COMPARISONS[comparison](headline[key], target)
           for key, (comparison, target) in TARGETS.items()}
    if not headline["e2e_target_applies"]:
        met["e2e_clips_per_s"] = None
    return met


def where_time_goes(headline: dict) -> str:
    """One sentence naming the slower component and how the real loop compares with it."""
    dali, step, e2e = headline["dali_clips_per_s"], headline["step_clips_per_s"], headline["e2e_clips_per_s"]
    if dali is None or step is None:
        return "Run both the loader and the step sections to see which one limits training."
    slow, fast = sorted([("the DALI loader", dali), ("the model step", step)], key=lambda item: item[1])
    text = (f"{slow[0][:1].upper()}{slow[0][1:]} is the bottleneck: {slow[1]:.3g} clips/s against "
            f"{fast[1]:.3g} clips/s for {fast[0]} ({fast[1] / slow[1]:.1f}x).")
    if e2e is not None:
        wait = headline["data_wait_pct"]
        text += (f" Training end to end runs at {e2e:.3g} clips/s ({100 * e2e / slow[1]:.0f}% of the slower part"
                 + (f", waiting for data {wait:.1f}% of the time)." if wait is not None else ")."))
    return text
