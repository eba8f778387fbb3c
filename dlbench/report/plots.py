"""Pictures of result documents (matplotlib; imported only when a report asks).

* loss curves: every backend's training loss per step for one scenario, and
  next to it each backend's relative difference to the NumPy reference (the
  parity picture: curves that agree lie on top of each other on the left and
  stay under the tolerance line on the right);
* throughput: median samples/s per backend with the interquartile range as
  error bars, one panel per scenario;
* scaling: samples/s against batch size and against threads, for a sweep;
* data-parallel scaling: samples/s against replicas with each backend's
  ideal (linear from its fewest replicas), and the scaling efficiency;
* inference latency: the distribution (empirical CDF) of every backend's
  per-call latencies, one panel per inference batch size, on a log axis,
  with the p50 and p99 marked.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot, no GUI
backend, no global state) and returned as PNG bytes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from dlbench.parity.verdict import HORIZON_STEPS, LOSS_FLOOR, LOSS_RTOL, REFERENCE_BACKEND, is_reference
from dlbench.report.table import Entry, Run, by_scenario, entries, point_key
from dlbench.results.document import safe_name

SWEEP_AXES = {"batch_size": "batch size", "threads": "threads"}
LINE_STYLES = ("-", "--", ":", "-.")
HATCHES = ("", "//", "..", "xx")
DIFF_FLOOR = 1e-10  # where an exact match is drawn on a log axis
LOSS_POINTS, DIFF_POINTS = 400, 120  # at most this many points per curve


@dataclass(frozen=True)
class Picture:
    key: str  # a file-name-safe name, unique within a report
    title: str
    png: bytes


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _colour(backend: str, order: list[str]) -> str:
    """The reference first, then every other backend in name order: the same
    colour for a backend in every plot of a report, whoever registered it."""
    names = [REFERENCE_BACKEND, *sorted(set(order) - {REFERENCE_BACKEND})]
    return f"C{names.index(backend) % 10}" if backend in names else "C9"


def _run_index(items: list[Entry]) -> dict[int, int]:
    """Position of each entry's run, so every run gets its own line style or hatch."""
    return {run: i for i, run in enumerate(dict.fromkeys(id(e.run) for e in items))}


def _name(e: Entry, several_runs: bool) -> str:
    return f"{e.backend} · {e.run.label}" if several_runs else e.backend


def representative(items: list[Entry]) -> list[Entry]:
    """The entries at each (run, scenario)'s first sweep point (all of them
    when there is no sweep): loss curves and bars show one row per backend."""
    first: dict[tuple, str] = {}
    for e in items:
        first.setdefault((id(e.run), e.scenario), point_key(e.point))
    return [e for e in items if first[(id(e.run), e.scenario)] == point_key(e.point)]


def _binned(e: Entry, values: list, reduce, max_points: int) -> tuple[list[float], list[float], int]:
    """(steps, values, steps per point): consecutive steps reduced to at most
    ``max_points`` points, so thousands of noisy batch-1 losses stay legible."""
    every = e.metrics.get("loss_history_every") or 1
    size = max(1, math.ceil(len(values) / max_points))
    xs, ys = [], []
    for start in range(0, len(values), size):
        chunk = [v for v in values[start:start + size] if v is not None and math.isfinite(v)]
        xs.append(start * every)
        ys.append(reduce(chunk) if chunk else math.nan)
    return xs, ys, size * every


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _rel_diff(ours: list, ref: list) -> list:
    return [abs(a - b) / max(abs(b), LOSS_FLOOR) if a is not None and b is not None else None
            for a, b in zip(ours, ref)]


def _per(steps: int) -> str:
    return "" if steps == 1 else f" (per {steps} steps)"


