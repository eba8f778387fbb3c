"""How results show themselves: in a terminal (rich), as text (``print``) and
in a notebook (``_repr_html_``, ``_repr_markdown_``). The content is the
report's: these classes only choose the renderer of the place they are shown in.
"""

from __future__ import annotations

import io


TEXT_WIDTH = 200  # wide enough for every column of a report's table


def rich_text(renderable, width: int = TEXT_WIDTH) -> str:
    """What rich would print, as plain text of ``width`` columns."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None).print(renderable)
    return out.getvalue()


class ResultsTable:
    """The report's tables of some runs (:meth:`dlbench.Results.table`):
    fitted to the terminal when rich prints them, every column as text."""

    def __init__(self, runs, width: int | None = None):
        self.runs, self.width = runs, width

    def __rich__(self):
        from dlbench.report import render

        return render.rich_report(self.runs, self.width)

    def __str__(self) -> str:
        return rich_text(ResultsTable(self.runs, TEXT_WIDTH), TEXT_WIDTH)

    def _repr_html_(self) -> str:
        from dlbench.report import render

        return f"<div class=dlbench-results>{render.html_body(self.runs)}{render.html_legend(self.runs)}</div>"


class Plots(dict):
    """Figures by title (matplotlib ``Figure`` objects: ``fig.savefig(...)``);
    a notebook shows every one of them."""

    def _repr_html_(self) -> str:
        from dlbench.report import render
        from dlbench.report.plots import png_bytes

        return render.html_images([(title, png_bytes(fig)) for title, fig in self.items()])


class Comparison:
    """The changes from a baseline to new results (:meth:`dlbench.Results.compare`)."""

    def __init__(self, changes: list, base: dict, new: dict, threshold: float, alpha: float):
        self.changes, self.base, self.new, self.threshold, self.alpha = changes, base, new, threshold, alpha

    @property
    def regressed(self) -> bool:
        """True when anything got worse: slower, less accurate, no longer ok or agreeing."""
        from dlbench.report import compare as comparing

        return comparing.exit_code(self.changes) == 1

    def as_json(self) -> list[dict]:
        from dlbench.report import compare as comparing

        return comparing.as_json(self.changes, self.alpha)

    def __rich__(self):
        from rich.console import Group
        from rich.text import Text

        from dlbench.report import compare as comparing

        notes = [Text(f"different machines, speeds are not comparable: {line}", style="yellow")
                 for line in comparing.different_machines(self.base, self.new)]
        notes += [Text(f"  {verdict}: {text}") for verdict, text in comparing.reasons(self.changes)]
        return Group(comparing.rich_table(self.changes, self.alpha), *notes,
                     Text(comparing.summary(self.changes, self.threshold), style="bold"))

    def __str__(self) -> str:
        return rich_text(self)

    def _repr_markdown_(self) -> str:
        from dlbench.report import compare as comparing
        from dlbench.report.table import label_runs

        labels = label_runs([self.base, self.new])
        return comparing.markdown(self.changes, (labels[0], labels[1]), self.threshold, self.alpha)
