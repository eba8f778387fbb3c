"""One escaping function per output format, used wherever that format is
written: a value read from a result document (a scenario name, a backend
option, an error text) is data, never markup or a formula, whatever it holds.

* CSV (:func:`csv_cell`, :func:`csv_text`): a text cell that a spreadsheet
  would run as a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or
  a carriage return; OWASP's list) is prefixed with ``'``, which spreadsheets
  show as text; numbers, and text that is a plain number such as ``-1.5``,
  stay as they are. Quoting is the ``csv`` module's.
* Markdown (:func:`markdown_text`): newlines become spaces (a name cannot
  start a heading, a list or a table row of its own) and the characters that
  make links, images, raw HTML, emphasis, code or a table's columns
  (``\\ ` * _ [ ] < > |``) are backslash-escaped, so a cell or heading shows
  the text as written.
* HTML: the standard library's ``html.escape`` (quotes included), which
  :mod:`dlbench.report.formats.html_page` applies to every text and attribute it writes.
"""

from __future__ import annotations

import csv
import io
import re

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")
NEWLINES = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_cell(value):
    """``value`` as a CSV cell no spreadsheet runs: text that starts like a formula gets a ``'`` before it."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _is_number(value):
        return "'" + value
    return value


def csv_text(records: list[dict], fields: list[str]) -> str:
    """``records`` as CSV text under ``fields`` (None an empty cell), every cell through :func:`csv_cell`."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[csv_cell(f) for f in fields], restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({csv_cell(k): "" if v is None else csv_cell(v) for k, v in r.items()} for r in records)
    return out.getvalue()


def markdown_text(value) -> str:
    """``value`` as Markdown inline text: one line, its markup characters escaped."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", NEWLINES.sub(" ", str(value)))
