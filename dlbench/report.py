"""Turning a result document into tables: terminal (rich) and Markdown."""

from __future__ import annotations

COLUMNS = ("scenario", "backend", "status", "device", "test acc", "final loss", "samples/s",
           "first step s", "wall s", "agrees")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def agreement(row: dict) -> str:
    p = row.get("parity")
    if row.get("backend") == "numpy" and row.get("status") == "ok":
        return "reference"
    if not p:
        return "-"
    if p["agrees"]:
        return "yes"
    if p.get("first_step_over") is not None:
        return f"no (step {p['first_step_over']})"
    return f"no (acc {_num(p.get('accuracy_diff'), '+.3f')})"


def row_cells(row: dict) -> list[str]:
    m = row.get("metrics", {})
    return [
        row["scenario"], row["backend"], row["status"], row.get("device") or "-",
        _num(m.get("test_accuracy"), ".4f"), _num(m.get("final_loss"), ".4g"),
        _num(m.get("samples_per_sec"), ",.0f"), _num(m.get("compile_seconds"), ".3f"),
        _num(m.get("wall_seconds"), ".1f"), agreement(row),
    ]


def problems(document: dict) -> list[str]:
    """One line per row that did not finish ok: what went wrong."""
    return [f"{r['scenario']} / {r['backend']}: {r['status']}: {r.get('error')}"
            for r in document["results"] if r.get("status") != "ok"]


def rich_table(document: dict):
    from rich.table import Table

    table = Table(title="dlbench results", title_justify="left")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name in ("scenario", "backend", "status", "device", "agrees")
                         else "right")
    styles = {"ok": "green", "unavailable": "yellow"}
    for row in document["results"]:
        cells = row_cells(row)
        cells[2] = f"[{styles.get(row['status'], 'red')}]{cells[2]}[/]"
        table.add_row(*cells)
    return table


def markdown_table(document: dict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in document["results"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row_cells(row)) + " |")
    notes = problems(document)
    if notes:
        lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"
