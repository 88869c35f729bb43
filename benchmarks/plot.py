"""PNG of the report: clips/s per component, the codec sweep and the video-length sweep. Needs the optional
matplotlib."""
from __future__ import annotations

from pathlib import Path

MISSING = "skipped, matplotlib is not installed (`pip install -e '.[bench]'`)"


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def components(report: dict) -> list[tuple[str, float]]:
    head = report["headline"]
    named = [("DALI loader", head["dali_clips_per_s"]), ("DALI loader, dense decoding", head["dali_dense_clips_per_s"]),
             ("baseline loader", head["baseline_clips_per_s"]),
             ("model step", head["step_clips_per_s"]), ("end to end", head["e2e_clips_per_s"])]
    return [(name, value) for name, value in named if value is not None]


def codec_points(report: dict) -> list[tuple[str, float, float]]:
    """(label, KB per clip, decode clips/s) of every decoded codec-sweep point."""
    section = report["sections"].get("codecs", {})
    if section.get("status") != "ok":
        return []
    return [(f"{row['codec']} {'intra' if row['gop'] is None else 'g' + str(row['gop'])} {row['short_side']}p",
             row["bytes_per_clip"] / 1e3, row["decode"]["dali"]["clips_per_s"]["median"])
            for row in section["rows"] if row["decode"]]


def length_curves(report: dict) -> dict[str, list[tuple[int, float]]]:
    """Decoding mode -> (frames per video, loader CPU ms/clip) of the video-length sweep."""
    section = report["sections"].get("lengths", {})
    if section.get("status") != "ok":
        return {}
    return {mode: [(row["frames"], row[mode]["steady_cpu_ms_per_clip"]["median"]) for row in section["rows"]]
            for mode in ("sparse", "dense")}


def write_plot(report: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.5))
    bars = components(report)
    left.barh([name for name, _ in bars], [value for _, value in bars], color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("clips/s (log)")
    left.set_title("throughput per component")
    left.invert_yaxis()
    for position, (_, value) in enumerate(bars):
        left.text(value, position, f" {value:.3g}", va="center")
    points = codec_points(report)
    colors = {codec: f"C{number}" for number, codec in enumerate(dict.fromkeys(p[0].split()[0] for p in points))}
    for label, size, speed in points:
        middle.scatter(size, speed, color=colors[label.split()[0]])
        middle.annotate(label, (size, speed), fontsize=7, xytext=(3, 3), textcoords="offset points")
    middle.set_xscale("log")
    middle.set_xlabel("KB per clip (log)")
    middle.set_ylabel("DALI decode clips/s (sparse)")
    middle.set_title("codec sweep" if points else "codec sweep (not run)")
    curves = length_curves(report)
    for mode, curve in curves.items():
        right.plot([frames for frames, _ in curve], [cost for _, cost in curve], marker="o", label=f"{mode} decoding")
    if curves:
        right.legend()
    right.set_ylim(bottom=0)
    right.set_xlabel("frames per video")
    right.set_ylabel("DALI loader CPU ms per clip")
    right.set_title("video lengths" if curves else "video lengths (not run)")
    figure.suptitle(f"{report['name']}  ({report['created']})", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
