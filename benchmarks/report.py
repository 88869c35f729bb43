"""Write a run's report: JSON (everything), Markdown (tables), the history line, and the console view."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table as RichTable

from benchmarks import headline as heads
from benchmarks.tables import Table, data_table, headline_table, history_table, machine_table, section_tables

SCHEMA_VERSION = 2
HISTORY_FILE = "history.jsonl"


def assemble(name: str, note: str, command: list[str], machine: dict, settings: dict, data: dict,
             sections: dict) -> dict:
    head = heads.compute(sections, settings, machine)
    return {"schema": SCHEMA_VERSION, "name": name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "note": note, "command": command, "headline": head, "where_time_goes": heads.where_time_goes(head),
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
    """Append to the history, then write `<name>.json` and `<name>.md`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / HISTORY_FILE, "a") as handle:
        handle.write(json.dumps(history_entry(report)) + "\n")
    paths = {"json": out_dir / f"{report['name']}.json", "markdown": out_dir / f"{report['name']}.md"}
    paths["json"].write_text(json.dumps(report, indent=2) + "\n")
    paths["markdown"].write_text(markdown(report, read_history(out_dir, report["name"])))
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
    tables = [headline_table(report), *section_tables(report), data_table(report["data"]),
              machine_table(report["machine"]), settings_table(report["settings"])]
    if history:
        tables.append(history_table(history))
    for table in tables:
        lines += markdown_table(table)
    return "\n".join(lines)


def settings_table(settings: dict) -> Table:
    return Table("Settings", ["setting", "value"],
                 [[key, json.dumps(value) if isinstance(value, (list, dict)) else str(value)]
                  for key, value in settings.items()])


def markdown_table(table: Table) -> list[str]:
    lines = [f"## {table.title}", "", "| " + " | ".join(table.columns) + " |",
             "|" + "|".join(" --- " for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table.rows]
    lines += [""] + [f"- {note}" for note in table.notes] + ([""] if table.notes else [])
    return lines


def print_console(report: dict, paths: dict[str, Path], console: Console | None = None) -> None:
    console = console or Console()
    for table in [headline_table(report), *section_tables(report)]:
        view = RichTable(title=table.title, title_justify="left")
        for column in table.columns:
            view.add_column(column)
        for row in table.rows:
            view.add_row(*row)
        console.print(view)
        for note in table.notes:
            console.print(f"  [dim]{note}[/dim]")
    console.print(f"[bold]{report['where_time_goes']}[/bold]")
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
