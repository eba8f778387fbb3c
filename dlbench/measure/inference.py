"""Inference, measured the way its users quote it (MLPerf's SingleStream and
Offline, TorchBench's eval mode): latency percentiles per batch size,
throughput, compile time apart, and the outputs compared with the reference.

Per inference batch size ``b`` the core calls :meth:`Trainer.predict` on
batches of test-set indices, each call on its own clock (``predict`` returns
host values, so every call is synchronized):

* the first call alone: ``compile_seconds`` (tracing, XLA, torch.compile);
* ``WARMUP_CALLS`` untimed calls (caches, allocator, branch predictors);
* ``calls`` timed calls: as many as fit ``TIME_BUDGET_SECONDS`` at the
  warm-up's speed, at least ``MIN_CALLS`` and at most ``MAX_CALLS``
  (or exactly ``calls`` when the run asks for a number).

Batch ``k`` holds the test rows ``k*b, k*b + 1, ...`` (modulo the test set):
every backend predicts the same samples in the same order. Latency p50, p90,
p99 and the mean are in milliseconds; samples/s is ``b * calls / (sum of the
latencies)``. The raw per-call latencies are kept for ``dlbench compare``.

How much a p99 of N calls says: the distribution-free interval of a
quantile is between two order statistics, their ranks from the binomial
distribution of how many calls fall below the true p99 (B ~ Binomial(N,
0.99)). With the cap of 1000 calls the 95% interval is between the 983rd
and 997th fastest call (the true p99 lies between the sample's p98.3 and
p99.7); an upper end exists from 368 calls on (the slowest call, once
0.99^N <= 2.5%); with
fewer (300 calls: from the 293rd fastest up, 50 calls: from the 48th) only
the lower end is known, the p99 may lie beyond the slowest call. Each
entry stores this interval (``p99_ci95_ms``, the upper end None when it is
beyond the slowest call).

Identical outputs (:func:`output_agreement`): the logits of the whole test
set, predicted in batches of the largest inference batch size (so compiled
backends compile nothing new), are compared with those of the NumPy
reference computed in float64 from the same weights. For output row ``i``
the norm-wise relative difference is ``max_j |z_ij - r_ij| / max_j |r_ij|``;
``max_rel_diff`` is its largest value over the test set. The tolerance comes
from float32 rounding, as the training certificate's does: the reference's
own float32 forward pass and its reversed-summation twin land at some
distance ``rounding`` from float64 (the same measure); a backend agrees when
``max_rel_diff <= ROUNDING_FACTOR * rounding`` (with a floor of
``FLOOR_ULPS`` float32 ulps, for networks float32 computes exactly). A
backend that skips a BatchNormalization, applies dropout or uses other
weights moves the logits by orders of magnitude more and disagrees.

At bf16/fp16 the reference, its exact yardstick and its twins all compute
the run's precision (matmul operands rounded; the yardstick accumulating in
float64), and the certificate's two storage twins keep in bf16/fp16 what the
frameworks keep there: the tolerance is that precision's rounding.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from dlbench.errors import InputError
from dlbench.network.precision import STORAGE_TWINS, is_mixed
from dlbench.network.sequence import sequence_length

WARMUP_CALLS = 10
MIN_CALLS = 50
MAX_CALLS = 1000
TIME_BUDGET_SECONDS = 2.0
ROUNDING_FACTOR = 10.0
FLOOR_ULPS = 8
FLOAT32_EPS = float(np.finfo(np.float32).eps)
#: the reference's options for its float32 twins (options of the NumPy backend); float64 is the yardstick
TWINS = {"float32": {}, "reversed": {"summation": "reversed"}}
#: at bf16/fp16 the certificate's two twins more, storing in bf16/fp16 what the frameworks keep there
MIXED_TWINS = {**TWINS, **STORAGE_TWINS}
EXACT = {"dtype": "float64"}


def parse_batch_sizes(text: str | None) -> list[int]:
    """'1,32,256' -> [1, 32, 256]; None or '' -> [] (the default: 1 and the scenario's batch size)."""
    if not text:
        return []
    try:
        sizes = [int(part) for part in str(text).split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise InputError(f"{text!r}: expected positive integers, e.g. 1,32,256", field="--inference-batch-size")
    return list(dict.fromkeys(sizes))


def batch_sizes_for(requested: list[int], scenario_batch_size: int) -> list[int]:
    """The batch sizes to measure: those requested, else 1 and the scenario's batch size."""
    return list(requested) or list(dict.fromkeys([1, scenario_batch_size]))


def batch_rows(n_test: int, batch_size: int, k: int) -> np.ndarray:
    """The ``k``-th batch: test rows ``k*b ... k*b + b - 1``, modulo the test set."""
    return (np.arange(batch_size, dtype=np.int64) + k * batch_size) % n_test


def percentile_interval(samples: list[float], q: float = 0.99, confidence: float = 0.95) -> tuple:
    """(low, high): the distribution-free ``confidence`` interval of the ``q``
    quantile, between order statistics whose ranks come from Binomial(N, q);
    ``high`` is None when the interval reaches beyond the largest sample."""
    ordered, n = sorted(samples), len(samples)
    if n == 0:
        return None, None
    tail = (1 - confidence) / 2
    cdf, total, low, high = 0.0, [], None, None
    for k in range(n + 1):  # cdf after the loop body: P(B <= k)
        cdf += math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                        + k * math.log(q) + (n - k) * math.log1p(-q))
        total.append(cdf)
    # X_(l) <= true quantile with probability P(B >= l); take the largest l with P(B <= l - 1) <= tail
    low = max((l for l in range(1, n + 1) if total[l - 1] <= tail), default=1)
    # X_(u) >= true quantile with probability P(B <= u - 1); the smallest u with P(B >= u) <= tail
    high = next((u for u in range(1, n + 1) if 1 - total[u - 1] <= tail), None)
    return ordered[low - 1], None if high is None else ordered[high - 1]


def latency_entry(batch_size: int, latencies_ms: list[float], compile_seconds: float) -> dict:
    """One ``metrics["inference"]`` entry from the raw per-call latencies."""
    p50, p90, p99 = np.percentile(latencies_ms, [50, 90, 99]).tolist()
    total_seconds = sum(latencies_ms) / 1e3
    low, high = percentile_interval(latencies_ms)
    return {"batch_size": batch_size,
            "latency_ms": {"p50": p50, "p90": p90, "p99": p99, "mean": float(np.mean(latencies_ms))},
            "samples_per_sec": batch_size * len(latencies_ms) / total_seconds if total_seconds > 0 else None,
            "compile_seconds": compile_seconds, "calls": len(latencies_ms), "p99_ci95_ms": [low, high],
            "latency_samples_ms": latencies_ms}


def measure_batch_size(predict: Callable[[np.ndarray], np.ndarray], n_test: int, batch_size: int,
                       calls: int | None = None, clock=time.perf_counter) -> dict:
    """First call, warm-up and timed calls of ``predict`` at ``batch_size`` (see the module docstring)."""
    k = 0

    def timed_call() -> float:
        nonlocal k
        rows = batch_rows(n_test, batch_size, k)
        k += 1
        start = clock()
        predict(rows)
        return clock() - start

    compile_seconds = timed_call()
    warmup = [timed_call() for _ in range(WARMUP_CALLS)]
    if calls is None:
        per_call = max(float(np.median(warmup)), 1e-7)
        calls = int(min(MAX_CALLS, max(MIN_CALLS, TIME_BUDGET_SECONDS // per_call)))
    latencies_ms = [timed_call() * 1e3 for _ in range(calls)]
    return latency_entry(batch_size, latencies_ms, compile_seconds)


def with_tokens(entries: list[dict], tokens_per_sample: int | None) -> list[dict]:
    """Where the input is a sequence, each entry's throughput also in tokens/s
    (samples/s times tokens per sample), as training reports it."""
    if tokens_per_sample is None:
        return entries
    return [{**e, "tokens_per_sample": tokens_per_sample,
             "tokens_per_sec": e["samples_per_sec"] * tokens_per_sample if e["samples_per_sec"] else None}
            for e in entries]


def pool_repeats(entry_lists: list[list[dict]]) -> list[dict]:
    """One entry per batch size from the repetitions' entries (fresh processes):
    the per-call latencies pooled, the percentiles and samples/s taken over the
    pool, the compile time the median over repetitions (each one kept)."""
    pooled = []
    for entries in zip(*entry_lists):
        latencies = [ms for e in entries for ms in e["latency_samples_ms"]]
        compiles = [e["compile_seconds"] for e in entries]
        entry = latency_entry(entries[0]["batch_size"], latencies, float(np.median(compiles)))
        pooled.append({**entry, "repeats": len(entries), "compile_seconds_samples": compiles,
                       "p50_per_repeat_ms": [e["latency_ms"]["p50"] for e in entries]})
    return with_tokens(pooled, entry_lists[0][0].get("tokens_per_sample"))


def measure(predict: Callable[[np.ndarray], np.ndarray], n_test: int, batch_sizes: list[int],
            calls: int | None = None) -> list[dict]:
    """One entry per batch size, in the order given."""
    return [measure_batch_size(predict, n_test, b, calls) for b in batch_sizes]


def test_set_logits(predict: Callable[[np.ndarray], np.ndarray], n_test: int, chunk: int) -> np.ndarray:
    """The logits of the whole test set, in calls of ``chunk`` rows (the last
    one padded by wrapping around and trimmed), as float64."""
    parts = [np.asarray(predict(batch_rows(n_test, chunk, k)), np.float64)
             for k in range(math.ceil(n_test / chunk))]
    return np.concatenate(parts)[:n_test]


def rel_diff(ours: np.ndarray, exact: np.ndarray) -> tuple[float, int]:
    """(largest norm-wise relative difference over the rows, its row):
    ``max_j |a_ij - b_ij| / max_j |b_ij|`` per row ``i`` (a sample; the logits
    of a sequence model, (samples, steps, units), count as one row per sample)."""
    exact = np.asarray(exact, np.float64).reshape(len(exact), -1)
    ours = np.asarray(ours, np.float64).reshape(len(exact), -1)
    scale = np.maximum(np.max(np.abs(exact), axis=1), np.finfo(np.float64).tiny)
    per_row = np.max(np.abs(ours - exact), axis=1) / scale
    if not np.all(np.isfinite(per_row)):
        return math.inf, int(np.argmin(np.isfinite(per_row)))
    worst = int(np.argmax(per_row))
    return float(per_row[worst]), worst


def output_agreement(ours: np.ndarray, exact: np.ndarray, twins: dict[str, np.ndarray], reference: str) -> dict:
    """Judge ``ours`` (test-set logits) against the float64 ``exact`` ones,
    with the tolerance of the reference's float32 ``twins`` (see the module docstring)."""
    if np.shape(ours) != np.shape(exact):
        return {"reference": reference, "agrees": False, "max_rel_diff": None, "tolerance": None,
                "reason": f"logits of shape {np.shape(ours)}, the reference's are {np.shape(exact)}"}
    diff, row = rel_diff(ours, exact)
    rounding = max(rel_diff(twin, exact)[0] for twin in twins.values())
    tolerance = max(ROUNDING_FACTOR * rounding, FLOOR_ULPS * FLOAT32_EPS)
    return {"reference": reference, "agrees": bool(diff <= tolerance),
            "max_rel_diff": diff if math.isfinite(diff) else None, "worst_row": row,
            "rounding": rounding, "tolerance": tolerance, "rows": int(len(exact))}


def reference_logits(reference, session, weights, extra: dict) -> np.ndarray:
    """The test-set logits of ``reference`` (the NumPy backend) built from ``weights`` with options ``extra``."""
    from dataclasses import replace

    trainer = reference.build(session.spec, weights, replace(session.options, extra=extra))
    trainer.place_data(session.data)
    return test_set_logits(trainer.predict, len(session.data.x_test), REFERENCE_CHUNK)


REFERENCE_CHUNK = 1024


def inference_metrics(session, batch_sizes: list[int], calls: int | None, reference) -> dict:
    """The row's inference metrics: one entry per batch size, and the outputs
    judged against ``reference`` from the weights the trainer holds now (the
    initial ones, or the trained ones after training). Untimed but for the calls."""
    start = time.perf_counter()
    trainer, n_test = session.trainer, len(session.data.x_test)
    sizes = batch_sizes_for(batch_sizes, session.plan.batch_size)
    entries = with_tokens(measure(trainer.predict, n_test, sizes, calls), sequence_length(session.spec))
    ours = test_set_logits(trainer.predict, n_test, max(sizes))
    weights = trainer.weights()
    exact = reference_logits(reference, session, weights, EXACT)
    twins = {name: reference_logits(reference, session, weights, extra)
             for name, extra in (MIXED_TWINS if is_mixed(session.options.precision) else TWINS).items()}
    return {"inference": entries, "inference_outputs": output_agreement(ours, exact, twins, reference.name),
            "inference_seconds": time.perf_counter() - start}
