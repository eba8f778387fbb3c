"""The report as one self-contained HTML file (inline style, pictures as data URIs): results first, a section
per scenario, the environment, then what the columns shown mean. Its body is what a notebook displays."""

from __future__ import annotations

import base64
import html

from dlbench.report import inference
from dlbench.report.formats.machines import by_machine, machine_heading
from dlbench.report.table import (Run, by_scenario, entries, environment_table, legend_items, outcomes, problems,
                                  scenario_description, table)

HTML_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
              "margin:1em 0}th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f3f3f3}"
              "td.r{text-align:right;font-variant-numeric:tabular-nums}img{max-width:100%}p.legend{max-width:60em}"
              "dl.legend{max-width:60em}dl.legend dt{font-weight:600}dl.legend dd{margin:0 0 .4em 1.5em}")


def _html_table(header: list[str], rows: list[list[str]], right: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td{' class=r' if r else ''}>{html.escape(c)}</td>"
                                    for c, r in zip(row, right)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(runs: list[Run], pictures: dict[str | None, list] | None = None) -> str:
    """One self-contained file: inline style, pictures as base64 data URIs
    (``pictures`` maps a scenario or None to (title, PNG bytes) pairs). The
    results come first; what their columns mean follows them."""
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>dlbench results</title>"
            f"<style>{HTML_STYLE}</style></head><body><h1>dlbench results</h1>"
            f"{html_body(runs, pictures)}{html_legend(runs)}</body></html>\n")


def html_legend(runs: list[Run]) -> str:
    """What the columns of the report's training tables mean, for the columns they show."""
    items = "".join(f"<dt>{html.escape(name)}</dt><dd>{html.escape(meaning)}</dd>"
                    for name, meaning in legend_items(runs))
    return f"<h2>What the columns mean</h2><dl class=legend>{items}</dl>" if items else ""


def html_images(pictures: list) -> str:
    """(title, PNG bytes) pairs as figures with embedded images."""
    return "".join(f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"></figure>' for title, png in pictures)


def html_body(runs: list[Run], pictures: dict | None = None) -> str:
    """The report's tables (and pictures) as an HTML fragment: the body of
    :func:`render_html`, and what a notebook shows for a run's results
    (``pictures`` as for :func:`~dlbench.report.formats.markdown.render_markdown`)."""
    pictures = pictures or {}
    parts = []
    for machine, group in by_machine(runs):
        if machine is None:
            parts += _html_sections(group, pictures)
        else:
            parts += [f"<h2>{html.escape(machine_heading(machine, group))}</h2>",
                      *_html_sections(group, pictures.get(machine) or {}, "h3")]
    notes = [line for r in runs for line in problems(r.document)]
    if notes:
        parts += ["<h2>Problems</h2><ul>", *(f"<li>{html.escape(n)}</li>" for n in notes), "</ul>"]
    return "".join(parts)


def _html_sections(runs: list[Run], pictures: dict, tag: str = "h2") -> list[str]:
    """A section per scenario, the throughput pictures, then the environment, under ``tag`` headings."""
    parts = []
    for scenario, items in by_scenario(entries(runs)).items():
        about = scenario_description(runs, scenario)
        parts += [f"<{tag}>{html.escape(scenario)}</{tag}>", f"<p>{html.escape(about)}</p>" if about else ""]
        if trained := inference.training_entries(items):
            columns, cells = table(trained)
            parts.append(_html_table([c.name for c in columns], cells, [c.right for c in columns]))
        if found := inference.table(items):
            parts += [f"<p>Inference ({html.escape(scenario)}):</p>", _html_table(*found),
                      f"<p class=legend>{html.escape(inference.INFERENCE_LEGEND)}</p>"]
        if spread := outcomes(items):
            parts += ["<p>Outcomes over seeds:</p>",
                      _html_table(spread[0], spread[1], [False, *[True] * (len(spread[0]) - 1)])]
        parts.append(html_images(pictures.get(scenario, [])))
    if pictures.get(None):
        parts += [f"<{tag}>Throughput</{tag}>", html_images(pictures[None])]
    header, rows = environment_table(runs)
    return parts + [f"<{tag}>Environment</{tag}>", _html_table(header, rows, [False] * len(header))]
