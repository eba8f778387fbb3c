"""Result documents as tables: the model behind every report format (rendered by dlbench.report.formats).

A report shows one or several runs (result documents). Each scenario gets a
table with one row per backend (and per run, when runs from different
machines or versions are shown side by side, each labelled by what differs
in its environment). Speed ratios are only computed inside one run: absolute
throughput means something only next to its environment, which heads the
report. A metric a row lacks (an older run, a failed backend) shows as "-".
"""

from __future__ import annotations

import dataclasses
import statistics
import json
import math
from dataclasses import dataclass
from typing import Callable

from dlbench.parity.verdict import REFERENCE_BACKEND, is_reference
from dlbench.parity.stats import mann_whitney_u
from dlbench.network.precision import PRECISIONS, is_mixed

UNSTABLE_CV = 0.10
#: what each column of a training table means; a report explains only the columns it shows
COLUMN_MEANINGS: dict[str, str] = {
    "agrees": (f"the parity certificate: re-synchronised with the {REFERENCE_BACKEND} reference's full training state "
               "at n checkpoints spread over the run (the first at step 0), the backend's next 3 steps were within "
               "10x the reference's own float32 rounding (float64 and four other-summation-order twins) at k of "
               "them (all but a quarter, and all but one from 2 checkpoints on), and test accuracy, where "
               "comparable (no dropout, or a rank test over --seeds), is within 3 standard errors; free-run drift "
               "is reported, not judged. not judged: no verdict, with the reason (too short: fewer than 3 steps, "
               "or a lone checkpoint under 100x its tolerance; free runs not comparable: dropout without a "
               "certificate), never a disagreement; a run exits 0 on it unless --require-verdict"),
    "test acc": "accuracy on the test split after training",
    "test R^2": ("coefficient of determination of a regression on the test split after training, 1 - residual "
                 "sum of squares / total sum of squares per output unit, averaged over the units (scikit-learn's "
                 "r2_score); 1 is perfect, 0 no better than predicting the mean"),
    "test loss": "the loss on the test split after training",
    "final loss": "mean training loss of the last epoch",
    "perplexity": "exp of the mean test cross-entropy per token",
    "samples/s": (f"steady-state median ± IQR (over repeats, or over windows of steps for a single run); * marks "
                  f"an unstable result (std > {UNSTABLE_CV:.0%} of the mean)"),
    "tokens/s": "samples/s times the sequence length",
    "per replica/s": "samples/s divided by the replicas",
    "vs fastest": "ratio of median samples/s to the fastest backend's, within the same run",
    f"vs {REFERENCE_BACKEND}": f"ratio of median samples/s to {REFERENCE_BACKEND}'s, within the same run",
    "speedup": ("samples/s over that of the same backend's base point of the sweep (the fewest replicas or "
                "threads, the smallest batch, fp32)"),
    "acc vs fp32": "test accuracy minus that of the same backend's fp32 point",
    "skipped steps": "fp16 steps whose scaled gradients overflowed, skipped by loss scaling",
    "thread eff.": "speedup per added thread",
    "replicas": (f"data-parallel replicas on the backend's own engine (the {REFERENCE_BACKEND} reference is one "
                 "process at the global batch); samples/s is the total over the replicas. On a CPU each replica "
                 "has its own threads: N replicas on N cores with one thread each is the honest test, and the "
                 "replicas still share the memory bandwidth"),
    "scaling eff.": ("samples/s at N replicas over N times samples/s at the sweep's fewest replicas (strong "
                     "scaling: the global batch fixed, t1 / (N tN); weak: the batch per replica fixed, the "
                     "per-replica throughput ratio)"),
    "comm ms/step": "the framework's own measure of its gradient all-reduce per step, where it gives one",
    "worst checkpoint": ("the certificate's worst checkpoint: its step, the tensor furthest from the reference, "
                         "that difference and its tolerance, and the difference as a multiple of the tolerance"),
    "compile s": "time of the first step (tracing, JIT)",
    "time to acc s": "training seconds until the scenario's target test accuracy was first reached",
    "GFLOP/s": "achieved training FLOP/s (FLOPs per step from the spec) in billions",
    "% peak": "achieved GFLOP/s as a share of the machine's measured float32 matmul peak",
    "peak MiB": "the worker process's peak resident memory",
    "device MiB": "the worker's peak device (GPU) memory",
    "wall s": "wall seconds of the worker process",
}
#: what a table with a bf16/fp16 row adds to the meaning of a column
MIXED_PRECISION_MEANINGS: dict[str, str] = {
    "agrees": ("; at bf16/fp16 (mixed precision) the reference rounds every matmul operand like the policy and "
               "the tolerance is that precision's rounding (two more twins store matmul results or layer "
               "outputs, and what flows between layers, in bf16/fp16)"),
    "% peak": " (the bf16/fp16 matmul peak for a row at that precision)",
}
#: what a table with data-parallel rows adds to the meaning of a column
DATA_PARALLEL_MEANINGS: dict[str, str] = {
    "% peak": " (on a data-parallel row, of every replica's ceiling together)",
}


