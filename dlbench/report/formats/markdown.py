"""The report as GitHub Markdown: a legend, then per machine (where grouped) the environment, a section per
scenario (training, inference and outcome tables, its pictures) and the throughput pictures; problems last."""

from __future__ import annotations

from dlbench.report import inference
from dlbench.report.escape import markdown_text
from dlbench.report.formats.machines import by_machine, machine_heading
from dlbench.report.table import (Run, by_scenario, entries, environment_table, legend, outcomes, problems, runs_of,
                                  scenario_description, table)


def _md_row(cells) -> str:
    return "| " + " | ".join(markdown_text(c) for c in cells) + " |"


def _md_table(header: list[str], rows: list[list[str]], right: list[bool]) -> list[str]:
    rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
    return [_md_row(header), rule, *(_md_row(r) for r in rows)]


def render_markdown(runs: list[Run], pictures: dict | None = None) -> str:
    """GitHub Markdown; ``pictures`` maps a scenario (None: the whole report)
    to (title, file name) pairs placed under its table; in a report grouped
    by machine (:func:`~dlbench.report.formats.machines.by_machine`), a machine id to such a map."""
    pictures = pictures or {}
    lines = ["# dlbench results", "", legend(runs)]
    for machine, group in by_machine(runs):
        if machine is None:
            lines += _md_sections(group, pictures)
        else:
            heading = f"## {markdown_text(machine_heading(machine, group))}"
            lines += ["", heading, *_md_sections(group, pictures.get(machine) or {}, "###")]
    notes = [f"{r.label}: {line}" if len(runs) > 1 else line for r in runs for line in problems(r.document)]
    if notes:
        lines += ["", "## Problems", "", *(f"- {markdown_text(n)}" for n in notes)]
    return "\n".join(lines) + "\n"


def _md_sections(runs: list[Run], pictures: dict, level: str = "##") -> list[str]:
    """The environment, a section per scenario and the throughput pictures, under ``level`` headings."""
    header, rows = environment_table(runs)
    lines = ["", f"{level} Environment", "", *_md_table(header, rows, [False] * len(header))]
    for scenario, items in by_scenario(entries(runs)).items():
        about = scenario_description(runs, scenario)
        lines += ["", f"{level} {markdown_text(scenario)}", *(["", markdown_text(about)] if about else [])]
        if trained := inference.training_entries(items):
            columns, cells = table(trained)
            lines += ["", *_md_table([c.name for c in columns], cells, [c.right for c in columns])]
        if found := inference.table(items):
            lines += ["", f"Inference ({markdown_text(scenario)}):", "", *_md_table(*found)]
        if spread := outcomes(items):
            lines += ["", f"Outcomes over seeds ({markdown_text(scenario)}):", "",
                      *_md_table(spread[0], spread[1], [False, *[True] * (len(spread[0]) - 1)])]
        lines += [line for title, name in pictures.get(scenario, [])
                  for line in ("", f"![{markdown_text(title)}]({name})")]
    if any(inference.lines(items) for items in by_scenario(entries(runs)).values()):
        lines += ["", inference.INFERENCE_LEGEND]
    if pictures.get(None):
        lines += ["", f"{level} Throughput"]
        lines += [line for title, name in pictures[None] for line in ("", f"![{markdown_text(title)}]({name})")]
    return lines


def markdown_table(document: dict) -> str:
    """The Markdown report of one document, without pictures (``dlbench run --format markdown``)."""
    return render_markdown(runs_of([document]))
