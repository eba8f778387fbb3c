"""Did NEW get slower or less accurate than BASE? Per (scenario, backend).

Each rule is a small check object with ``fails(current, baseline)`` that
returns the reason (a string) or None, as asv's and pytest-benchmark's
regression checks do. An improvement is a regression seen backwards:
``check.fails(baseline, current)``.

Speed is judged on median samples/s with a relative threshold and, where
both rows carry raw samples, a two-sided Mann-Whitney U test: a slowdown
beyond the threshold whose samples are not significantly different
(p >= alpha) is noise, not a regression. The test uses the per-repeat
medians when there are enough of them for significance to be possible,
else the per-window throughputs of the first repeat.

Inference latency is judged the same way, per inference batch size present
in both rows: the median (p50) latency rose by more than the threshold and
a Mann-Whitney U test on the raw per-call latencies (hundreds per batch
size, so significance is easily possible) says the calls differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from dlbench.report.escape import markdown_text
from dlbench.report.table import point_key, point_label
from dlbench.parity.stats import mann_whitney_u, smallest_p

DEFAULT_THRESHOLD = 0.05
DEFAULT_ACCURACY_TOLERANCE = 0.01
DEFAULT_ALPHA = 0.05
VERDICTS = ("regressed", "inconclusive", "improved", "same", "new", "missing")


def raw_samples(baseline: dict, current: dict, alpha: float) -> tuple[str, list[float], list[float]] | None:
    """(kind, baseline samples, current samples) worth testing, or None."""
    for kind, key in (("repeats", "samples_per_sec_samples"), ("windows", "window_samples_per_sec")):
        a, b = (_finite((row.get("metrics") or {}).get(key)) for row in (baseline, current))
        if len(a) >= 2 and len(b) >= 2 and smallest_p(len(a), len(b)) < alpha:
            return kind, a, b
    return None


def _finite(values) -> list[float]:
    return [float(v) for v in values or [] if v is not None and math.isfinite(v)]


# ----------------------------------------------------------------- checks
def _metric(row: dict, key: str) -> float | None:
    value = (row.get("metrics") or {}).get(key)
    return value if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class SpeedCheck:
    """Median samples/s fell by more than ``threshold`` (a fraction), significantly."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA

    def fails(self, current: dict, baseline: dict) -> str | None:
        slower = self._slower(current, baseline)
        return slower[1] if slower and slower[0] else None

    def doubts(self, current: dict, baseline: dict) -> str | None:
        """Slower beyond the threshold, but the rank test cannot tell the samples apart."""
        slower = self._slower(current, baseline)
        return f"{slower[1]}: not significant, treated as noise" if slower and not slower[0] else None

    def improves(self, current: dict, baseline: dict) -> str | None:
        faster = self._slower(baseline, current)
        return self._describe(current, baseline) if faster and faster[0] else None

    def _slower(self, current: dict, baseline: dict) -> tuple[bool, str] | None:
        """(significant, description) when ``current`` is slower beyond the threshold."""
        new, old = _metric(current, "samples_per_sec"), _metric(baseline, "samples_per_sec")
        if not new or not old or new / old - 1 >= -self.threshold:
            return None
        samples = raw_samples(baseline, current, self.alpha)
        significant = samples is None or mann_whitney_u(samples[1], samples[2])[1] < self.alpha
        return significant, self._describe(current, baseline)

    def _describe(self, current: dict, baseline: dict) -> str:
        change = _metric(current, "samples_per_sec") / _metric(baseline, "samples_per_sec") - 1
        samples = raw_samples(baseline, current, self.alpha)
        test = "" if samples is None else f"; p={mann_whitney_u(samples[1], samples[2])[1]:.2g} over {samples[0]}"
        return f"samples/s {change:+.1%} (threshold {self.threshold:.0%}{test})"


def _latencies(row: dict) -> dict[int, dict]:
    """The row's inference entries by batch size (only those with raw per-call latencies)."""
    entries = (row.get("metrics") or {}).get("inference") or []
    return {e["batch_size"]: e for e in entries if isinstance(e, dict) and _finite(e.get("latency_samples_ms"))}


