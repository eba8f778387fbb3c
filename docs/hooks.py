"""MkDocs hooks: reference pages generated from the code, so they cannot drift.

A page asks for generated text with a marker line:

* ``<!-- generated: cli -->``: every ``dlbench`` command's ``--help``, from click;
* ``<!-- generated: layout PATH -->``: one line per module of the package at
  ``PATH`` (relative to the repository), with the first sentence of its
  docstring, read with ``ast`` (nothing is imported: no framework starts).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- generated: (\w+) ?(.*?) -->$", re.M)


SPHINX_ROLE_HTML = re.compile(r":(?:class|func|mod|meth|attr|data|exc):(<code>)~?")
SPHINX_ROLE = re.compile(r":(?:class|func|mod|meth|attr|data|exc):`~?([^`]+)`")


def on_page_markdown(markdown: str, page, config, files) -> str:
    return MARKER.sub(lambda m: GENERATORS[m.group(1)](m.group(2).strip()), markdown)


def on_page_content(html: str, page, config, files) -> str:
    """The code's docstrings cross-reference in Sphinx's roles (``:class:`Results```):
    the API reference shows the name as code, without the role."""
    return SPHINX_ROLE_HTML.sub(r"\1", html)


def cli_help(_: str) -> str:
    """``dlbench --help`` and each command's ``--help``, as a terminal prints them."""
    import click

    from dlbench.cli import main

    root = click.Context(main, info_name="dlbench", terminal_width=100, max_content_width=100)
    parts = ["## dlbench", "", "```text", main.get_help(root), "```"]
    for name, command in main.commands.items():
        context = click.Context(command, info_name=name, parent=root, terminal_width=100, max_content_width=100)
        parts += ["", f"## dlbench {name}", "", "```text", command.get_help(context), "```"]
    return "\n".join(parts)


def first_sentence(docstring: str | None) -> str:
    if not docstring:
        return ""
    text = SPHINX_ROLE.sub(r"`\1`", " ".join(docstring.split()))
    end = re.search(r"(?<!\be\.g)(?<!\bi\.e)\.(\s|$)", text)
    return text[:end.start() + 1] if end else text


def module_layout(path: str) -> str:
    """A table of the package's modules (subpackages first listed by their
    ``__init__``) and what each one's docstring says it is."""
    package = ROOT / path
    rows = ["| module | what it is |", "|---|---|"]
    for source in sorted(package.rglob("*.py"), key=lambda p: (p.parent != package, str(p.parent), p.name)):
        if "__pycache__" in source.parts or source.name == "__main__.py":
            continue
        relative = source.relative_to(ROOT).as_posix()
        about = first_sentence(ast.get_docstring(ast.parse(source.read_text(encoding="utf-8"))))
        rows.append(f"| `{relative}` | {about.replace('|', '/') or '-'} |")
    return "\n".join(rows)


GENERATORS = {"cli": cli_help, "layout": module_layout}
