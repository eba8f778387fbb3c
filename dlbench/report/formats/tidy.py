"""The report as tidy records, one flat record per scenario x backend x run (x sweep point), raw values, no
formatting, and the two file formats made of them: CSV and JSON (what a spreadsheet or pandas reads)."""

from __future__ import annotations

import json

from dlbench.parity.verdict import REFERENCE_BACKEND
from dlbench.report import inference
from dlbench.report.escape import csv_text
from dlbench.report.formats.machines import by_machine, with_machine
from dlbench.report.table import Entry, Run, entries, unstable


def tidy_records(runs: list[Run]) -> list[dict]:
    """One flat record per scenario x backend x run (x sweep point): raw values, no formatting."""
    return [record for machine, group in by_machine(runs)
            for record in with_machine([tidy_record(e) for e in entries(group)], machine)]


def tidy_record(e: Entry) -> dict:
    """The flat record of one entry (a CSV line, a pandas row)."""
    m, p = e.metrics, e.row.get("parity") or {}
    stats = m.get("samples_per_sec_stats") or {}
    return {
        "run": e.run.label, "created": e.run.document.get("created"),
        "host": e.run.environment.get("hostname"), "commit": e.run.environment.get("git_commit"),
        "scenario": e.scenario, "backend": e.backend, "sweep_batch_size": e.point.get("batch_size"),
        "sweep_threads": e.point.get("threads"), "precision": e.row.get("precision") or e.point.get("precision"),
        "speedup": e.speedup, "accuracy_vs_fp32": e.accuracy_vs_fp32, "mode": e.row.get("mode", "train"),
        **distributed_fields(e),
        "status": e.row.get("status"),
        "error": e.row.get("error"),
        "device": e.row.get("device"), "threads": e.row.get("threads"),
        "backend_version": e.row.get("backend_version"), "agrees": p.get("agrees"),
        "verdict": p.get("verdict"), "verdict_reason": p.get("reason"),
        "max_rel_loss_diff": p.get("max_rel_loss_diff"), "test_accuracy": m.get("test_accuracy"),
        "test_r2": m.get("test_r2"), "test_loss": m.get("test_loss"),
        "final_loss": m.get("final_loss"), "samples_per_sec": m.get("samples_per_sec"),
        "samples_per_sec_q1": stats.get("q1"), "samples_per_sec_q3": stats.get("q3"),
        "samples_per_sec_iqr": stats.get("iqr"), "samples_per_sec_n": stats.get("n"),
        "unstable": unstable(m), "vs_fastest": e.vs_fastest, f"vs_{REFERENCE_BACKEND}": e.vs_reference,
        **{k: m.get(k) for k in ("compile_seconds", "time_to_accuracy", "gflops_per_sec", "peak_fraction",
                                 "peak_rss_mib", "peak_device_mib", "steps", "batch_size", "wall_seconds",
                                 "skipped_steps", "loss_scale")},
    }


def distributed_fields(e: Entry) -> dict:
    """A record's data-parallel facts (None for a run that is not data-parallel)."""
    d = e.row.get("distributed") or {}
    return {"replicas": d.get("world_size", e.point.get("data_parallel")), "engine": d.get("engine"),
            "collective": d.get("collective"), "threads_per_replica": d.get("threads_per_replica"),
            "scaling": d.get("scaling"), "batchnorm": d.get("batchnorm"),
            "samples_per_sec_per_replica": e.metrics.get("samples_per_sec_per_replica"),
            "scaling_efficiency": e.scaling_efficiency, "thread_efficiency": e.thread_efficiency,
            "communication_seconds_per_step": d.get("communication_seconds_per_step")}


def inference_records(runs: list[Run]) -> list[dict]:
    """One flat record per inference batch size of every row that measured inference."""
    return [record for machine, group in by_machine(runs)
            for record in with_machine(inference.records(entries(group)), machine)]


def render_csv(runs: list[Run]) -> str:
    """The tidy records, then (with their own columns added) the inference records."""
    records = tidy_records(runs) + inference_records(runs)
    fields = list(dict.fromkeys(k for r in records for k in r)) or ["run"]
    return csv_text(records, fields)


def render_json(runs: list[Run]) -> str:
    """The runs (label, path, environment, settings), the tidy and inference records, and the
    environment of each machine in a report grouped by machine."""
    summary = {"runs": [{"label": r.label, "path": r.document.get("path"), "created": r.document.get("created"),
                         "environment": r.environment, "settings": r.settings} for r in runs],
               "rows": tidy_records(runs), "inference": inference_records(runs)}
    groups = by_machine(runs)
    if groups[0][0] is not None:
        summary["machines"] = {machine: group[0].environment for machine, group in groups}
    return json.dumps(summary, indent=1, default=str) + "\n"
