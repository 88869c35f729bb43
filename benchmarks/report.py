"""The report a run leaves: tables of strings (rendered to Markdown and to the console), the headline
numbers a reader wants first and the targets they are held against, the optional PNG, and the files
(`<name>.json` with everything, `<name>.md`, `<name>.png`, one line of `history.jsonl`)."""
from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from rich.console import Console
from rich.table import Table as RichTable

from benchmarks.loader import LOADERS
from benchmarks.stats import ratio

SCHEMA_VERSION = 2
HISTORY_FILE = "history.jsonl"
MISSING = "skipped, matplotlib is not installed (`pip install -e '.[bench]'`)"
# Targets from the design (reported against, not enforced): (comparison, value).
TARGETS = {"dali_vs_baseline": (">=", 2.0), "sparse_vs_dense": (">=", 1.3), "sparse_vs_dense_long": (">=", 3.0),
           "long_vs_short_cost": ("<=", 2.0), "decode_vs_limit": ("<=", 1.5), "dali_vs_best_peer": ("<", 1.0),
           "overlap_efficiency": (">=", 0.9), "e2e_clips_per_s": (">=", 1500.0), "data_wait_pct": ("<", 5.0)}
COMPARISONS = {">=": operator.ge, "<=": operator.le, "<": operator.lt}
# Frames per video of the long and the short videos the length targets compare.
LONG_VIDEO, SHORT_VIDEO = 480, 48
# The end-to-end targets hold for this configuration on a Hopper GPU (the name holds one of E2E_TARGET_GPUS).
E2E_TARGET_SETUP = {"arch": "ViT-B-32", "num_frames": 8, "precision": "bf16"}
E2E_TARGET_GPUS = ("H100", "H200")
E2E_TARGET_KEYS = ("e2e_clips_per_s", "data_wait_pct")


def _ok(section: dict | None) -> dict | None:
    """The section if it ran to the end; a failed or skipped one has no numbers to show."""
    return section if section and section.get("status") == "ok" else None


def _gop(gop: int | None, prefix: str = "") -> str:
    # The sweep records an all-intra encoding as GOP None.
    return "intra" if gop is None else f"{prefix}{gop}"


