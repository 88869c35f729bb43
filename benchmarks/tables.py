"""The report as tables of strings, rendered both to Markdown and to the console."""
from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks.headline import LONG_VIDEO, SHORT_VIDEO, TARGETS, verdicts
from benchmarks.loader import LOADERS


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
    head, settings = report["headline"], report["settings"]
    met = verdicts(head)
    mark = {True: "yes", False: "no", None: "-"}
    encoding = f"{settings.get('shard_codec')} GOP {settings.get('shard_gop')} {settings.get('shard_short_side')}p"
    peer = head["best_peer"] or "none ran"
    table = Table("Headline", ["metric", "value", "target", "met"])
    table.rows = [
        ["DALI vs baseline loader, clips/s (same CPU budget)", _times(head["dali_vs_baseline"]),
         _target("dali_vs_baseline"), mark[met["dali_vs_baseline"]]],
        ["DALI vs baseline loader, CPU time per clip (baseline / DALI)", _times(head["dali_cpu_advantage"]),
         "-", "-"],
        ["DALI loader, sparse vs dense decoding, clips/s", _times(head["sparse_vs_dense"]),
         _target("sparse_vs_dense"), mark[met["sparse_vs_dense"]]],
        [f"DALI loader, sparse vs dense decoding, clips/s on {LONG_VIDEO}-frame videos",
         _times(head["sparse_vs_dense_long"]), _target("sparse_vs_dense_long"), mark[met["sparse_vs_dense_long"]]],
        [f"DALI loader CPU ms/clip, {LONG_VIDEO}- vs {SHORT_VIDEO}-frame videos (sparse)",
         _times(head["long_vs_short_cost"]), _target("long_vs_short_cost"), mark[met["long_vs_short_cost"]]],
        [f"DALI decode vs needed-GOPs limit, CPU ms/clip ({encoding})",
         _ms_ratio(head["decode_vs_limit"], head["dali_decode_cpu_ms"], head["limit_cpu_ms"]),
         _target("decode_vs_limit"), mark[met["decode_vs_limit"]]],
        [f"DALI decode vs best peer ({peer}), CPU ms/clip ({encoding})",
         _ms_ratio(head["dali_vs_best_peer"], head["dali_decode_cpu_ms"], head["best_peer_cpu_ms"]),
         _target("dali_vs_best_peer"), mark[met["dali_vs_best_peer"]]],
        ["overlap efficiency = e2e / min(loader, step)", num(head["overlap_efficiency"]),
         _target("overlap_efficiency", unit=""), mark[met["overlap_efficiency"]]],
        ["MFU, model step (vs measured bf16 matmul)", _pct(head["step_mfu"]), "-", "-"],
        ["MFU, end to end", _pct(head["e2e_mfu"]), "-", "-"],
        ["end-to-end clips/s", num(head["e2e_clips_per_s"]),
         _target("e2e_clips_per_s", unit="") + " (H100, ViT-B/32 8f bf16)"
         if head["e2e_target_applies"] else "n/a here (H100, ViT-B/32 8f bf16)", mark[met["e2e_clips_per_s"]]],
        ["data wait in training", _pct(head["data_wait_pct"], already_pct=True), "-", "-"],
    ]
    if head["overlap_efficiency"] is not None and head["overlap_efficiency"] > 1:
        table.notes.append("overlap above 1: the loader is fully hidden and the step and e2e rates differ by their "
                           "measurement noise (see the spread in the step table)")
    return table


def _target(key: str, unit: str = "x") -> str:
    comparison, value = TARGETS[key]
    return f"{comparison} {num(value)}{unit}"


def _times(value) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _ms_ratio(value, numerator, denominator) -> str:
    """A CPU-time ratio with the two times it divides."""
    return "-" if value is None else f"{value:.2f}x ({num(numerator)} / {num(denominator)} ms)"


def _pct(value, already_pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value if already_pct else 100 * value:.1f}%"


def section_tables(report: dict) -> list[Table]:
    makers = {"loader": loader_table, "step": step_table, "e2e": e2e_table, "codecs": codecs_table,
              "lengths": lengths_table, "build": build_table}
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
                                                   "CPU ms/clip", "cores busy", "warm-up s", "frames decoded/clip"])
    for name in LOADERS:
        result = section[name]
        table.rows.append([name, *rate(result["clips_per_s"]), num(result["cpu_ms_per_clip"]["median"]),
                           num(result["cores_busy"]["median"]), num(result["warmup_s"]["median"]),
                           num(result["frames_decoded_per_clip"])])
    table.notes.append(f"{section['num_samples']} clips, {section['batches_per_epoch']} batches per epoch; "
                       f"decode on {section['decode_device']}; DALI / baseline = {section['dali_vs_baseline']:.2f}x "
                       f"in clips/s, {section['dali_cpu_advantage']:.2f}x in CPU time per clip (whole epoch, "
                       "start-up included; medians of the repeats); sparse / dense = "
                       f"{section['sparse_vs_dense']:.2f}x in clips/s")
    table.notes.append("dali decodes only the GOPs holding the sampled frames; dali-dense and the baseline decode "
                       "every frame up to the last sampled one (the baseline does not count its frames)")
    _note_dense_clips(table, section["dali"]["dense_clips"])
    return table