@dataclass(frozen=True)
class Run:
    """One result document and the label it has in a report."""

    label: str
    document: dict

    @property
    def environment(self) -> dict:
        return self.document.get("environment") or {}

    @property
    def settings(self) -> dict:
        return self.document.get("settings") or {}


def load_runs(paths) -> list[Run]:
    from dlbench.results.document import read_document

    return runs_of([read_document(p) for p in paths])


def runs_of(documents: list[dict]) -> list[Run]:
    return [Run(label, doc) for label, doc in zip(label_runs(documents), documents)]


def _facts(document: dict) -> dict[str, str | None]:
    """What may tell runs apart, most telling first."""
    env, settings = document.get("environment") or {}, document.get("settings") or {}
    threads = settings.get("threads")
    facts = {"host": env.get("hostname"), "cpu": env.get("cpu"), "gpu": ", ".join(env.get("gpus") or []) or None,
             "device": settings.get("device"), "threads": f"{threads} threads" if threads else None,
             "commit": env.get("git_commit"), "dlbench": f"dlbench {env['dlbench']}" if env.get("dlbench") else None}
    for dist, version in sorted((env.get("versions") or {}).items()):
        facts[dist] = f"{dist} {version}"
    return facts


def label_runs(documents: list[dict], max_parts: int = 3) -> list[str]:
    """A short label per run: its host (one run), else the facts that differ."""
    facts = [_facts(d) for d in documents]
    keys = [k for k in dict.fromkeys(k for f in facts for k in f) if len({f.get(k) for f in facts}) > 1]
    keys = keys or ["host"]
    labels = [" ".join(str(f[k]) for k in keys[:max_parts] if f.get(k)) or "run" for f in facts]
    if len(set(labels)) < len(labels):
        labels = [f"{label} {d.get('created', '')}".strip() for label, d in zip(labels, documents)]
    if len(set(labels)) < len(labels):
        labels = [f"{label} #{i + 1}" for i, label in enumerate(labels)]
    return labels


# ------------------------------------------------------------------ entries
@dataclass(frozen=True)
class Entry:
    """One result row of one run, with the speed ratios of its run."""

    run: Run
    row: dict
    vs_fastest: float | None = None
    vs_reference: float | None = None
    #: sweeps: samples/s over that of the same backend's smallest point of the
    #: swept axis (other coordinates equal; for precision, its fp32 point), and
    #: that speedup per added thread
    speedup: float | None = None
    thread_efficiency: float | None = None
    #: data-parallel sweeps: that speedup per added replica
    scaling_efficiency: float | None = None
    #: precision sweeps: test accuracy minus that of the same backend's fp32 point
    accuracy_vs_fp32: float | None = None

    @property
    def metrics(self) -> dict:
        return self.row.get("metrics") or {}

    @property
    def scenario(self) -> str:
        return str(self.row.get("scenario", "?"))

    @property
    def backend(self) -> str:
        return str(self.row.get("backend", "?"))

    @property
    def point(self) -> dict:
        return self.row.get("sweep_point") or {}


def point_key(point: dict | None) -> str:
    return json.dumps(point or {}, sort_keys=True)


def point_label(point: dict | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (point or {}).items()) or "-"


def _ratios(rows: list[dict]) -> dict[int, tuple[float | None, float | None]]:
    speed = {id(r): (r.get("metrics") or {}).get("samples_per_sec") if r.get("status") == "ok" else None
             for r in rows}
    known = [s for s in speed.values() if s]
    fastest = max(known, default=None)
    ref = next((speed[id(r)] for r in rows if is_reference(r.get("backend"))), None)
    return {i: (s / fastest if s and fastest else None, s / ref if s and ref else None) for i, s in speed.items()}


