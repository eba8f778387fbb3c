"""A run's progress in a Jupyter notebook.

rich draws its live progress bar in a notebook through an ipywidgets
``Output``; without ipywidgets it warns ('install "ipywidgets" for Jupyter
support') and shows no bar, only the log line of each finished row. A
notebook gets its own display instead: one HTML block (a ``<progress>`` bar
and the finished rows) updated in place through an IPython display handle,
which every notebook front end renders without widgets.
"""

from __future__ import annotations

import html
import time
from typing import Callable

UPDATE_SECONDS = 0.25  # the fastest a notebook's display is redrawn (the runner polls its workers as often)


class NotebookProgress:
    """The finished rows, and a bar for the job in progress (steps done / total)."""

    def __init__(self, total: int, description: str):
        from IPython.display import display

        self.total, self.description = total, description
        self.steps, self.steps_total, self.rows = 0, None, []
        self.started = self.job_started = time.monotonic()
        self.shown_at = 0.0
        self.handle = display(self.bundle(), raw=True, display_id=True)

    def on_progress(self, description: str, steps: int, steps_total: int) -> None:
        self.description, self.steps, self.steps_total = description, steps, steps_total
        if time.monotonic() - self.shown_at >= UPDATE_SECONDS:
            self.show()

    def on_row(self, row: dict, next_description: str | None) -> None:
        self.rows.append(f"[{len(self.rows) + 1}/{self.total}] {row['scenario']} / {row['backend']}: {row['status']}")
        self.description, self.steps, self.steps_total = next_description, 0, None
        self.job_started = time.monotonic()
        self.show()

    def show(self) -> None:
        self.shown_at = time.monotonic()
        self.handle.update(self.bundle(), raw=True)

    def status(self) -> str:
        """The line under the bar: what runs now and how far it is, or that the run is done."""
        if self.description is None:
            return f"done: {len(self.rows)} of {self.total} runs in {time.monotonic() - self.started:.0f} s"
        steps = f"{self.steps}/{self.steps_total} steps" if self.steps_total else "starting"
        return f"{self.description}: {steps}, {time.monotonic() - self.job_started:.0f} s"

    def bundle(self) -> dict:
        """The display's text/plain and text/html forms."""
        done = len(self.rows) + (self.steps / self.steps_total if self.steps_total else 0)
        text = "\n".join([*self.rows, f"{_text_bar(done, self.total)} {self.status()}"])
        rows = "".join(f"<div>{html.escape(line)}</div>" for line in self.rows)
        bar = (f"<div><progress value='{done:.3f}' max='{self.total}' style='width:24em'></progress> "
               f"{html.escape(self.status())}</div>")
        return {"text/plain": text, "text/html": f"<div class=dlbench-progress>{rows}{bar}</div>"}


def _text_bar(done: float, total: int, width: int = 30) -> str:
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def run_in_notebook(suite, describe: Callable, upcoming: Callable) -> None:
    """Run ``suite`` showing its progress in the notebook (``describe(job)`` and
    ``upcoming(suite, done)`` say what a job is, as the terminal's bar does)."""
    progress = NotebookProgress(len(suite.jobs), upcoming(suite, 0))

    def on_row(row: dict) -> None:
        done = len(progress.rows) + 1
        progress.on_row(row, upcoming(suite, done) if done < len(suite.jobs) else None)

    suite.on_row = on_row
    suite.on_progress = lambda job, steps, total: progress.on_progress(describe(job), steps, total)
    suite.run()
