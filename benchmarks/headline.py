"""The numbers a reader wants first: DALI vs baseline, overlap efficiency, MFU, and where the time goes."""
from __future__ import annotations

from benchmarks.stats import ratio

# Targets from the design (reported against, not enforced).
TARGETS = {"dali_vs_baseline": 2.0, "overlap_efficiency": 0.9, "e2e_clips_per_s": 1500.0}
# The e2e target holds for this configuration on an H100.
E2E_TARGET_SETUP = {"arch": "ViT-B-32", "num_frames": 8, "precision": "bf16"}


def _median(section: dict | None, *path: str) -> float | None:
    if not section or section.get("status") != "ok":
        return None
    value = section
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def compute(sections: dict, settings: dict, machine: dict) -> dict:
    loader, step, e2e = sections.get("loader"), sections.get("step"), sections.get("e2e")
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
    def meets(key: str) -> bool | None:
        return None if headline[key] is None else headline[key] >= TARGETS[key]

    return {"dali_vs_baseline": meets("dali_vs_baseline"), "overlap_efficiency": meets("overlap_efficiency"),
            "e2e_clips_per_s": meets("e2e_clips_per_s") if headline["e2e_target_applies"] else None}


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