def entries(runs: list[Run]) -> list[Entry]:
    """Every row of every run, grouped by scenario, sweep point, backend
    (the reference first), then run."""
    groups: dict[tuple, list[dict]] = {}
    for index, run in enumerate(runs):
        for row in run.document.get("results") or []:
            groups.setdefault((index, row.get("scenario"), point_key(row.get("sweep_point"))), []).append(row)
    found = []
    for (index, _, _), rows in groups.items():
        ratios = _ratios(rows)
        found += [Entry(runs[index], row, *ratios[id(row)]) for row in rows]
    found = _with_scaling(found)
    scenarios = _first_seen(e.scenario for e in found)
    points = _first_seen(point_key(e.point) for e in found)
    backends = _first_seen(e.backend for e in sorted(found, key=lambda e: not is_reference(e.backend)))
    run_index = {id(run): i for i, run in enumerate(runs)}
    return sorted(found, key=lambda e: (scenarios[e.scenario], points[point_key(e.point)], backends[e.backend],
                                        run_index[id(e.run)]))


#: the sweep axes a speedup is computed along, the first one swept wins
SCALING_AXES = ("data_parallel", "threads", "batch_size", "precision")


def _with_scaling(found: list[Entry]) -> list[Entry]:
    """Speedup and efficiency of every sweep point against the point with the
    fewest replicas (data-parallel sweeps) or threads (thread sweeps), the
    smallest batch (batch sweeps) or fp32 (precision sweeps, with the accuracy it costs)."""
    def speed(e: Entry):
        return e.metrics.get("samples_per_sec") if e.row.get("status") == "ok" else None

    def accuracy(e: Entry):
        return e.metrics.get("test_accuracy") if e.row.get("status") == "ok" else None

    out = []
    for e in found:
        axis = next((a for a in SCALING_AXES if a in e.point), None)
        if axis is None:  # no sweep, or a seed point: a sample of outcomes, not a scaling axis
            out.append(e)
            continue
        peers = [p for p in found if p.run is e.run and p.scenario == e.scenario and p.backend == e.backend
                 and axis in p.point
                 and {k: v for k, v in p.point.items() if k != axis} == {k: v for k, v in e.point.items() if k != axis}]
        # precisions in the core's order, from fp32 down: fp32 is a precision sweep's base point
        order = (lambda p: PRECISIONS.index(p.point[axis])) if axis == "precision" else (lambda p: p.point[axis])
        base = min(peers, key=order)
        speedup = speed(e) / speed(base) if speed(e) and speed(base) else None
        # the reference trains one process at every data-parallel point: no replicas to be efficient with
        efficiency = (speedup / (e.point[axis] / base.point[axis]) if speedup and axis in EFFICIENCY
                      and not (axis == "data_parallel" and is_reference(e.backend)) else None)
        cost = (accuracy(e) - accuracy(base) if axis == "precision" and base.point[axis] == PRECISIONS[0]
                and accuracy(e) is not None and accuracy(base) is not None else None)
        out.append(dataclasses.replace(e, speedup=speedup, accuracy_vs_fp32=cost,
                                       **{EFFICIENCY[axis]: efficiency} if axis in EFFICIENCY else {}))
    return out


#: which efficiency a sweep axis has
EFFICIENCY = {"threads": "thread_efficiency", "data_parallel": "scaling_efficiency"}


def replicas(e: Entry) -> str:
    """The row's data-parallel world size ("-" for a run that is not data-parallel)."""
    distributed = e.row.get("distributed")
    if distributed and distributed.get("world_size"):
        return str(distributed["world_size"])
    return str(e.point["data_parallel"]) if "data_parallel" in e.point else "-"


def data_parallel(items: list[Entry]) -> bool:
    return any(e.row.get("distributed") or "data_parallel" in e.point for e in items)


def precision_of(e: Entry) -> str:
    """The precision the entry's row trained at (a row that does not say, from before precisions: the default)."""
    return e.row.get("precision") or e.point.get("precision") or PRECISIONS[0]