@dataclass(frozen=True)
class LatencyCheck:
    """Median inference latency at some batch size rose by more than ``threshold``, significantly."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA

    def fails(self, current: dict, baseline: dict) -> str | None:
        found = [self._describe(c) for c in self._changes(current, baseline) if c[1] > self.threshold and c[3]]
        return "; ".join(found) or None

    def doubts(self, current: dict, baseline: dict) -> str | None:
        found = [f"{self._describe(c)}: not significant, treated as noise"
                 for c in self._changes(current, baseline) if c[1] > self.threshold and not c[3]]
        return "; ".join(found) or None

    def improves(self, current: dict, baseline: dict) -> str | None:
        found = [self._describe(c) for c in self._changes(current, baseline) if c[1] < 1 / (1 + self.threshold) - 1
                 and c[3]]
        return "; ".join(found) or None

    def _changes(self, current: dict, baseline: dict) -> list[tuple]:
        """(batch size, change of the median latency, p or None, significant) per
        batch size in both rows; p is None when the counts cannot reach ``alpha``."""
        ours, theirs = _latencies(current), _latencies(baseline)
        found = []
        for size in sorted(set(ours) & set(theirs)):
            new, old = ours[size]["latency_samples_ms"], theirs[size]["latency_samples_ms"]
            change = _median(new) / _median(old) - 1
            p = mann_whitney_u(new, old)[1] if smallest_p(len(new), len(old)) < self.alpha else None
            found.append((size, change, p, p is None or p < self.alpha, len(new), len(old)))
        return found

    def _describe(self, change: tuple) -> str:
        size, rel, p, _, n_new, n_old = change
        test = "" if p is None else f"; p={p:.2g} over {n_old} and {n_new} calls"
        return f"batch-{size} inference p50 latency {rel:+.1%} (threshold {self.threshold:.0%}{test})"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass(frozen=True)
class AccuracyCheck:
    """Test accuracy fell by more than ``tolerance`` (absolute)."""

    tolerance: float = DEFAULT_ACCURACY_TOLERANCE

    def fails(self, current: dict, baseline: dict) -> str | None:
        new, old = _metric(current, "test_accuracy"), _metric(baseline, "test_accuracy")
        # accuracies are counts over n (k/n): 10 samples of 1000 is 0.01, not 0.010000000000000009
        if new is None or old is None or round(old - new, 9) <= self.tolerance:
            return None
        return self._describe(current, baseline)

    def improves(self, current: dict, baseline: dict) -> str | None:
        return self.fails(baseline, current) and self._describe(current, baseline)

    def _describe(self, current: dict, baseline: dict) -> str:
        change = _metric(current, "test_accuracy") - _metric(baseline, "test_accuracy")
        return f"test accuracy {change:+.4f} (tolerance {self.tolerance:g})"


@dataclass(frozen=True)
class StatusCheck:
    """The baseline finished ok, the current run did not."""

    def fails(self, current: dict, baseline: dict) -> str | None:
        if baseline.get("status") == "ok" and current.get("status") != "ok":
            return f"status {current.get('status')} (was ok): {current.get('error')}"
        return None


@dataclass(frozen=True)
class ParityCheck:
    """The baseline agreed with the reference, the current run disagrees (a
    current verdict "not judged", e.g. a shorter run, is no regression)."""

    def fails(self, current: dict, baseline: dict) -> str | None:
        old, new = baseline.get("parity") or {}, current.get("parity") or {}
        if old.get("agrees") and new and (new.get("verdict") or ("agrees" if new.get("agrees") else "disagrees")) \
                == "disagrees":
            return "no longer agrees with the reference"
        return None


def default_checks(threshold: float = DEFAULT_THRESHOLD, accuracy_tolerance: float = DEFAULT_ACCURACY_TOLERANCE,
                   alpha: float = DEFAULT_ALPHA) -> list:
    return [StatusCheck(), ParityCheck(), SpeedCheck(threshold, alpha), LatencyCheck(threshold, alpha),
            AccuracyCheck(accuracy_tolerance)]


# ------------------------------------------------------------- comparison
@dataclass
class Change:
    """One (scenario, backend, sweep point) in BASE and NEW."""

    scenario: str
    backend: str
    point: dict
    base: dict | None
    new: dict | None
    regressions: list[str] = field(default_factory=list)
    doubts: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.base is None:
            return "new"
        if self.new is None:
            return "missing"
        if self.regressions:
            return "regressed"
        return "inconclusive" if self.doubts else "improved" if self.improvements else "same"

    @property
    def speed_change(self) -> float | None:
        new, old = (_metric(r, "samples_per_sec") if r else None for r in (self.new, self.base))
        return new / old - 1 if new and old else None

    @property
    def accuracy_change(self) -> float | None:
        new, old = (_metric(r, "test_accuracy") if r else None for r in (self.new, self.base))
        return None if new is None or old is None else new - old

    def p_value(self, alpha: float = DEFAULT_ALPHA) -> tuple[float, str] | None:
        samples = raw_samples(self.base, self.new, alpha) if self.base and self.new else None
        return None if samples is None else (mann_whitney_u(samples[1], samples[2])[1], samples[0])


def _key(row: dict) -> tuple:
    return row.get("scenario"), row.get("backend"), point_key(row.get("sweep_point"))


def compare(base: dict, new: dict, checks: list | None = None) -> list[Change]:
    """Every (scenario, backend, sweep point) of either document, judged by ``checks``."""
    checks = default_checks() if checks is None else checks
    old_rows = {_key(r): r for r in base.get("results") or []}
    new_rows = {_key(r): r for r in new.get("results") or []}
    changes = []
    for key in dict.fromkeys([*old_rows, *new_rows]):
        old, current = old_rows.get(key), new_rows.get(key)
        some = old or current
        change = Change(str(key[0]), str(key[1]), some.get("sweep_point") or {}, old, current)
        if old and current:
            change.regressions = [r for c in checks if (r := c.fails(current, old))]
            change.doubts = [r for c in checks if hasattr(c, "doubts") and (r := c.doubts(current, old))]
            change.improvements = [r for c in checks if hasattr(c, "improves") and (r := c.improves(current, old))]
        changes.append(change)
    return changes


def exit_code(changes: list[Change]) -> int:
    return 1 if any(c.regressions for c in changes) else 0


def different_machines(base: dict, new: dict) -> list[str]:
    """What differs between the machines of BASE and NEW (speed is then not comparable)."""
    keys = ("hostname", "cpu", "logical_cores", "gpus")
    envs = [d.get("environment") or {} for d in (base, new)]
    return [f"{k}: {envs[0].get(k)} -> {envs[1].get(k)}" for k in keys if envs[0].get(k) != envs[1].get(k)]


# --------------------------------------------------------------- output
def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1%}"


def _speed(row: dict | None) -> str:
    value = _metric(row, "samples_per_sec") if row else None
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _acc(row: dict | None) -> str:
    value = _metric(row, "test_accuracy") if row else None
    return "-" if value is None else f"{value:.4f}"


COLUMNS = ("scenario", "backend", "sweep", "samples/s base → new", "change", "p", "test acc base → new", "Δacc",
           "verdict")


def _arrow(old: str, new: str) -> str:
    return f"{old} → {new}"


def cells(change: Change, alpha: float = DEFAULT_ALPHA) -> list[str]:
    tested = change.p_value(alpha)
    acc = change.accuracy_change
    return [change.scenario, change.backend, point_label(change.point),
            _arrow(_speed(change.base), _speed(change.new)), _pct(change.speed_change),
            "-" if tested is None else f"{tested[0]:.2g}", _arrow(_acc(change.base), _acc(change.new)),
            "-" if acc is None else f"{acc:+.4f}", change.verdict]


def summary(changes: list[Change], threshold: float) -> str:
    counts = {v: sum(c.verdict == v for c in changes) for v in VERDICTS}
    detail = ", ".join(f"{n} {v}" for v, n in counts.items() if n and v != "regressed")
    head = (f"{counts['regressed']} regressed" if counts["regressed"] else "no regression") + \
        f" (threshold {threshold:.0%})"
    return f"{head}; {detail}" if detail else head


def reasons(changes: list[Change]) -> list[tuple[str, str]]:
    """(verdict, 'scenario / backend: reason') for every regression, doubt and improvement."""
    found = []
    for c in changes:
        where = f"{c.scenario} / {c.backend}" + (f" [{point_label(c.point)}]" if c.point else "")
        found += [("regressed", f"{where}: {r}") for r in c.regressions]
        found += [("inconclusive", f"{where}: {r}") for r in c.doubts]
        found += [("improved", f"{where}: {r}") for r in c.improvements if c.verdict == "improved"]
    return found


def rich_table(changes: list[Change], alpha: float = DEFAULT_ALPHA):
    from rich.markup import escape
    from rich.table import Table

    styles = {"regressed": "bold red", "inconclusive": "yellow", "improved": "green", "missing": "dim", "new": "cyan"}
    shown = [c for c in COLUMNS if c != "sweep" or any(ch.point for ch in changes)]
    table = Table(title="dlbench compare", title_justify="left")
    for name in shown:
        table.add_column(name, justify="left" if name in ("scenario", "backend", "sweep", "verdict") else "right")
    for change in changes:
        row = dict(zip(COLUMNS, cells(change, alpha)))
        style = styles.get(change.verdict)
        table.add_row(*(escape(row[n]) for n in shown), style=style)
    return table


def markdown(changes: list[Change], labels: tuple[str, str], threshold: float, alpha: float = DEFAULT_ALPHA) -> str:
    shown = [c for c in COLUMNS if c != "sweep" or any(ch.point for ch in changes)]
    lines = [f"base: {markdown_text(labels[0])} · new: {markdown_text(labels[1])}", "",
             "| " + " | ".join(shown) + " |", "|" + "|".join("---" for _ in shown) + "|"]
    for change in changes:
        row = {name: markdown_text(cell) for name, cell in zip(COLUMNS, cells(change, alpha))}
        verdict = row["verdict"]
        row["verdict"] = f"**{verdict}**" if verdict in ("regressed", "improved") else verdict
        lines.append("| " + " | ".join(row[n] for n in shown) + " |")
    lines += ["", summary(changes, threshold)] + [f"- {v}: {markdown_text(text)}" for v, text in reasons(changes)]
    return "\n".join(lines) + "\n"


def as_json(changes: list[Change], alpha: float = DEFAULT_ALPHA) -> list[dict]:
    return [{"scenario": c.scenario, "backend": c.backend, "sweep_point": c.point or None, "verdict": c.verdict,
             "speed_change": c.speed_change, "accuracy_change": c.accuracy_change,
             "p_value": (c.p_value(alpha) or (None,))[0], "regressions": c.regressions,
             "doubts": c.doubts, "improvements": c.improvements} for c in changes]
