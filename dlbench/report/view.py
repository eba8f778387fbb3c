"""A result document in a Python session: :class:`Results` and :func:`load`.

``dlbench.benchmark`` returns one, ``dlbench.load`` reads one from a file
``dlbench run`` (or ``Results.save``) wrote. It is a view: the document is
the data, everything else (rows, the tidy frame, tables, plots, reports,
comparisons) is derived from it by the report modules the CLI uses, so a
notebook shows the numbers ``dlbench report`` prints.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from dlbench.errors import InputError, MissingDependency
from dlbench.results import document as results
from dlbench.report.display import Comparison, Plots, ResultsTable

#: measured once per repetition; the frame's other columns are the cell's
PER_REPEAT = ("samples_per_sec", "compile_seconds", "wall_seconds")


def frozen(value: Any) -> Any:
    """A read-only copy: mappings become MappingProxyType, lists tuples."""
    if isinstance(value, dict):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class Row:
    """One (scenario, backend[, sweep point]) row of a run, read-only.
    ``metrics`` and ``parity`` hold everything the document has."""

    scenario: str
    backend: str
    status: str
    error: str | None
    device: str | None
    threads: int | None
    backend_version: str | None
    repeats: int
    sweep_point: Mapping[str, int]
    metrics: Mapping[str, Any]
    parity: Mapping[str, Any] | None

    @classmethod
    def of(cls, row: dict) -> "Row":
        return cls(row["scenario"], row["backend"], row["status"], row.get("error"), row.get("device"),
                   row.get("threads"), row.get("backend_version"), int(row.get("repeats", 1)),
                   frozen(row.get("sweep_point") or {}), frozen(row.get("metrics") or {}),
                   frozen(row["parity"]) if row.get("parity") else None)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def samples_per_sec(self) -> float | None:
        """Steady-state median samples per second."""
        return self.metrics.get("samples_per_sec")

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")

    @property
    def test_r2(self) -> float | None:
        """A regression's test R^2 (it has no accuracy); None for a classifier."""
        return self.metrics.get("test_r2")

    @property
    def final_loss(self) -> float | None:
        return self.metrics.get("final_loss")

    @property
    def compile_seconds(self) -> float | None:
        return self.metrics.get("compile_seconds")

    @property
    def agrees(self) -> bool | None:
        """The parity verdict against the reference: True, False, or None where
        it was not judged (:attr:`verdict` says why) or for the reference itself."""
        return None if self.parity is None else self.parity.get("agrees")

    @property
    def verdict(self) -> str | None:
        """"agrees", "disagrees" or "not judged" (the reason in ``parity["reason"]``); None: no parity."""
        return None if self.parity is None else self.parity.get("verdict")

    @property
    def inference(self) -> tuple:
        """Per inference batch size: latency percentiles, samples/s, compile time,
        calls and the raw latencies (``mode="inference"`` or ``"both"``; () without)."""
        return self.metrics.get("inference", ())

    @property
    def outputs_agree(self) -> bool | None:
        """Whether the inference logits agree with the reference's (None: no inference measured)."""
        outputs = self.metrics.get("inference_outputs")
        return None if outputs is None else outputs.get("agrees")