def legend_items(runs: list) -> list[tuple[str, str]]:
    """(column, meaning) of every column the report's training tables show,
    in table order: a reader is told what the table shows, and only that."""
    shown: dict[str, set[str]] = {}  # column name -> the kinds of rows (mixed precision, data parallel) beside it
    for items in by_scenario(entries(runs)).values():
        items = [e for e in items if e.row.get("mode", "train") != "inference"]
        if not items:
            continue
        kinds = {"mixed"} if any(is_mixed(precision_of(e)) for e in items) else set()
        kinds |= {"parallel"} if data_parallel(items) else set()
        for column in table(items)[0]:
            shown.setdefault(column.name, set()).update(kinds)
    extras = {"mixed": MIXED_PRECISION_MEANINGS, "parallel": DATA_PARALLEL_MEANINGS}
    return [(name, COLUMN_MEANINGS[name] + "".join(extras[k].get(name, "") for k in sorted(kinds)))
            for name, kinds in shown.items() if name in COLUMN_MEANINGS]


def legend(runs: list) -> str:
    """:func:`legend_items` as one paragraph."""
    return " ".join(f"{name}: {meaning}." for name, meaning in legend_items(runs))


def communication_cell(e: Entry) -> str:
    per_step = (e.row.get("distributed") or {}).get("communication_seconds_per_step")
    return _num(per_step * 1e3 if per_step is not None else None, ".2f")


def _first_seen(values) -> dict:
    return {v: i for i, v in enumerate(dict.fromkeys(values))}


def by_scenario(items: list[Entry]) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = {}
    for e in items:
        grouped.setdefault(e.scenario, []).append(e)
    return grouped


# -------------------------------------------------------------------- cells
def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _count(value) -> str:
    """Throughput-like numbers in plain digits (never an exponent): thousands
    separators from 100 up, 3 significant digits below, "<0.001" under that."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) >= 0.001 or value == 0 else "<0.001"


def unstable(metrics: dict) -> bool:
    if "unstable" in metrics:
        return bool(metrics["unstable"])
    cv = (metrics.get("samples_per_sec_stats") or {}).get("cv")
    return cv is not None and cv > UNSTABLE_CV


def speed_cell(metrics: dict) -> str:
    sps = metrics.get("samples_per_sec")
    if sps is None:
        return "-"
    stats = metrics.get("samples_per_sec_stats") or {}
    spread = f" ± {_count(stats['iqr'])}" if stats.get("n", 0) > 1 and stats.get("iqr") is not None else ""
    return _count(sps) + spread + (" *" if unstable(metrics) else "")


def agreement(row: dict) -> str:
    """The verdict cell: "yes (k/n)", "no (k/n)" or "no (acc +0.047)", or
    "not judged (too short)" with the reason's first words, never "no"."""
    p = row.get("parity")
    if is_reference(row.get("backend")) and row.get("status") == "ok":
        return "reference"
    if not p:
        return "-"
    verdict = p.get("verdict") or ("agrees" if p.get("agrees") else "disagrees")
    if verdict == "not judged":
        return f"not judged ({short_reason(p.get('reason'))})"
    over = p.get("first_step_over")
    if p.get("kind") == "certificate":
        checkpoints = f"{p.get('checkpoints_agreeing')}/{p.get('checkpoints')}"
        if verdict == "agrees":
            return f"yes ({checkpoints})"
        old_rule = p.get("checkpoints_agreeing", 0) < 0.75 * (p.get("checkpoints") or 1)  # schema 2's 3/4
        if p.get("certificate_verdict", "disagrees" if old_rule else "agrees") == "disagrees":
            return f"no ({checkpoints})"
        if p.get("outcome", "disagrees") == "disagrees":
            return f"no (acc {_num(p.get('accuracy_diff'), '+.3f')})"
        return f"no (step {over})"  # too short for a checkpoint, and the losses already part
    if verdict == "agrees":
        if p.get("kind") == "accuracy-only":
            return "yes (accuracy)"
        return "yes" if over is None else f"yes (drifts at step {over})"
    if over is not None and over < p.get("horizon", math.inf):
        return f"no (step {over})"
    return f"no (acc {_num(p.get('accuracy_diff'), '+.3f')})"


def short_reason(reason: str | None) -> str:
    """A verdict's reason as a table cell: the words before its colon ("too short")."""
    return (reason or "no reason given").split(":")[0]


