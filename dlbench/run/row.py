"""A result row, from start to finish, in one place.

A row starts as the :func:`base_row` of its request (what was asked: the
scenario, backend, device, threads, precision, the data-parallel settings),
status "failed" until something better is known. A worker fills it from a
measured run (:func:`training_metrics`), or ends it early with a reason
(:func:`failed_row`); the runner ends the rows of jobs that never ran
(:func:`job_row`, :func:`interrupted_row`), caps their error texts
(:func:`capped_row`), folds a cell's repetitions into one row
(:func:`combine_repeats`, :func:`finished_row`), and sets every row's parity
against the reference's (:func:`annotate`). Every module that makes a row
calls these, so a row has one shape whoever wrote it.
"""

from __future__ import annotations

import functools
import math
import platform

from dlbench.errors import capped
from dlbench.measure.inference import pool_repeats
from dlbench.measure.peak import row_ceiling
from dlbench.measure.timing import UNSTABLE_CV, loss_history, summarize
from dlbench.network.flops import training_step_flops
from dlbench.parity import verdict
from dlbench.plugin import distributed
from dlbench.results.store import machine_id


def base_row(request) -> dict:
    """The row of ``request`` (a :class:`dlbench.run.settings.RunRequest`)
    before anything ran: what was asked, status "failed", no metrics."""
    row = {"scenario": request.name or request.scenario, "backend": request.backend, "status": "failed",
           "error": None, "device": request.device, "threads": request.threads, "precision": request.precision,
           "metrics": {}}
    data_parallel = request.data_parallel
    if data_parallel.active:
        row["distributed"] = distributed.distributed_row(None, data_parallel.replicas, request.threads,
                                                         data_parallel.scaling, data_parallel.sync_batchnorm)
    return row


def failed_row(request, error: str, status: str = "failed", **fields) -> dict:
    """The row of a request that ended before (or instead of) a measurement."""
    return {**base_row(request), **fields, "status": status, "error": error}


def job_row(job, status: str, error: str) -> dict:
    """The row of a job (a :class:`dlbench.run.settings.Job`) that left none of its own."""
    row = failed_row(job.request, error, status)
    return {**row, "sweep_point": job.sweep_point} if job.sweep_point else row


def interrupted_row(job, stop: KeyboardInterrupt) -> dict:
    """The row of a job that Ctrl-C or SIGTERM stopped, or kept from starting."""
    from dlbench.run.signals import Terminated

    why = "terminated (SIGTERM)" if isinstance(stop, Terminated) else "interrupted by the user"
    return job_row(job, "interrupted", why)


def capped_row(row: dict) -> dict:
    """``row`` with every error text it carries capped to :data:`dlbench.errors.ERROR_CHARS` characters."""
    row = {**row, **{key: capped(row[key]) for key in ("error", "traceback") if isinstance(row.get(key), str)}}
    metrics = row.get("metrics")
    if isinstance(metrics, dict):
        row["metrics"] = {key: capped(value) if key.endswith("_error") and isinstance(value, str) else value
                          for key, value in metrics.items()}
    return row