def _note_dense_clips(table: Table, dense_clips: int) -> None:
    if dense_clips:
        table.notes.append(f"{dense_clips} clip reads (all repeats) were decoded whole in sparse mode: their GOPs "
                           "are not closed")


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
    peers = section["peers"]
    table = Table(f"codecs: {section['videos']} videos, decode of T={section['frames_per_clip']} frames per clip "
                  f"({section['decoder']}, {section['threads']} thread(s)), batch {section['batch_size']}, on cores "
                  f"{section['cores']}",
                  ["codec", "GOP", "short side", "KB/clip", "frames decoded sparse/dense", "DALI clips/s", "spread",
                   "DALI ms", "dense ms", "limit ms", "DALI/limit", "remux ms", *[f"{peer} ms" for peer in peers],
                   "encode videos/s"])
    dense_clips, failed = 0, []
    for row in section["rows"]:
        point = [row["codec"], "intra" if row["gop"] is None else str(row["gop"]), str(row["short_side"]),
                 num(row["bytes_per_clip"] / 1e3)]
        decode = row["decode"]
        if decode is None:
            blank = ["-"] * (len(table.columns) - len(point) - 3)  # between "skipped" and the encode rate
            table.rows.append([*point, "-", "skipped", *blank, num(row["encode_videos_per_s"])])
            continue
        dali, dense, limit = decode["dali"], decode["dali-dense"], decode["limit"]
        dense_clips += dali["dense_clips"]
        table.rows.append([*point, f"{num(dali['frames_decoded_per_clip'])} / {num(dense['frames_decoded_per_clip'])}",
                           num(dali["clips_per_s"]["median"]), f"{dali['clips_per_s']['spread_pct']:.0f}%",
                           num(dali["cpu_ms_per_clip"]["median"]), num(dense["cpu_ms_per_clip"]["median"]),
                           num(limit["cpu_ms_per_clip"]["median"]), _times(decode["dali_vs_limit"]),
                           num(limit["remux_ms_per_clip"]["median"]),
                           *[_peer_cost(decode["peers"][peer]) for peer in peers], num(row["encode_videos_per_s"])])
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
    return "failed" if "error" in result else num(result["cpu_ms_per_clip"]["median"])


def lengths_table(section: dict) -> Table:
    table = Table(f"lengths: DALI train loader on {section['codec']} GOP {section['gop']} short side "
                  f"{section['short_side']}, T={section['frames_per_clip']}, batch {section['batch_size']}, "
                  f"{section['threads']} thread(s), on cores {section['cores']}",
                  ["frames/video", "KB/clip", "frames decoded sparse/dense", "sparse clips/s", "dense clips/s",
                   "sparse/dense", "sparse ms", "dense ms", "sparse ms vs shortest"])
    dense_clips = 0
    for row in section["rows"]:
        sparse, dense = row["sparse"], row["dense"]
        dense_clips += sparse["dense_clips"]
        table.rows.append([str(row["frames"]), num(row["bytes_per_clip"] / 1e3),
                           f"{num(sparse['frames_decoded_per_clip'])} / {num(dense['frames_decoded_per_clip'])}",
                           num(sparse["clips_per_s"]["median"]), num(dense["clips_per_s"]["median"]),
                           _times(row["sparse_vs_dense"]), num(sparse["steady_cpu_ms_per_clip"]["median"]),
                           num(dense["steady_cpu_ms_per_clip"]["median"]), _times(row["sparse_cost_vs_shortest"])])
    table.notes.append(f"{section['clips_per_epoch']} clips per epoch (the videos reread), decode on "
                       f"{section['decode_device']}; ms: CPU ms per clip of the timed batches (steady state, "
                       "augmentation included, pipeline start-up not), medians of the repeats")
    _note_dense_clips(table, dense_clips)
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
                  ["date", "note", "DALI", "baseline", "DALI/baseline", "CPU/clip ratio", "sparse/dense",
                   f"sparse/dense {LONG_VIDEO}f", "decode/limit", "step", "e2e", "overlap", "load"])
    for entry in entries:
        head = entry["headline"]
        table.rows.append([entry["created"][:16], entry["note"] or "-", num(head["dali_clips_per_s"]),
                           num(head["baseline_clips_per_s"]), _times(head["dali_vs_baseline"]),
                           _times(head.get("dali_cpu_advantage")), _times(head.get("sparse_vs_dense")),
                           _times(head.get("sparse_vs_dense_long")), _times(head.get("decode_vs_limit")),
                           num(head["step_clips_per_s"]), num(head["e2e_clips_per_s"]),
                           num(head["overlap_efficiency"]), num(entry.get("max_load_average"), 2)])
    table.notes.append("load: highest 1-minute load average seen after a section (above the core count, other "
                       "processes took part of the CPU); clips/s are medians, CPU/clip ratio = baseline / DALI; "
                       "sparse/dense: DALI loader clips/s with sparse over dense decoding (default set, and "
                       f"{LONG_VIDEO}-frame videos); decode/limit: DALI decode CPU ms/clip over the needed-GOPs limit")
    return table