def worst_checkpoint(row: dict) -> str:
    """The certificate's worst checkpoint: its step, the worst tensor's
    difference relative to the segment's update, and the tolerance."""
    p = row.get("parity") or {}
    if p.get("kind") != "certificate" or p.get("worst_checkpoint") is None:
        return "-"
    diff, tol = p.get("worst_tensor_diff"), p.get("worst_tensor_tol")
    return (f"step {p['worst_checkpoint']}: {p.get('worst_tensor')} {_num(diff, '.1e')} (tol {_num(tol, '.1e')}), "
            f"{_num(p.get('worst_margin'), '.2g')}x tol")


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}×" if value >= 0.01 else f"{value:.2g}×"


def _percent(fraction) -> str:
    """A share in percent: whole numbers from 10%, 2 significant digits below,
    "<0.01%" under that (a batch-1 MLP's 8.8e-07 of the peak is not a figure to read)."""
    if fraction is None:
        return "-"
    percent = fraction * 100
    if percent >= 10:
        return f"{percent:.0f}%"
    return f"{percent:.2g}%" if percent >= 0.01 or percent == 0 else "<0.01%"


@dataclass(frozen=True)
class Column:
    name: str
    cell: Callable[[Entry], str]
    right: bool = True
    #: shown only when this says so for the table's entries (None: always)
    shown: Callable[[list[Entry]], bool] | None = None


def _some(cell: Callable[[Entry], str]) -> Callable[[list[Entry]], bool]:
    return lambda items: any(cell(e) != "-" for e in items)


def only_regressions(items: list[Entry]) -> bool:
    """Whether the entries with a test score are all regressions' (R^2, no accuracy): then no accuracy column."""
    scored = [e for e in items if e.metrics.get("test_r2") is not None or e.metrics.get("test_accuracy") is not None]
    return bool(scored) and all(e.metrics.get("test_accuracy") is None for e in scored)


def _m(key: str, fmt: str) -> Callable[[Entry], str]:
    return lambda e: _num(e.metrics.get(key), fmt)


COLUMNS = (
    Column("backend", lambda e: e.backend, right=False),
    Column("run", lambda e: e.run.label, right=False, shown=lambda items: len({id(e.run) for e in items}) > 1),
    Column("batch", lambda e: str(e.point.get("batch_size", "-")),
           shown=lambda items: any("batch_size" in e.point for e in items)),
    Column("threads", lambda e: str(e.point.get("threads", "-")),
           shown=lambda items: any("threads" in e.point for e in items)),
    Column("seed", lambda e: str(e.point.get("seed", "-")), shown=lambda items: any("seed" in e.point for e in items)),
    Column("replicas", replicas, shown=data_parallel),
    Column("precision", lambda e: str(e.row.get("precision") or e.point.get("precision") or "-"), right=False,
           shown=lambda items: any(precision_of(e) != PRECISIONS[0] for e in items)),
    Column("status", lambda e: str(e.row.get("status", "-")), right=False),
    Column("device", lambda e: str(e.row.get("device") or "-"), right=False,
           shown=lambda items: any(e.row.get("device") not in (None, "cpu") for e in items)),
    Column("agrees", lambda e: agreement(e.row), right=False),
    Column("test acc", _m("test_accuracy", ".4f"), shown=lambda items: not only_regressions(items)),
    Column("test R^2", _m("test_r2", ".4f"), shown=_some(_m("test_r2", ".4f"))),
    Column("test loss", _m("test_loss", ".4g"), shown=_some(_m("test_r2", ".4f"))),
    Column("final loss", _m("final_loss", ".4g")),
    Column("perplexity", _m("test_perplexity", ".3f"), shown=_some(_m("test_perplexity", ".3f"))),
    Column("samples/s", lambda e: speed_cell(e.metrics)),
    Column("tokens/s", _m("tokens_per_sec", ",.0f"), shown=_some(_m("tokens_per_sec", ",.0f"))),
    Column("per replica/s", _m("samples_per_sec_per_replica", ",.0f"),
           shown=_some(_m("samples_per_sec_per_replica", ",.0f"))),
    Column("vs fastest", lambda e: _ratio(e.vs_fastest)),
    Column(f"vs {REFERENCE_BACKEND}", lambda e: _ratio(e.vs_reference)),
    Column("speedup", lambda e: _ratio(e.speedup),
           shown=lambda items: any(axis in e.point for e in items for axis in SCALING_AXES)),
    Column("acc vs fp32", lambda e: _num(e.accuracy_vs_fp32, "+.4f"),
           shown=lambda items: any("precision" in e.point for e in items)),
    Column("skipped steps", _m("skipped_steps", "d"), shown=_some(_m("skipped_steps", "d"))),
    Column("thread eff.", lambda e: _percent(e.thread_efficiency),
           shown=lambda items: any("threads" in e.point for e in items)),
    Column("scaling eff.", lambda e: _percent(e.scaling_efficiency),
           shown=lambda items: any("data_parallel" in e.point for e in items)),
    Column("comm ms/step", communication_cell, shown=_some(communication_cell)),
    Column("worst checkpoint", lambda e: worst_checkpoint(e.row), right=False,
           shown=_some(lambda e: worst_checkpoint(e.row))),
    Column("compile s", _m("compile_seconds", ".3f")),
    Column("time to acc s", _m("time_to_accuracy", ".3f"), shown=_some(_m("time_to_accuracy", ".3f"))),
    Column("GFLOP/s", lambda e: _count(e.metrics.get("gflops_per_sec")),
           shown=_some(lambda e: _count(e.metrics.get("gflops_per_sec")))),
    Column("% peak", lambda e: _percent(e.metrics.get("peak_fraction")),
           shown=_some(lambda e: _percent(e.metrics.get("peak_fraction")))),
    Column("peak MiB", _m("peak_rss_mib", ",.0f"), shown=_some(_m("peak_rss_mib", ",.0f"))),
    Column("device MiB", _m("peak_device_mib", ",.0f"), shown=_some(_m("peak_device_mib", ",.0f"))),
    Column("wall s", _m("wall_seconds", ".1f"), shown=_some(_m("wall_seconds", ".1f"))),
)