class Results:
    """The result of one run: its document (``.document``, what ``dlbench run``
    writes) and where it is stored (``.path``; None when it was not stored)."""

    def __init__(self, document: dict, path: Path | str | None = None):
        self._document = document
        self.path = None if path is None else Path(path)
        self.rows = tuple(Row.of(r) for r in document["results"])

    @property
    def document(self) -> dict:
        """A copy of the JSON document (changing it changes nothing here)."""
        return copy.deepcopy(self._document)

    def _runs(self):
        from dlbench.report.table import runs_of

        return runs_of([self._document])

    def __repr__(self) -> str:
        cells = ", ".join(f"{r.scenario}/{r.backend}: {r.status}" for r in self.rows)
        where = f", stored in {self.path}" if self.path else ", not stored"
        return f"<dlbench Results: {len(self.rows)} rows ({cells}){where}>"

    def to_pandas(self):
        """One tidy row per scenario x backend x repetition (x sweep point):
        the CSV report's columns and ``repeat`` (0, 1, ...). ``samples_per_sec``,
        ``compile_seconds`` and ``wall_seconds`` are the repetition's own; the
        other columns (accuracy, spread, ratios) belong to the row's cell."""
        try:
            import pandas
        except ImportError:
            raise MissingDependency("Results.to_pandas needs pandas, which is not installed; run: "
                                    "pip install 'dlbench[pandas]' (or pip install pandas)") from None
        from dlbench.report.table import entries
        from dlbench.report.render import tidy_record

        records = [record for e in entries(self._runs()) for record in repetitions(e, tidy_record(e))]
        columns = list(records[0]) if records else frame_columns()
        return pandas.DataFrame.from_records(records, columns=columns)

    def table(self) -> ResultsTable:
        """The report's tables: rich in a terminal (``rich.print``, ``print``), HTML in a notebook."""
        return ResultsTable(self._runs())

    def __rich__(self):
        return self.table().__rich__()

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()

    def plot(self) -> Plots:
        """The report's matplotlib figures (loss curves and parity, throughput,
        scaling), by title; a notebook shows them all."""
        from dlbench.report import plots

        return Plots({title: fig for found in plots.figures(self._runs()).values() for _, title, fig in found})

    def report(self, path: Path | str, *, plots: bool = True) -> Path:
        """Write the report in the format ``path``'s suffix names (.md with PNG
        plots beside it, .html with them embedded, .csv, .json)."""
        from dlbench.report import render
        from dlbench.results.files import check_replaceable, write_file

        path = Path(path)
        fmt = render.output_format(None, path)
        inputs = [] if self.path is None else [self.path]
        check_replaceable(path, inputs, field="path")  # never a result document or this one (any link to it)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot write the report: {exc.strerror or exc}", source=str(path)) from None
        return write_file(path, render.render(self._runs(), fmt, path, with_plots=plots), inputs=inputs, field="path")

    def compare(self, baseline: "Results", *, threshold: float = 0.05, accuracy_tolerance: float = 0.01,
                alpha: float = 0.05) -> Comparison:
        """These results against ``baseline``, as ``dlbench compare BASE NEW``
        judges them (``.regressed`` is True where the CLI exits with 1)."""
        from dlbench.report import compare as comparing

        if not isinstance(baseline, Results):
            raise InputError(f"compare needs another Results (from dlbench.benchmark or dlbench.load), got "
                             f"{type(baseline).__name__}", field="baseline")
        checks = comparing.default_checks(threshold, accuracy_tolerance, alpha)
        return Comparison(comparing.compare(baseline._document, self._document, checks), baseline._document,
                          self._document, threshold, alpha)

    def save(self, path: Path | str) -> Path:
        """Store the document: into a results folder (an existing directory:
        ``<machine-id>/NNNN_<commit>_<time>.json`` as ``dlbench run --out``
        does), or as a new .json file. An existing file is never replaced."""
        from dlbench.results import store

        path = Path(path)
        document = self.document
        if path.is_dir():
            target = store.store_path(path, document)
        else:
            target = _new_file(path)
        document["path"] = str(target)
        try:
            results.write_document(document, target)
        except OSError as exc:
            raise InputError(f"cannot write the result document: {exc.strerror or exc}", source=str(target)) from None
        if self.path is None:
            self._document["path"], self.path = str(target), target
        return target


def _new_file(path: Path) -> Path:
    """``path``, created empty and exclusively (a .json file that does not exist yet)."""
    if path.suffix.lower() != ".json":
        raise InputError("a result document is a .json file (or give an existing folder to store it in)",
                         field="path", source=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        raise InputError("exists already; dlbench never replaces a result document: choose a new name",
                         field="path", source=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot create the file: {exc.strerror or exc}", field="path", source=str(path)) from None
    return path


def repetitions(entry, record: dict) -> list[dict]:
    """``record`` once per repetition of its row, with that repetition's measured values."""
    m = entry.metrics
    samples = {key: m.get(f"{key}_samples") for key in PER_REPEAT}
    n = int(entry.row.get("repeats", 1))
    if not all(isinstance(v, list) and len(v) == n for v in samples.values()):
        return [{**record, "repeat": 0}]  # a row that stopped early (failed, interrupted) has no per-repeat values
    return [{**record, **{key: samples[key][i] for key in PER_REPEAT}, "repeat": i} for i in range(n)]


def frame_columns() -> list[str]:
    """The frame's columns, from the record of an empty row (for a run without rows)."""
    from dlbench.report.table import Entry, Run
    from dlbench.report.render import tidy_record

    return [*tidy_record(Entry(Run("", {}), {})), "repeat"]


def load(path: Path | str) -> Results:
    """The results stored in ``path`` (a document ``dlbench run`` or ``Results.save`` wrote;
    older schemas are upgraded, as ``dlbench report`` reads them)."""
    return Results(results.read_document(path), path)
