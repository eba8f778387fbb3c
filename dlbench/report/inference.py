"""The inference table of a report: per scenario, one line per (backend,
inference batch size) of every row that measured inference (``--mode
inference`` or ``both``), rendered by every report format beside the
training table. Ratios are taken within one run, sweep point and batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.report.table import Entry, point_key, point_label
from dlbench.parity.verdict import REFERENCE_BACKEND, is_reference

INFERENCE_LEGEND = (
    "Inference: forward passes only, in inference mode (BatchNorm moving statistics, no dropout, no autograd), "
    "from the initial weights (--mode inference) or the trained ones (--mode both). Per batch size: the first "
    "call timed apart (compile s), then the timed calls (calls), each synchronized; latency percentiles in ms "
    "with the distribution-free 95% interval of the p99 ('>' when it reaches past the slowest call); samples/s = "
    "batch size x calls / their total time; with --repeat, the calls of every repetition pooled (tokens/s: times the tokens per sample, for sequence inputs). vs fastest, vs " + REFERENCE_BACKEND + ": ratio of samples/s at the "
    "same batch size in the same run. agrees: the test-set logits' largest norm-wise relative difference to "
    f"{REFERENCE_BACKEND}'s float64 forward pass, within 10x the reference's own float32 rounding.")


@dataclass(frozen=True)
class InferenceLine:
    """One batch size of one row, with the ratios of its run."""

    entry: Entry
    result: dict | None  # the metrics["inference"] entry; None for a row without one (failed)
    vs_fastest: float | None = None
    vs_reference: float | None = None

    @property
    def outputs(self) -> dict:
        return self.entry.metrics.get("inference_outputs") or {}


def measures_inference(e: Entry) -> bool:
    return e.row.get("mode") in ("inference", "both")


def training_entries(items: list[Entry]) -> list[Entry]:
    """The entries that trained (every mode but inference)."""
    return [e for e in items if e.row.get("mode", "train") != "inference"]


def lines(items: list[Entry]) -> list[InferenceLine]:
    """Every inference measurement of these entries, batch size by batch size."""
    found: list[InferenceLine] = []
    for e in filter(measures_inference, items):
        results = e.metrics.get("inference") or []
        found += [InferenceLine(e, r) for r in results] if results else [InferenceLine(e, None)]
    groups: dict[tuple, list[InferenceLine]] = {}
    for line in found:
        size = line.result["batch_size"] if line.result else None
        groups.setdefault((id(line.entry.run), point_key(line.entry.point), size), []).append(line)
    ranked = []
    for group in groups.values():
        speeds = {id(g): (g.result or {}).get("samples_per_sec") for g in group}
        fastest = max((s for s in speeds.values() if s), default=None)
        ref = next((speeds[id(g)] for g in group if is_reference(g.entry.backend)), None)
        ranked += [InferenceLine(g.entry, g.result, _over(speeds[id(g)], fastest), _over(speeds[id(g)], ref))
                   for g in group]
    order = {id(line.entry): i for i, line in enumerate(found)}
    return sorted(ranked, key=lambda g: ((g.result or {}).get("batch_size", 0), order[id(g.entry)]))


def _over(value, base):
    return value / base if value and base else None


def _ms(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if value < 100 else f"{value:,.0f}"


def _p99(result: dict) -> str:
    low, high = result.get("p99_ci95_ms") or [None, None]
    interval = "" if low is None else f" [{_ms(low)}, {_ms(high) if high is not None else '>'}]"
    return _ms(result["latency_ms"]["p99"]) + interval


def agreement(line: InferenceLine) -> str:
    if is_reference(line.entry.backend) and line.entry.row.get("status") == "ok":
        return "reference"
    o = line.outputs
    return "-" if not o else "yes" if o.get("agrees") else "no"


def difference(line: InferenceLine) -> str:
    """The largest relative difference of the logits and the tolerance it was judged by."""
    o = line.outputs
    diff, tol = o.get("max_rel_diff"), o.get("tolerance")
    if diff is None or tol is None:
        return o.get("reason", "-") if o else "-"
    return f"{diff:.1e} (tol {tol:.1e})"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}×" if value >= 0.01 else f"{value:.2g}×"


def _count(value) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def table(items: list[Entry]) -> tuple[list[str], list[list[str]], list[bool]] | None:
    """(header, cells, right-aligned) of the scenario's inference lines; None without any."""
    found = lines(items)
    if not found:
        return None
    several_runs = len({id(g.entry.run) for g in found}) > 1
    swept = any(g.entry.point for g in found)
    tokens = any((g.result or {}).get("tokens_per_sec") for g in found)
    header = ["backend", *(["run"] if several_runs else []), *(["sweep"] if swept else []), "batch", "status",
              "agrees", "rel diff", "p50 ms", "p90 ms", "p99 ms [95% CI]", "mean ms", "samples/s",
              *(["tokens/s"] if tokens else []), "vs fastest", f"vs {REFERENCE_BACKEND}", "compile s", "calls"]
    right = [False, *([False] if several_runs else []), *([False] if swept else []), True, False, False,
             *[True] * (10 + tokens)]
    rows = []
    for g in found:
        r = g.result or {}
        latency = r.get("latency_ms") or {}
        status = g.entry.row.get("status", "-") if r or not g.entry.metrics.get("inference_error") else "failed"
        rows.append([g.entry.backend, *([g.entry.run.label] if several_runs else []),
                     *([point_label(g.entry.point)] if swept else []), str(r.get("batch_size", "-")), status,
                     agreement(g), difference(g), _ms(latency.get("p50")), _ms(latency.get("p90")), _p99(r) if r else "-",
                     _ms(latency.get("mean")), _count(r.get("samples_per_sec")),
                     *([_count(r.get("tokens_per_sec"))] if tokens else []), _ratio(g.vs_fastest),
                     _ratio(g.vs_reference), "-" if r.get("compile_seconds") is None else f"{r['compile_seconds']:.3f}",
                     str(r.get("calls", "-"))])
    return header, rows, right


def records(items: list[Entry]) -> list[dict]:
    """Flat records of the inference lines (CSV, JSON): raw values, no formatting."""
    out = []
    for g in lines(items):
        r, o, e = g.result or {}, g.outputs, g.entry
        latency = r.get("latency_ms") or {}
        low, high = r.get("p99_ci95_ms") or [None, None]
        out.append({"run": e.run.label, "scenario": e.scenario, "backend": e.backend, "mode": e.row.get("mode"),
                    "sweep_batch_size": e.point.get("batch_size"), "sweep_threads": e.point.get("threads"),
                    "status": e.row.get("status"), "inference_batch_size": r.get("batch_size"),
                    **{f"latency_{k}_ms": latency.get(k) for k in ("p50", "p90", "p99", "mean")},
                    "latency_p99_ci95_low_ms": low, "latency_p99_ci95_high_ms": high,
                    "inference_samples_per_sec": r.get("samples_per_sec"),
                    "inference_tokens_per_sec": r.get("tokens_per_sec"), "inference_vs_fastest": g.vs_fastest,
                    f"inference_vs_{REFERENCE_BACKEND}": g.vs_reference,
                    "inference_compile_seconds": r.get("compile_seconds"), "inference_calls": r.get("calls"),
                    "outputs_agree": o.get("agrees"), "outputs_max_rel_diff": o.get("max_rel_diff"),
                    "outputs_tolerance": o.get("tolerance"), "inference_error": e.metrics.get("inference_error")})
    return out