def finite_or_none(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def training_metrics(m, session, batch_size: int, test_loss: float | None, test_score: float | None,
                     eval_seconds: float, peak_rss_mib: float) -> dict:
    """A training row's metrics from its measurement ``m``
    (:class:`dlbench.measure.timing.TrainingMeasurement`) and ``session``, at the scenario's (global) ``batch_size``.
    The median window is the throughput: robust to a stall (another process,
    a GC pause); the overall rate (all steady samples / all steady time) is kept beside it.
    ``test_score`` is the second value of ``evaluate``: the accuracy, or R^2 for float
    targets (a regression), which has no accuracy."""
    spec, plan = session.spec, session.plan
    history, every = loss_history(m.losses)
    flops = training_step_flops(spec, batch_size)
    window_stats = summarize(m.window_samples_per_sec)
    sps = window_stats.get("median", m.samples_per_sec)
    device_bytes = session.trainer.peak_device_bytes()
    last_epoch = m.losses[-min(plan.steps_per_epoch, len(m.losses)):] if m.losses else []
    regression = session.data.regression
    return {
        "samples_per_sec": sps,
        "samples_per_sec_overall": m.samples_per_sec,
        "samples_per_sec_stats": window_stats,
        "window_samples_per_sec": m.window_samples_per_sec,
        "test_accuracy": None if regression else test_score,
        **({"test_r2": finite_or_none(test_score)} if regression else {}),
        "test_loss": finite_or_none(test_loss),
        "final_loss": finite_or_none(sum(last_epoch) / len(last_epoch)) if last_epoch else None,
        "compile_seconds": m.compile_seconds,
        "train_seconds": m.compile_seconds + m.steady_seconds,
        "build_seconds": session.build_seconds,
        "placement_seconds": session.placement_seconds,
        "eval_seconds": eval_seconds,
        "time_to_accuracy": m.time_to_accuracy,
        "steps": m.steps,
        "test_samples": len(session.data.x_test),
        "batch_size": batch_size,
        "flops_per_step": flops,
        "gflops_per_sec": sps * flops / batch_size / 1e9 if sps else None,
        "peak_rss_mib": peak_rss_mib,
        "peak_device_mib": None if device_bytes is None else device_bytes / 2**20,
        "loss_history": [finite_or_none(x) for x in history],
        "loss_history_every": every,
    }


def combine_repeats(rows: list[dict]) -> dict:
    """One row from the repetitions of a (scenario, backend) run.

    Throughput and compile time become the median over repetitions, with the
    raw per-repetition values kept; the spread is taken across repetitions
    (fresh processes) when there are several, else across the windows of the
    single run. A spread above 10% of the mean marks the row unstable.
    Accuracy and the loss history come from the first repetition. Inference
    latencies are pooled over the repetitions' calls; the outputs verdict is
    the first disagreeing repetition's, else the first's.
    """
    first = rows[0]
    failed = next((r for r in rows if r["status"] != "ok"), None)
    if failed is not None:
        return {**failed, "repeats": len(rows)}
    metrics = dict(first["metrics"])
    samples = [r["metrics"].get("samples_per_sec") for r in rows]
    compile_times = [r["metrics"].get("compile_seconds") for r in rows]
    walls = [r["metrics"].get("wall_seconds") for r in rows]
    stats = summarize(samples) if len(rows) > 1 else summarize(first["metrics"].get("window_samples_per_sec", []))
    metrics.update({
        "samples_per_sec_samples": samples,
        "samples_per_sec_stats": stats,
        "samples_per_sec": summarize(samples).get("median"),
        "compile_seconds_samples": compile_times,
        "compile_seconds": summarize(compile_times).get("median"),
        "wall_seconds_samples": walls,
        "wall_seconds": summarize(walls).get("median"),
        "unstable": stats.get("cv", 0.0) > UNSTABLE_CV,
    })
    inference_lists = [r["metrics"].get("inference") for r in rows]
    if all(inference_lists):
        metrics["inference"] = pool_repeats(inference_lists)
        verdicts = [r["metrics"].get("inference_outputs") or {} for r in rows]
        metrics["inference_outputs"] = next((v for v in verdicts if not v.get("agrees")), verdicts[0])
    metrics.update(_rates_of_the_median(metrics, first))
    return {**first, "metrics": metrics, "repeats": len(rows)}


def _rates_of_the_median(metrics: dict, first: dict) -> dict:
    """The rates derived from samples/s, recomputed from the median's."""
    sps, rates = metrics["samples_per_sec"], {}
    if "samples_per_sec_per_replica" in metrics:  # the median's share, as the total is the median's
        world = (first.get("distributed") or {}).get("world_size") or 1
        rates["samples_per_sec_per_replica"] = sps / world if sps else None
    if metrics.get("tokens_per_sample"):
        rates["tokens_per_sec"] = sps * metrics["tokens_per_sample"] if sps else None
    if sps and metrics.get("flops_per_step"):
        rates["gflops_per_sec"] = sps * metrics["flops_per_step"] / metrics["batch_size"] / 1e9
    return rates


@functools.cache
def this_machine() -> dict:
    """The machine a row ran on: its host name and the id its documents are
    stored under (:func:`dlbench.results.store.machine_id` of the same host
    name, CPU model and core count the environment records), without the
    environment's slower probes, so that every row can carry it."""
    import psutil

    from dlbench.measure.environment import cpu_model

    host = platform.node()
    return {"hostname": host,
            "id": machine_id({"hostname": host, "cpu": cpu_model(), "logical_cores": psutil.cpu_count(logical=True)})}


def finished_row(job, repeats: list[dict], peak_gflops: dict) -> dict:
    """A cell's row: its repetitions combined, with its sweep point, the
    machine it ran on and its share of the machine's matmul ceiling (the
    ceiling of one replica's threads, times the replicas; the reference: one process)."""
    row = combine_repeats(repeats)
    if job.sweep_point:
        row["sweep_point"] = job.sweep_point
    row["machine"] = dict(this_machine())
    gflops = row["metrics"].get("gflops_per_sec")
    replicas = (row.get("distributed") or {}).get("world_size") or 1
    ceiling = row_ceiling(peak_gflops, row)
    if gflops and ceiling:
        row["metrics"]["peak_fraction"] = gflops / (ceiling * replicas)
    return row


def annotate(rows: list[dict]) -> None:
    """Set ``row['parity']`` on every row whose scenario (and sweep point) has
    an ok reference row; then, for networks with dropout trained from
    several seeds, let the rank test over the seeds judge the outcome."""
    references = {verdict.cell_of(r): r for r in rows
                  if verdict.is_reference(r["backend"]) and r.get("status") == "ok"}
    for row in rows:
        ref = references.get(verdict.cell_of(row))
        if ref is not None and row is not ref:
            row["parity"] = verdict.compare(row, ref)
    verdict.judge_seeds(rows)