# --- Tables: one model for both renderings, so Markdown and console cannot drift apart ------------------


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _num(value, digits: int = 3) -> str:
    """Compact number: 3 significant digits, thousands kept whole; '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


def _med(summary: dict) -> str:
    return _num(summary["median"])


def _spread(summary: dict) -> str:
    return f"{summary['spread_pct']:.0f}%"


def _rate(summary: dict) -> list[str]:
    """median, min-max, spread of a summarized measurement."""
    return [_med(summary), f"{_num(summary['min'])}-{_num(summary['max'])}", _spread(summary)]


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ms_ratio(value, numerator, denominator) -> str:
    """A CPU-time ratio with the two times it divides."""
    return "-" if value is None else f"{value:.2f}x ({_num(numerator)} / {_num(denominator)} ms)"


def _pct(value, already_pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value if already_pct else 100 * value:.1f}%"


def _target(key: str, unit: str = "x") -> str:
    comparison, value = TARGETS[key]
    return f"{comparison} {_num(value)}{unit}"


def _frames_decoded(sparse: dict, dense: dict) -> str:
    return f"{_num(sparse['frames_decoded_per_clip'])} / {_num(dense['frames_decoded_per_clip'])}"


def _note_dense_clips(table: Table, dense_clips: int) -> None:
    if dense_clips:
        table.notes.append(f"{dense_clips} clip reads (all repeats) were decoded whole in sparse mode: their GOPs "
                           "are not closed")


def headline_table(report: dict) -> Table:
    head, settings = report["headline"], report["settings"]
    met = verdicts(head)
    mark = {True: "yes", False: "no", None: "-"}
    encoding = f"{settings.get('shard_codec')} GOP {settings.get('shard_gop')} {settings.get('shard_short_side')}p"
    peer = head["best_peer"] or "none ran"

    def line(label: str, key: str, value: str | None = None, target: str | None = None) -> list[str]:
        """A headline row; a ratio unless `value` says otherwise, and its target where it has one."""
        if target is None:
            target = _target(key) if key in TARGETS else "-"
        return [label, _times(head[key]) if value is None else value, target, mark[met.get(key)]]

    e2e_setup = f"({' / '.join(E2E_TARGET_GPUS)}, ViT-B/32 8f bf16)"

    def e2e_target(key: str, unit: str) -> str:
        return f"{_target(key, unit=unit)} {e2e_setup}" if head["e2e_target_applies"] else f"n/a here {e2e_setup}"

    table = Table("Headline", ["metric", "value", "target", "met"])
    table.rows = [
        line("DALI vs baseline loader, clips/s (same CPU budget)", "dali_vs_baseline"),
        line("DALI vs baseline loader, CPU time per clip (baseline / DALI)", "dali_cpu_advantage"),
        line("DALI loader, sparse vs dense decoding, clips/s", "sparse_vs_dense"),
        line(f"DALI loader, sparse vs dense decoding, clips/s on {LONG_VIDEO}-frame videos", "sparse_vs_dense_long"),
        line(f"DALI loader CPU ms/clip, {LONG_VIDEO}- vs {SHORT_VIDEO}-frame videos (sparse)", "long_vs_short_cost"),
        line(f"DALI decode vs needed-GOPs limit, CPU ms/clip ({encoding})", "decode_vs_limit",
             _ms_ratio(head["decode_vs_limit"], head["dali_decode_cpu_ms"], head["limit_cpu_ms"])),
        line(f"DALI decode vs best peer ({peer}), CPU ms/clip ({encoding})", "dali_vs_best_peer",
             _ms_ratio(head["dali_vs_best_peer"], head["dali_decode_cpu_ms"], head["best_peer_cpu_ms"])),
        line("overlap efficiency = e2e / min(loader, step)", "overlap_efficiency", _num(head["overlap_efficiency"]),
             _target("overlap_efficiency", unit="")),
        line("MFU, model step (vs measured bf16 matmul)", "step_mfu", _pct(head["step_mfu"])),
        line("MFU, end to end", "e2e_mfu", _pct(head["e2e_mfu"])),
        line("end-to-end clips/s", "e2e_clips_per_s", _num(head["e2e_clips_per_s"]), e2e_target("e2e_clips_per_s", "")),
        line("data wait in training", "data_wait_pct", _pct(head["data_wait_pct"], already_pct=True),
             e2e_target("data_wait_pct", "%")),
        line(f"DALI loader frames decoded/s (sparse, decode on {head['decode_device'] or '-'})", "frames_decoded_per_s",
             _num(head["frames_decoded_per_s"])),
        line("DALI loader, NVDEC vs CPU decoding on the same cores, clips/s", "gpu_vs_cpu_decode"),
    ]
    if head["overlap_efficiency"] is not None and head["overlap_efficiency"] > 1:
        table.notes.append("overlap above 1: the loader is fully hidden and the step and e2e rates differ by their "
                           "measurement noise (see the spread in the step table)")
    return table


def section_tables(report: dict) -> list[Table]:
    """One table per section, in the order they ran; a section that did not finish shows why."""
    makers = {"loader": _loader_table, "step": _step_table, "e2e": _e2e_table, "codecs": _codecs_table,
              "lengths": _lengths_table, "build": _build_table}
    tables = []
    for name, section in report["sections"].items():
        if _ok(section):
            table = makers[name](section)
        else:
            table = Table(name, ["status", "reason"], [[section.get("status", "?"), section.get("error", "")]])
        if "seconds" in section:
            table.notes.append(f"section took {section['seconds']:.0f} s; 1-minute load average after it: "
                               f"{section['load_average']:.1f} (other processes skew the numbers when it is above "
                               "the core count)")
        tables.append(table)
    return tables


def _loader_table(section: dict) -> Table:
    table = Table(f"loader: DALI with {section['threads']} thread(s) vs baseline with {section['threads']} DataLoader "
                  f"worker(s), on cores {section['cores']}",
                  ["loader", "clips/s (median)", "min-max", "spread", "CPU ms/clip", "cores busy", "warm-up s",
                   "frames decoded/clip", "frames decoded/s"])
    for name in (name for name in LOADERS if name in section):
        result = section[name]
        table.rows.append([name, *_rate(result["clips_per_s"]), _med(result["cpu_ms_per_clip"]),
                           _med(result["cores_busy"]), _med(result["warmup_s"]),
                           _num(result["frames_decoded_per_clip"]), _num(result.get("frames_decoded_per_s"))])
    repeats = section.get("shard_repeats", 1)
    listed = f" (the shards listed {repeats} times)" if repeats > 1 else ""
    table.notes.append(f"{section['num_samples']} clips{listed}, {section['batches_per_epoch']} batches per epoch; "
                       f"decode on {section['decode_device']}; DALI / baseline = {section['dali_vs_baseline']:.2f}x "
                       f"in clips/s, {section['dali_cpu_advantage']:.2f}x in CPU time per clip (whole epoch, "
                       "start-up included; medians of the repeats); sparse / dense = "
                       f"{section['sparse_vs_dense']:.2f}x in clips/s")
    table.notes.append("dali decodes only the GOPs holding the sampled frames; dali-dense and the baseline decode "
                       "every frame up to the last sampled one (the baseline does not count its frames)")
    if section.get("gpu_vs_cpu_decode") is not None:
        table.notes.append(f"dali-cpu: the dali row with DALI's CPU decoder on the same cores instead of NVDEC; "
                           f"NVDEC / CPU = {section['gpu_vs_cpu_decode']:.2f}x in clips/s")
    _note_dense_clips(table, section["dali"]["dense_clips"])
    return table


def _step_table(section: dict) -> Table:
    table = Table(f"step: model alone on resident tensors ({section['device']})",
                  ["clips/s (median)", "min-max", "spread", "GFLOP/clip", "achieved TFLOP/s",
                   "bf16 matmul TFLOP/s", "MFU"])
    table.rows.append([*_rate(section["clips_per_s"]), _num(section["flops_per_clip"] / 1e9),
                       _num(section["achieved_tflops"]), _num(section["matmul_bf16_tflops"]), _pct(section["mfu"])])
    memory = section.get("max_memory_gib")
    table.notes.append(f"{section['parameters'] / 1e6:.1f} M parameters"
                       + (f", peak GPU memory {memory:.1f} GiB" if memory is not None else ""))
    return table


def _e2e_table(section: dict) -> Table:
    steady, whole = section["steady"], section["whole_run"]
    table = Table("e2e: training loop (DeepSpeed + DALI)",
                  ["window", "clips/s", "data wait", "steps", "seconds"])
    table.rows.append([f"steady: steps {steady['from_step']}-{steady['to_step']}", _num(steady["clips_per_s"]),
                       _pct(steady["data_wait_pct"], already_pct=True),
                       str(steady["to_step"] - steady["from_step"]), _num(steady["seconds"])])
    table.rows.append(["whole run (trainer's summary)", _num(whole["clips_per_s"]),
                       _pct(whole["data_wait_pct"], already_pct=True), str(section["steps"]),
                       _num(section["wall_s"])])
    if section["shard_repeats"] > 1:
        table.notes.append(f"the shards are listed {section['shard_repeats']}x so every step falls in one epoch")
    return table


def _codecs_table(section: dict) -> Table:
    peers = section["peers"]
    table = Table(f"codecs: {section['videos']} videos, decode of T={section['frames_per_clip']} frames per clip "
                  f"({section['decoder']}, {section['threads']} thread(s)), batch {section['batch_size']}, on cores "
                  f"{section['cores']}",
                  ["codec", "GOP", "short side", "KB/clip", "frames decoded sparse/dense", "DALI clips/s", "spread",
                   "DALI ms", "dense ms", "limit ms", "DALI/limit", "remux ms", *[f"{peer} ms" for peer in peers],
                   "encode videos/s"])
    dense_clips, failed = 0, []
    for row in section["rows"]:
        point = [row["codec"], _gop(row["gop"]), str(row["short_side"]), _num(row["bytes_per_clip"] / 1e3)]
        decode = row["decode"]
        if decode is None:
            blank = ["-"] * (len(table.columns) - len(point) - 3)  # between "skipped" and the encode rate
            table.rows.append([*point, "-", "skipped", *blank, _num(row["encode_videos_per_s"])])
            continue
        dali, dense, limit = decode["dali"], decode["dali-dense"], decode["limit"]
        dense_clips += dali["dense_clips"]
        table.rows.append([*point, _frames_decoded(dali, dense), _med(dali["clips_per_s"]),
                           _spread(dali["clips_per_s"]), _med(dali["cpu_ms_per_clip"]),
                           _med(dense["cpu_ms_per_clip"]), _med(limit["cpu_ms_per_clip"]),
                           _times(decode["dali_vs_limit"]), _med(limit["remux_ms_per_clip"]),
                           *[_peer_cost(decode["peers"][peer]) for peer in peers], _num(row["encode_videos_per_s"])])
        failed += [f"{peer} failed on {point[0]} GOP {point[1]} {point[2]}p: {result['error']}"
                   for peer, result in decode["peers"].items() if "error" in result]
    table.notes.append("ms: CPU ms per clip, every thread and worker process (medians of the repeats); DALI is fed "
                       "only the GOPs holding the sampled frames, dense the whole video; limit: PyAV on one thread "
                       "decoding only those GOPs (sampled frames to RGB), remux: cutting them out")
    if peers:
        table.notes.append(f"peers ({', '.join(peers)}): decode-only on one thread from the whole video, same clips "
                           "and frame indices")
    for peer, reason in section["peers_missing"].items():
        table.notes.append(f"{peer}: not measured, {reason}")
    table.notes += failed
    _note_dense_clips(table, dense_clips)
    for codec in section["skipped_decode"]:
        table.notes.append(f"{codec}: decode skipped, DALI decodes {codec} only on a GPU (NVDEC) and this run has none")
    table.notes.append(f"encode videos/s: {section['encode_timing']}")
    return table


def _peer_cost(result: dict) -> str:
    return "failed" if "error" in result else _med(result["cpu_ms_per_clip"])


def _lengths_table(section: dict) -> Table:
    table = Table(f"lengths: DALI train loader on {section['codec']} GOP {section['gop']} short side "
                  f"{section['short_side']}, T={section['frames_per_clip']}, batch {section['batch_size']}, "
                  f"{section['threads']} thread(s), on cores {section['cores']}",
                  ["frames/video", "KB/clip", "frames decoded sparse/dense", "sparse clips/s", "dense clips/s",
                   "sparse/dense", "sparse ms", "dense ms", "sparse ms vs shortest"])
    dense_clips = 0
    for row in section["rows"]:
        sparse, dense = row["sparse"], row["dense"]
        dense_clips += sparse["dense_clips"]
        table.rows.append([str(row["frames"]), _num(row["bytes_per_clip"] / 1e3), _frames_decoded(sparse, dense),
                           _med(sparse["clips_per_s"]), _med(dense["clips_per_s"]), _times(row["sparse_vs_dense"]),
                           _med(sparse["steady_cpu_ms_per_clip"]), _med(dense["steady_cpu_ms_per_clip"]),
                           _times(row["sparse_cost_vs_shortest"])])
    table.notes.append(f"{section['clips_per_epoch']} clips per epoch (the videos reread), decode on "
                       f"{section['decode_device']}; ms: CPU ms per clip of the timed batches (steady state, "
                       "augmentation included, pipeline start-up not), medians of the repeats")
    _note_dense_clips(table, dense_clips)
    return table


def _build_table(section: dict) -> Table:
    columns = {"workers": "workers", "seconds": "seconds", "videos/s": "videos_per_s",
               "videos/s per worker": "videos_per_s_per_worker"}  # column -> row key; _num shows ints whole
    return Table(f"build: shard_tools build-shards, {section['videos']} videos ({section['source']}) -> "
                 f"{section['codec']} GOP {section['gop']} short side {section['short_side']}", list(columns),
                 [[_num(row[key]) for key in columns.values()] for row in section["rows"]])


def _key_value_table(title: str, pairs: Iterable[tuple[str, str]], key: str = "item") -> Table:
    return Table(title, [key, "value"], [list(pair) for pair in pairs])


def _machine_table(machine: dict) -> Table:
    gpu = machine["gpu"]
    return _key_value_table("Machine", [
        ("CPU", f"{machine['cpu']} ({machine['cpus_usable']} usable of {machine['cpu_count']} cores)"),
        ("memory", f"{machine['memory_gib']} GiB"),
        ("GPU", "none" if gpu is None else f"{gpu['count']}x {gpu['name']} ({gpu['memory_gib']} GiB)"),
        ("driver / CUDA", "-" if gpu is None else f"{gpu['driver'] or '?'} / {gpu['cuda_runtime']}"),
        ("OS", machine["os"]), ("code revision", machine["revision"] or "-"), *machine["libraries"].items()])


def _data_table(data: dict) -> Table:
    return _key_value_table("Data", [(key.replace("_", " "), _num(value) if isinstance(value, float) or value is None
                                      else str(value)) for key, value in data.items()])


def _settings_table(settings: dict) -> Table:
    return _key_value_table("Settings", [(key, json.dumps(value) if isinstance(value, (list, dict)) else str(value))
                                         for key, value in settings.items()], key="setting")


# History column -> (headline key, how it is shown).
HISTORY_COLUMNS = {"DALI": ("dali_clips_per_s", _num), "baseline": ("baseline_clips_per_s", _num),
                   "DALI/baseline": ("dali_vs_baseline", _times), "CPU/clip ratio": ("dali_cpu_advantage", _times),
                   "sparse/dense": ("sparse_vs_dense", _times),
                   f"sparse/dense {LONG_VIDEO}f": ("sparse_vs_dense_long", _times),
                   "decode/limit": ("decode_vs_limit", _times), "step": ("step_clips_per_s", _num),
                   "e2e": ("e2e_clips_per_s", _num), "overlap": ("overlap_efficiency", _num)}


def _history_table(entries: list[dict]) -> Table:
    table = Table("History (this report name, oldest first)", ["date", "note", *HISTORY_COLUMNS, "load"])
    for entry in entries:
        # .get: entries written before a headline key existed show '-' for it.
        table.rows.append([entry["created"][:16], entry["note"] or "-",
                           *[show(entry["headline"].get(key)) for key, show in HISTORY_COLUMNS.values()],
                           _num(entry.get("max_load_average"), 2)])
    table.notes.append("load: highest 1-minute load average seen after a section (above the core count, other "
                       "processes took part of the CPU); clips/s are medians, CPU/clip ratio = baseline / DALI; "
                       "sparse/dense: DALI loader clips/s with sparse over dense decoding (default set, and "
                       f"{LONG_VIDEO}-frame videos); decode/limit: DALI decode CPU ms/clip over the needed-GOPs limit")
    return table


def _markdown_lines(table: Table) -> list[str]:
    lines = [f"## {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join(" --- " for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table.rows]
    lines += [""] + [f"- {note}" for note in table.notes] + ([""] if table.notes else [])
    return lines


# --- Headline: the numbers a reader wants first (DALI vs baseline, sparse vs dense decoding, decode cost
# against its limit and the peers, overlap efficiency, MFU) and where the time goes ----------------------


def _lookup(section: dict | None, *path: str):
    """The value at `path` in a finished section; None where the section or a key is missing."""
    value = _ok(section)
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _length_row(lengths: dict | None, frames: int) -> dict | None:
    section = _ok(lengths)
    return next((row for row in section["rows"] if row["frames"] == frames), None) if section else None


def _default_encoding_decode(codecs: dict | None, settings: dict) -> dict | None:
    """The codec sweep's decode results at the default set's encoding (codec, GOP, short side)."""
    if not _ok(codecs):
        return None
    point = (settings.get("shard_codec"), settings.get("shard_gop"), settings.get("shard_short_side"))
    return next((row["decode"] for row in codecs["rows"]
                 if (row["codec"], row["gop"], row["short_side"]) == point), None)


def compute(sections: dict, settings: dict, machine: dict) -> dict:
    """The headline numbers, from the sections that finished (None for what they did not measure)."""
    loader, step, e2e = sections.get("loader"), sections.get("step"), sections.get("e2e")
    long, short = (_length_row(sections.get("lengths"), frames) for frames in (LONG_VIDEO, SHORT_VIDEO))
    decode = _default_encoding_decode(sections.get("codecs"), settings)
    # The limit is a CPU decoder's; NVDEC's CPU time is not comparable with it.
    decoded_on_cpu = decode is not None and sections["codecs"]["decoder"] == "cpu"
    dali_decode_ms = decode["dali"]["cpu_ms_per_clip"]["median"] if decode else None
    peer_ms = {name: peer["cpu_ms_per_clip"]["median"] for name, peer in (decode["peers"] if decode else {}).items()
               if "error" not in peer}
    best_peer = min(peer_ms, key=peer_ms.get, default=None)
    dali = _lookup(loader, "dali", "clips_per_s", "median")
    baseline = _lookup(loader, "baseline", "clips_per_s", "median")
    step_rate = _lookup(step, "clips_per_s", "median")
    e2e_rate = _lookup(e2e, "clips_per_s")
    slowest = min((rate for rate in (dali, step_rate) if rate is not None), default=None)
    flops, peak = _lookup(step, "flops_per_clip"), _lookup(step, "matmul_bf16_tflops")
    gpu = machine.get("gpu")
    e2e_target_applies = bool(gpu and any(name in gpu["name"] for name in E2E_TARGET_GPUS)) and all(
        settings.get(key) == value for key, value in E2E_TARGET_SETUP.items())
    return {
        "dali_clips_per_s": dali,
        "baseline_clips_per_s": baseline,
        "dali_vs_baseline": ratio(dali, baseline),
        "dali_cpu_advantage": _lookup(loader, "dali_cpu_advantage"),
        "dali_dense_clips_per_s": _lookup(loader, "dali-dense", "clips_per_s", "median"),
        "sparse_vs_dense": _lookup(loader, "sparse_vs_dense"),
        "decode_device": _lookup(loader, "decode_device"),
        "frames_decoded_per_s": _lookup(loader, "dali", "frames_decoded_per_s"),
        "gpu_vs_cpu_decode": _lookup(loader, "gpu_vs_cpu_decode"),
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
        "data_wait_pct": _lookup(e2e, "data_wait_pct"),
        "overlap_efficiency": ratio(e2e_rate, slowest if dali is not None and step_rate is not None else None),
        "step_mfu": _lookup(step, "mfu"),
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
        met.update(dict.fromkeys(E2E_TARGET_KEYS))
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


# --- Plot: clips/s per component, the codec sweep and the video-length sweep (needs the optional matplotlib)


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _components(report: dict) -> list[tuple[str, float]]:
    head = report["headline"]
    named = [("DALI loader", head["dali_clips_per_s"]), ("DALI loader, dense decoding", head["dali_dense_clips_per_s"]),
             ("baseline loader", head["baseline_clips_per_s"]),
             ("model step", head["step_clips_per_s"]), ("end to end", head["e2e_clips_per_s"])]
    return [(name, value) for name, value in named if value is not None]


def _codec_points(report: dict) -> list[tuple[str, float, float]]:
    """(label, KB per clip, decode clips/s) of every decoded codec-sweep point."""
    section = _ok(report["sections"].get("codecs"))
    if not section:
        return []
    return [(f"{row['codec']} {_gop(row['gop'], prefix='g')} {row['short_side']}p", row["bytes_per_clip"] / 1e3,
             row["decode"]["dali"]["clips_per_s"]["median"]) for row in section["rows"] if row["decode"]]


def _length_curves(report: dict) -> dict[str, list[tuple[int, float]]]:
    """Decoding mode -> (frames per video, loader CPU ms/clip) of the video-length sweep."""
    section = _ok(report["sections"].get("lengths"))
    if not section:
        return {}
    return {mode: [(row["frames"], row[mode]["steady_cpu_ms_per_clip"]["median"]) for row in section["rows"]]
            for mode in ("sparse", "dense")}


def write_plot(report: dict, path: Path) -> Path:
    import matplotlib  # imported here: it is optional, and the report is whole without the plot

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, middle, right) = plt.subplots(1, 3, figsize=(17, 4.5))
    bars = _components(report)
    left.barh([name for name, _ in bars], [value for _, value in bars], color="tab:blue")
    left.set_xscale("log")
    left.set_xlabel("clips/s (log)")
    left.set_title("throughput per component")
    left.invert_yaxis()
    for position, (_, value) in enumerate(bars):
        left.text(value, position, f" {value:.3g}", va="center")
    points = _codec_points(report)
    colors = {codec: f"C{number}" for number, codec in enumerate(dict.fromkeys(p[0].split()[0] for p in points))}
    for label, size, speed in points:
        middle.scatter(size, speed, color=colors[label.split()[0]])
        middle.annotate(label, (size, speed), fontsize=7, xytext=(3, 3), textcoords="offset points")
    middle.set_xscale("log")
    middle.set_xlabel("KB per clip (log)")
    middle.set_ylabel("DALI decode clips/s (sparse)")
    middle.set_title("codec sweep" if points else "codec sweep (not run)")
    curves = _length_curves(report)
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


# --- Report: assemble the run's results, write the files, show the summary --------------------------------


def assemble(name: str, note: str, command: list[str], machine: dict, settings: dict, data: dict,
             sections: dict) -> dict:
    head = compute(sections, settings, machine)
    return {"schema": SCHEMA_VERSION, "name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "note": note, "command": command, "headline": head, "where_time_goes": where_time_goes(head),
            "machine": machine, "settings": settings, "data": data, "sections": sections}


def history_entry(report: dict) -> dict:
    settings = report["settings"]
    keys = ("preset", "batch_size", "num_frames", "input_size", "threads", "prefetch", "arch", "precision")
    loads = [section["load_average"] for section in report["sections"].values() if "load_average" in section]
    return {"name": report["name"], "created": report["created"], "note": report["note"],
            "sections": list(report["sections"]), "headline": report["headline"],
            "max_load_average": max(loads, default=None),
            "settings": {key: settings[key] for key in keys}}


def read_history(out_dir: Path, name: str) -> list[dict]:
    path = out_dir / HISTORY_FILE
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [entry for entry in entries if entry["name"] == name]


def write(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write `<name>.png` (or record why not), append to the history, then write `<name>.json` and `<name>.md`.

    The plot comes first because the JSON and the Markdown name it (`plot` or `plot_skipped`, added to
    `report`). Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if matplotlib_available():
        report["plot"] = write_plot(report, out_dir / f"{report['name']}.png").name
    else:
        report["plot_skipped"] = MISSING
    with open(out_dir / HISTORY_FILE, "a") as handle:
        handle.write(json.dumps(history_entry(report)) + "\n")
    paths = {"json": out_dir / f"{report['name']}.json", "markdown": out_dir / f"{report['name']}.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report, read_history(out_dir, report["name"])))
    if "plot" in report:
        paths["plot"] = out_dir / report["plot"]
    return paths


def markdown(report: dict, history: list[dict]) -> str:
    lines = [f"# Benchmark report: {report['name']}", "",
             f"{report['created']} - `{' '.join(report['command'])}`" + (f" - note: {report['note']}"
                                                                          if report["note"] else ""), "",
             f"**Where the time goes.** {report['where_time_goes']}", ""]
    if report.get("plot"):
        lines += [f"![clips/s per component and codec sweep]({report['plot']})", ""]
    elif report.get("plot_skipped"):
        lines += [f"_Plot: {report['plot_skipped']}_", ""]
    tables = [headline_table(report), *section_tables(report), _data_table(report["data"]),
              _machine_table(report["machine"]), _settings_table(report["settings"])]
    if history:
        tables.append(_history_table(history))
    for table in tables:
        lines += _markdown_lines(table)
    return "\n".join(lines)


def print_console(report: dict, paths: dict[str, Path], console: Console | None = None) -> None:
    """The headline and section tables, the bottleneck sentence and the files written."""
    console = console or Console()
    for table in [headline_table(report), *section_tables(report)]:
        view = RichTable(*table.columns, title=table.title, title_justify="left")
        for row in table.rows:
            view.add_row(*row)
        console.print(view)
        for note in table.notes:
            console.print(f"  [dim]{note}[/dim]")
    console.print(f"[bold]{report['where_time_goes']}[/bold]")
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