def table(items: list[Entry]) -> tuple[list[Column], list[list[str]]]:
    """The columns worth showing for these entries, and their cells."""
    columns = [c for c in COLUMNS if c.shown is None or c.shown(items)]
    return columns, [[c.cell(e) for c in columns] for e in items]


def outcomes(items: list[Entry]) -> tuple[list[str], list[list[str]]] | None:
    """Where a scenario ran from several seeds: per backend (other sweep
    coordinates equal), the distribution of final test accuracy and loss over
    the seeds, and a two-sided Mann-Whitney rank test against the reference's
    seeds. A chaotic run's accuracy is a sample of one; this makes "reaches
    the same accuracy" a statement with a p-value. None without seed sweeps."""
    groups: dict[tuple, list[Entry]] = {}
    for e in items:
        if "seed" in e.point and e.row.get("status") == "ok":
            rest = point_key({k: v for k, v in e.point.items() if k != "seed"})
            groups.setdefault((id(e.run), rest, e.backend), []).append(e)
    if not groups:
        return None

    def values(group, key):
        return [g.metrics[key] for g in group if g.metrics.get(key) is not None]

    header = ["backend", "seeds", "test acc median [min, max]", "p vs " + REFERENCE_BACKEND,
              "final loss median [min, max]", "p vs " + REFERENCE_BACKEND]
    rows = []
    for (run, rest, backend), group in groups.items():
        reference = groups.get((run, rest, REFERENCE_BACKEND), [])
        cells = [backend, str(len(group))]
        for key in ("test_accuracy", "final_loss"):
            ours, ref = values(group, key), values(reference, key)
            cells.append(_spread(ours))
            cells.append("-" if is_reference(backend) or not ours or not ref
                         else f"{mann_whitney_u(ours, ref)[1]:.2g}")
        rows.append(cells)
    return header, rows


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{statistics.median(ordered):.4g} [{ordered[0]:.4g}, {ordered[-1]:.4g}]"


def problems(document: dict) -> list[str]:
    """One line per row that did not finish ok: what went wrong."""
    return [f"{r.get('scenario')} / {r.get('backend')}: {r.get('status')}: {r.get('error')}"
            for r in document.get("results") or [] if r.get("status") != "ok"]


# -------------------------------------------------------------- environment
def _cores(env: dict) -> str | None:
    if env.get("logical_cores") is None:
        return None
    return (f"{env.get('physical_cores', '?')} physical / {env['logical_cores']} logical, "
            f"{env.get('available_cores', '?')} available")


def _blas(env: dict) -> str | None:
    libs = dict.fromkeys(f"{b.get('internal_api')} {b.get('version')} ({b.get('architecture')})"
                         for b in env.get("blas") or [])
    return ", ".join(libs) or None


