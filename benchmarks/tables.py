"""The report as tables of strings, rendered both to Markdown and to the console."""
from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.headline import TARGETS, verdicts


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def num(value, digits: int = 3) -> str:
    """Compact number: 3 significant digits, thousands kept whole; '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"


def rate(summary: dict | None) -> list[str]:
    """median, min-max, spread of a summarized measurement."""
    if summary is None:
        return ["-", "-", "-"]
    return [num(summary["median"]), f"{num(summary['min'])}-{num(summary['max'])}",
            f"{summary['spread_pct']:.0f}%"]


def headline_table(report: dict) -> Table:
    head = report["headline"]
    met = verdicts(head)
    mark = {True: "yes", False: "no", None: "-"}
    table = Table("Headline", ["metric", "value", "target", "met"])
    table.rows = [
        ["DALI vs baseline loader, clips/s (same CPU budget)", _times(head["dali_vs_baseline"]),
         f">= {TARGETS['dali_vs_baseline']:g}x", mark[met["dali_vs_baseline"]]],
        ["DALI vs baseline loader, CPU time per clip (baseline / DALI)", _times(head["dali_cpu_advantage"]),
         "-", "-"],
        ["overlap efficiency = e2e / min(loader, step)", num(head["overlap_efficiency"]),
         f">= {TARGETS['overlap_efficiency']:g}", mark[met["overlap_efficiency"]]],
        ["MFU, model step (vs measured bf16 matmul)", _pct(head["step_mfu"]), "-", "-"],
        ["MFU, end to end", _pct(head["e2e_mfu"]), "-", "-"],
        ["end-to-end clips/s", num(head["e2e_clips_per_s"]),
         f">= {TARGETS['e2e_clips_per_s']:,.0f} (H100, ViT-B/32 8f bf16)"
         if head["e2e_target_applies"] else "n/a here (H100, ViT-B/32 8f bf16)", mark[met["e2e_clips_per_s"]]],
        ["data wait in training", _pct(head["data_wait_pct"], already_pct=True), "-", "-"],
    ]
    if head["overlap_efficiency"] is not None and head["overlap_efficiency"] > 1:
        table.notes.append("overlap above 1: the loader is fully hidden and the step and e2e rates differ by their "
                           "measurement noise (see the spread in the step table)")
    return table


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _pct(value, already_pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value if already_pct else 100 * value:.1f}%"


def section_tables(report: dict) -> list[Table]:
    makers = {"loader": loader_table, "step": step_table, "e2e": e2e_table, "codecs": codecs_table,
              "build": build_table}
    tables = []
    for name, section in report["sections"].items():
        if section.get("status") != "ok":
            table = Table(name, ["status", "reason"], [[section.get("status", "?"), section.get("error", "")]])
        else:
            table = makers[name](section)
        if "seconds" in section:
            table.notes.append(f"section took {section['seconds']:.0f} s; 1-minute load average after it: "
                               f"{section['load_average']:.1f} (other processes skew the numbers when it is above "
                               "the core count)")
        tables.append(table)
    return tables


def loader_table(section: dict) -> Table:
    table = Table(f"loader: DALI with {section['threads']} thread(s) vs baseline with {section['threads']} DataLoader "
                  f"worker(s), on cores {section['cores']}", ["loader", "clips/s (median)", "min-max", "spread",
                                                   "CPU ms/clip", "cores busy", "warm-up s"])
    for backend in ("dali", "baseline"):
        result = section[backend]
        table.rows.append([backend, *rate(result["clips_per_s"]), num(result["cpu_ms_per_clip"]["median"]),
                           num(result["cores_busy"]["median"]), num(result["warmup_s"]["median"])])
    table.notes.append(f"{section['num_samples']} clips, {section['batches_per_epoch']} batches per epoch; "
                       f"decode on {section['decode_device']}; DALI / baseline = {section['dali_vs_baseline']:.2f}x "
                       f"in clips/s, {section['dali_cpu_advantage']:.2f}x in CPU time per clip (whole epoch, "
                       "start-up included; medians of the repeats)")
    return table


def step_table(section: dict) -> Table:
    table = Table(f"step: model alone on resident tensors ({section['device']})",
                  ["clips/s (median)", "min-max", "spread", "GFLOP/clip", "achieved TFLOP/s",
                   "bf16 matmul TFLOP/s", "MFU"])
    table.rows.append([*rate(section["clips_per_s"]), num(section["flops_per_clip"] / 1e9),
                       num(section["achieved_tflops"]), num(section["matmul_bf16_tflops"]), _pct(section["mfu"])])
    memory = section.get("max_memory_gib")
    table.notes.append(f"{section['parameters'] / 1e6:.1f} M parameters"
                       + (f", peak GPU memory {memory:.1f} GiB" if memory is not None else ""))
    return table


def e2e_table(section: dict) -> Table:
    steady, whole = section["steady"], section["whole_run"]
    table = Table("e2e: training loop (DeepSpeed + DALI)",
                  ["window", "clips/s", "data wait", "steps", "seconds"])
    table.rows.append([f"steady: steps {steady['from_step']}-{steady['to_step']}", num(steady["clips_per_s"]),
                       _pct(steady["data_wait_pct"], already_pct=True),
                       str(steady["to_step"] - steady["from_step"]), num(steady["seconds"])])
    table.rows.append(["whole run (trainer's summary)", num(whole["clips_per_s"]),
                       _pct(whole["data_wait_pct"], already_pct=True), str(section["steps"]),
                       num(section["wall_s"])])
    if section["shard_repeats"] > 1:
        table.notes.append(f"the shards are listed {section['shard_repeats']}x so every step falls in one epoch")
    return table


def codecs_table(section: dict) -> Table:
    table = Table(f"codecs: {section['videos']} videos, decode of T={section['frames_per_clip']} frames per clip "
                  f"({section['decoder']}), batch {section['batch_size']}",
                  ["codec", "GOP", "short side", "KB/clip", "decode clips/s", "min-max", "spread", "encode videos/s"])
    for row in section["rows"]:
        decode = rate(row["decode"]) if row["decode"] else ["skipped", "-", "-"]
        table.rows.append([row["codec"], "intra" if row["gop"] is None else str(row["gop"]), str(row["short_side"]),
                           num(row["bytes_per_clip"] / 1e3), *decode, num(row["encode_videos_per_s"])])
    for codec in section["skipped_decode"]:
        table.notes.append(f"{codec}: decode skipped, DALI decodes {codec} only on a GPU (NVDEC) and this run has none")
    table.notes.append(f"encode videos/s: {section['encode_timing']}")
    return table


def build_table(section: dict) -> Table:
    table = Table(f"build: shard_tools build-shards, {section['videos']} videos ({section['source']}) -> "
                  f"{section['codec']} GOP {section['gop']} short side {section['short_side']}",
                  ["workers", "seconds", "videos/s", "videos/s per worker"])
    for row in section["rows"]:
        table.rows.append([str(row["workers"]), num(row["seconds"]), num(row["videos_per_s"]),
                           num(row["videos_per_s_per_worker"])])
    return table


def machine_table(machine: dict) -> Table:
    gpu = machine["gpu"]
    table = Table("Machine", ["item", "value"])
    table.rows = [["CPU", f"{machine['cpu']} ({machine['cpus_usable']} usable of {machine['cpu_count']} cores)"],
                  ["memory", f"{machine['memory_gib']} GiB"],
                  ["GPU", "none" if gpu is None else f"{gpu['count']}x {gpu['name']} ({gpu['memory_gib']} GiB)"],
                  ["driver / CUDA", "-" if gpu is None else f"{gpu['driver'] or '?'} / {gpu['cuda_runtime']}"],
                  ["OS", machine["os"]], ["code revision", machine["revision"] or "-"]]
    table.rows += [[name, version] for name, version in machine["libraries"].items()]
    return table


def data_table(data: dict) -> Table:
    table = Table("Data", ["item", "value"])
    table.rows = [[key.replace("_", " "), num(value) if isinstance(value, float) or value is None else str(value)]
                  for key, value in data.items()]
    return table


def history_table(entries: list[dict]) -> Table:
    table = Table("History (this report name, oldest first)",
                  ["date", "note", "DALI", "baseline", "DALI/baseline", "CPU/clip ratio", "step", "e2e", "overlap",
                   "load"])
    for entry in entries:
        head = entry["headline"]
        table.rows.append([entry["created"][:16], entry["note"] or "-", num(head["dali_clips_per_s"]),
                           num(head["baseline_clips_per_s"]), _times(head["dali_vs_baseline"]),
                           _times(head.get("dali_cpu_advantage")),
                           num(head["step_clips_per_s"]), num(head["e2e_clips_per_s"]),
                           num(head["overlap_efficiency"]), num(entry.get("max_load_average"), 2)])
    table.notes.append("load: highest 1-minute load average seen after a section (above the core count, other "
                       "processes took part of the CPU); clips/s are medians, CPU/clip ratio = baseline / DALI")
    return table