def loss_figure(items: list[Entry], scenario: str) -> Figure | None:
    """Loss per step of every backend, and its relative difference to the reference."""
    curves = [e for e in representative(items) if e.metrics.get("loss_history")]
    if not curves:
        return None
    several = len({id(e.run) for e in curves}) > 1
    order = [e.backend for e in curves]
    refs = {id(e.run): e for e in curves if is_reference(e.backend)}
    compared = [e for e in curves if not is_reference(e.backend) and id(e.run) in refs
                and (e.row.get("parity") or {}).get("kind") != "accuracy-only"
                and len(e.metrics["loss_history"]) == len(refs[id(e.run)].metrics["loss_history"])]
    fig = Figure(figsize=(12, 3.8) if compared else (6.5, 3.8), layout="constrained")
    axes = fig.subplots(1, 2 if compared else 1, squeeze=False)[0]
    per, run_of = 1, _run_index(curves)
    for i, e in enumerate(curves):
        reference = is_reference(e.backend)
        xs, ys, per = _binned(e, e.metrics["loss_history"], _mean, LOSS_POINTS)
        dashes = LINE_STYLES[run_of[id(e.run)] % len(LINE_STYLES)] if reference or several else (0, (4, 2 + i))
        axes[0].plot(xs, ys, color=_colour(e.backend, order), lw=2.4 if reference else 1.1,
                     alpha=0.5 if reference else 0.95, ls=dashes, label=_name(e, several))
    axes[0].set(title=f"{scenario}: training loss", xlabel="step", ylabel="mean loss" + _per(per))
    if all(x is None or x > 0 for e in curves for x in e.metrics["loss_history"]):
        axes[0].set_yscale("log")
    axes[0].legend(fontsize="small", loc="upper right")
    if compared:
        ax = axes[1]
        for e in compared:
            diffs = _rel_diff(e.metrics["loss_history"], refs[id(e.run)].metrics["loss_history"])
            xs, ys, per = _binned(e, diffs, max, DIFF_POINTS)
            ax.plot(xs, [max(y, DIFF_FLOOR) for y in ys], color=_colour(e.backend, order), lw=1.1,
                    ls=LINE_STYLES[run_of[id(e.run)] % len(LINE_STYLES)], drawstyle="steps-post",
                    label=_name(e, several))
        ax.axhline(LOSS_RTOL, color="k", ls="--", lw=1, label=f"tolerance {LOSS_RTOL:g}")
        if max(len(e.metrics["loss_history"]) * (e.metrics.get("loss_history_every") or 1)
               for e in compared) > HORIZON_STEPS:
            ax.axvline(HORIZON_STEPS, color="grey", ls=":", lw=1, label=f"judged up to step {HORIZON_STEPS}")
        ax.set(yscale="log", title=f"relative difference to {REFERENCE_BACKEND} (0 drawn at {DIFF_FLOOR:g})",
               xlabel="step", ylabel=f"max |Δloss| / max(|ref|, {LOSS_FLOOR:g})" + _per(per))
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def _spread(e: Entry) -> tuple[float, float]:
    """(below, above) the median: the interquartile range, as error bars."""
    m = e.metrics
    stats, median = m.get("samples_per_sec_stats") or {}, m["samples_per_sec"]
    if stats.get("n", 0) < 2 or stats.get("q1") is None or stats.get("q3") is None:
        return 0.0, 0.0
    return max(median - stats["q1"], 0.0), max(stats["q3"] - median, 0.0)


def _speed_rows(items: list[Entry]) -> list[Entry]:
    return [e for e in items if e.row.get("status") == "ok" and e.metrics.get("samples_per_sec")]