def _peaks(env: dict, key: str = "peak_gflops") -> str | None:
    peaks = env.get(key) or {}
    return ", ".join(f"{k} {v:,.0f}" for k, v in peaks.items() if v is not None) or None


def _settings(settings: dict) -> str | None:
    parts = [f"device {settings['device']}" if settings.get("device") else None,
             f"{settings['threads']} threads" if settings.get("threads") else None,
             f"repeat {settings['repeat']}" if settings.get("repeat") else None,
             settings.get("precision"),
             "deterministic" if settings.get("deterministic") else None,
             "; ".join(f"{k}={v}" for k, v in (settings.get("overrides") or {}).items()) or None,
             "sweep " + "; ".join(f"{k}={','.join(map(str, v))}" for k, v in settings["sweep"].items())
             if settings.get("sweep") else None]
    return ", ".join(p for p in parts if p) or None


ENVIRONMENT_FIELDS: tuple[tuple[str, Callable[[Run], str | None]], ...] = (
    ("created", lambda r: r.document.get("created")),
    ("command", lambda r: " ".join(r.document.get("command") or []) or None),
    ("host", lambda r: r.environment.get("hostname")),
    ("CPU", lambda r: r.environment.get("cpu")),
    ("cores", lambda r: _cores(r.environment)),
    ("memory GiB", lambda r: _num(r.environment.get("memory_gib"), "g")),
    ("GPU", lambda r: ", ".join(r.environment.get("gpus") or []) or None),
    ("settings", lambda r: _settings(r.settings)),
    ("BLAS", lambda r: _blas(r.environment)),
    ("peak GFLOP/s", lambda r: _peaks(r.environment)),
    ("bf16 peak GFLOP/s", lambda r: _peaks(r.environment, "peak_gflops_bfloat16")),
    ("fp16 peak GFLOP/s", lambda r: _peaks(r.environment, "peak_gflops_float16")),
    ("GPU peak GFLOP/s", lambda r: _peaks(r.environment, "gpu_peak_gflops")),
    ("GPU tf32 peak GFLOP/s", lambda r: _peaks(r.environment, "gpu_peak_gflops_tfloat32")),
    ("GPU bf16 peak GFLOP/s", lambda r: _peaks(r.environment, "gpu_peak_gflops_bfloat16")),
    ("GPU fp16 peak GFLOP/s", lambda r: _peaks(r.environment, "gpu_peak_gflops_float16")),
    ("OS", lambda r: r.environment.get("os")),
    ("Python", lambda r: r.environment.get("python")),
    ("dlbench", lambda r: r.environment.get("dlbench")),
    ("commit", lambda r: r.environment.get("git_commit")),
)


#: facts only some runs have (a run at bf16 or fp16), left out when none of the runs shown has them
OPTIONAL_FIELDS = ("bf16 peak GFLOP/s", "fp16 peak GFLOP/s", "GPU peak GFLOP/s", "GPU tf32 peak GFLOP/s",
                   "GPU bf16 peak GFLOP/s", "GPU fp16 peak GFLOP/s")


def environment_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): one column per run, one row per fact, framework versions last."""
    rows = [[name] + [get(r) or "-" for r in runs] for name, get in ENVIRONMENT_FIELDS
            if name not in OPTIONAL_FIELDS or any(get(r) for r in runs)]
    dists = dict.fromkeys(d for r in runs for d in r.environment.get("versions") or {})
    rows += [[d] + [(r.environment.get("versions") or {}).get(d, "-") for r in runs] for d in dists]
    return ["", *(r.label for r in runs)], rows


def scenario_description(runs: list[Run], name: str) -> str | None:
    """The scenario's ``description``, as the run recorded it (``settings.scenario_descriptions``);
    for a document older than that record, the description of the shipped scenario of that name.
    A report never opens a file a document names: the document is data anyone can edit."""
    for run in runs:
        recorded = (run.settings.get("scenario_descriptions") or {}).get(name)
        if recorded is not None:
            return recorded
    return shipped_description(name)


def shipped_description(name: str) -> str | None:
    """The description of the scenario dlbench ships under ``name`` (found by dlbench, not named by a document)."""
    import tomllib

    from dlbench.scenario import scenario_files

    path = scenario_files().get(name)  # the shipped folder only: a document names no folder
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return str(tomllib.load(f)["description"])
    except (OSError, KeyError, ValueError):
        return None


# ---------------------------------------------------------------- renderers