def throughput_figure(runs: list[Run]) -> Figure | None:
    """Median samples/s per backend with IQR error bars; a panel per scenario.
    A backend without a speed (failed, unavailable) keeps its place, labelled with its status."""
    scenarios = {s: representative(items) for s, items in by_scenario(entries(runs)).items()}
    scenarios = {s: items for s, items in scenarios.items() if _speed_rows(items)}
    if not scenarios:
        return None
    several = len(runs) > 1
    cols = min(len(scenarios), 3)
    nrows = math.ceil(len(scenarios) / cols)
    height = max(len(items) for items in scenarios.values()) * 0.45 + 1.4
    fig = Figure(figsize=(4.6 * cols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, (scenario, items) in zip(axes, scenarios.items()):
        _bars(ax, items, several)
        ax.set_title(scenario)
    for ax in axes[len(scenarios):]:
        ax.set_visible(False)
    return fig


def _bars(ax, items: list[Entry], several: bool) -> None:
    measured = set(map(id, _speed_rows(items)))
    order, run_of = [e.backend for e in items], _run_index(items)
    speeds = [e.metrics["samples_per_sec"] if id(e) in measured else 0.0 for e in items]
    below, above = zip(*(_spread(e) if id(e) in measured else (0.0, 0.0) for e in items))
    ys = list(range(len(items)))
    ax.barh(ys, speeds, xerr=[below, above], capsize=3, color=[_colour(e.backend, order) for e in items],
            hatch=[HATCHES[run_of[id(e.run)] % len(HATCHES)] for e in items], edgecolor="white", alpha=0.85)
    ax.set_yticks(ys, [_name(e, several) for e in items], fontsize="small")
    ax.invert_yaxis()
    known = [v for v in speeds if v > 0]
    if max(known) / min(known) > 30:
        ax.set_xscale("log")
    for y, e in zip(ys, items):
        if id(e) not in measured:
            ax.text(0.02, y, str(e.row.get("status", "no result")), transform=ax.get_yaxis_transform(),
                    va="center", fontsize="small", color="C3")
    ax.set_xlabel("samples/s (median, IQR)")


def _varied(items: list[Entry]) -> list[str]:
    values: dict[str, set] = {}
    for e in items:
        for k, v in e.point.items():
            values.setdefault(k, set()).add(v)
    return [k for k, vs in values.items() if len(vs) > 1]


def scaling_figure(items: list[Entry], scenario: str) -> Figure | None:
    """samples/s against each swept setting; one line per backend (and other settings)."""
    rows = [e for e in _speed_rows(items) if e.point]
    axes_keys = [k for k in _varied(rows) if k != "data_parallel"]  # replicas have a figure of their own
    if not axes_keys:
        return None
    several = len({id(e.run) for e in rows}) > 1
    order = [e.backend for e in rows]
    fig = Figure(figsize=(5.2 * len(axes_keys), 3.8), layout="constrained")
    for ax, key in zip(fig.subplots(1, len(axes_keys), squeeze=False)[0], axes_keys):
        lines: dict[tuple, list[Entry]] = {}
        for e in rows:
            rest = ", ".join(f"{k}={v}" for k, v in e.point.items() if k != key)
            lines.setdefault((_name(e, several), rest, e.backend), []).append(e)
        styles = {rest: LINE_STYLES[i % len(LINE_STYLES)]
                  for i, rest in enumerate(dict.fromkeys(rest for _, rest, _ in lines))}
        for (name, rest, backend), line in lines.items():
            line.sort(key=lambda e: e.point.get(key, 0))
            below, above = zip(*(_spread(e) for e in line))
            ax.errorbar([e.point.get(key) for e in line], [e.metrics["samples_per_sec"] for e in line],
                        yerr=[below, above], marker="o", capsize=3, color=_colour(backend, order),
                        ls=styles[rest],
                        label=f"{name} ({rest})" if rest else name)
        ax.set(xscale="log", yscale="log", title=f"{scenario}: samples/s vs {SWEEP_AXES.get(key, key)}",
               xlabel=SWEEP_AXES.get(key, key), ylabel="samples/s")
        ax.set_xticks(sorted({e.point[key] for e in rows if key in e.point}),
                      [str(v) for v in sorted({e.point[key] for e in rows if key in e.point})])
        ax.minorticks_off()
        ax.legend(fontsize="x-small")
    return fig


def data_parallel_figure(items: list[Entry], scenario: str) -> Figure | None:
    """Left: samples/s (total over the replicas) against replicas per backend,
    dotted its ideal, linear from its fewest replicas; right: the scaling
    efficiency. The reference (one process at every point) is left out."""
    rows = [e for e in _speed_rows(items) if "data_parallel" in e.point and not is_reference(e.backend)]
    if len({e.point["data_parallel"] for e in rows}) < 2:
        return None
    several = len({id(e.run) for e in rows}) > 1
    order = [e.backend for e in rows]
    lines: dict[tuple, list[Entry]] = {}
    for e in rows:
        rest = ", ".join(f"{k}={v}" for k, v in e.point.items() if k != "data_parallel")
        lines.setdefault((_name(e, several), rest, e.backend), []).append(e)
    fig = Figure(figsize=(10.4, 3.8), layout="constrained")
    speed_ax, efficiency_ax = fig.subplots(1, 2)
    styles = {rest: LINE_STYLES[i % len(LINE_STYLES)] for i, rest in enumerate(dict.fromkeys(r for _, r, _ in lines))}
    for (name, rest, backend), line in lines.items():
        line.sort(key=lambda e: e.point["data_parallel"])
        replicas = [e.point["data_parallel"] for e in line]
        colour, label = _colour(backend, order), f"{name} ({rest})" if rest else name
        speed_ax.plot(replicas, [e.metrics["samples_per_sec"] for e in line], marker="o", color=colour,
                      ls=styles[rest], label=label)
        base = line[0].metrics["samples_per_sec"] / replicas[0]
        speed_ax.plot(replicas, [base * n for n in replicas], color=colour, ls=":", lw=0.8)
        efficiency_ax.plot(replicas, [100 * (e.scaling_efficiency or 0.0) for e in line], marker="o",
                           color=colour, ls=styles[rest], label=label)
    ticks = sorted({e.point["data_parallel"] for e in rows})
    for ax in (speed_ax, efficiency_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("replicas")
    speed_ax.set(yscale="log", title=f"{scenario}: samples/s vs replicas (dotted: ideal)", ylabel="samples/s")
    efficiency_ax.axhline(100, color="grey", ls=":", lw=0.8)
    efficiency_ax.set(title=f"{scenario}: scaling efficiency", ylabel="% of linear scaling",
                      ylim=(0, max(110, *(100 * (e.scaling_efficiency or 0) + 10 for e in rows))))
    speed_ax.legend(fontsize="x-small")
    return fig


def latency_figure(items: list[Entry], scenario: str) -> Figure | None:
    """Empirical CDF of the per-call latencies per backend, a panel per batch size (log latency axis)."""
    from dlbench.report.inference import lines

    measured = [g for g in lines(representative(items)) if g.result and g.result.get("latency_samples_ms")]
    sizes = list(dict.fromkeys(g.result["batch_size"] for g in measured))
    if not sizes:
        return None
    several = len({id(g.entry.run) for g in measured}) > 1
    order = [g.entry.backend for g in measured]
    fig = Figure(figsize=(5.2 * len(sizes), 3.8), layout="constrained")
    for ax, size in zip(fig.subplots(1, len(sizes), squeeze=False)[0], sizes):
        for g in (g for g in measured if g.result["batch_size"] == size):
            ordered = sorted(g.result["latency_samples_ms"])
            fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
            run = _run_index([m.entry for m in measured])[id(g.entry.run)]
            ax.step(ordered, fractions, where="post", color=_colour(g.entry.backend, order),
                    ls=LINE_STYLES[run % len(LINE_STYLES)], label=f"{_name(g.entry, several)} ({len(ordered)} calls)")
        for q in (0.5, 0.99):
            ax.axhline(q, color="grey", ls=":", lw=0.8)
        ax.set(xscale="log", ylim=(0, 1.01), title=f"{scenario}: inference latency, batch {size}",
               xlabel="latency per call (ms, log)", ylabel="fraction of calls (p50, p99 dotted)")
        ax.xaxis.set_minor_formatter(NullFormatter())  # a narrow decade's minor labels overlap
        ax.legend(fontsize="x-small", loc="lower right")
    return fig


def figures(runs: list[Run]) -> dict[str | None, list[tuple[str, str, Figure]]]:
    """Every figure of a report as (key, title, figure), keyed by the scenario
    it belongs to (None: the whole report)."""
    found: dict[str | None, list[tuple[str, str, Figure]]] = {}
    for scenario, items in by_scenario(entries(runs)).items():
        for kind, title, fig in (("loss", "loss curves", loss_figure(items, scenario)),
                                 ("scaling", "scaling", scaling_figure(items, scenario)),
                                 ("data-parallel", "data-parallel scaling", data_parallel_figure(items, scenario)),
                                 ("latency", "inference latency", latency_figure(items, scenario))):
            if fig is not None:
                found.setdefault(scenario, []).append((f"{safe_name(scenario)}-{kind}", f"{scenario}: {title}", fig))
    fig = throughput_figure(runs)
    if fig is not None:
        found[None] = [("throughput", "throughput (median samples/s, IQR)", fig)]
    return found


def pictures(runs: list[Run]) -> dict[str | None, list[Picture]]:
    """Every picture of a report (:func:`figures` as PNG images)."""
    return {scenario: [Picture(key, title, png_bytes(fig)) for key, title, fig in found]
            for scenario, found in figures(runs).items()}
