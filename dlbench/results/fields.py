"""The fields of a result document, each with its type and range, checked on read.

A document is a file anyone can edit (by hand, by a script, by an attacker),
and every reader (report, compare, history, ``--resume``, ``dlbench.load``)
uses what it holds: a metric that is a string, settings that are a list or
a repeat count of ``"2"`` would end in a traceback somewhere deep in a
renderer or halfway through a resumed run. So every field a reader uses is
declared here and checked once, when the document is read, before anything
uses it; the first field that is wrong becomes one :class:`InputError`
naming it, what it holds and what is allowed. Keys not declared here
(a newer minor field, a plugin's own metric) are kept as they are.

Each check is a function ``check(value, where)`` that raises
:class:`Mismatch` with the place (``results[2].metrics.samples_per_sec``)
and what was expected.
"""

from __future__ import annotations

import math
from typing import Any, Callable

Check = Callable[[Any, str], None]

#: the choices the run's own modules define (tests keep these equal to theirs)
DEVICES = ("cpu", "gpu", "auto")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
MODES = ("train", "inference", "both")
ISOLATIONS = ("process", "in-process")
SCALINGS = ("strong", "weak")
EXECUTORS = ("local", "slurm")


class Mismatch(Exception):
    """The first wrong field: where it is and what was expected of it."""

    def __init__(self, where: str, expected: str, value: Any = None, unknown: bool = False):
        self.where = where
        super().__init__(f"{where}: unknown key; {expected}" if unknown else
                         f"{where}: expected {expected}, got {shown(value)}")


def shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def kind(expected: str, test: Callable[[Any], bool]) -> Check:
    def check(value, where):
        if not test(value):
            raise Mismatch(where, expected, value)

    check.expected = expected
    return check


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


STRING = kind("a string", lambda v: isinstance(v, str))
BOOL = kind("true or false", lambda v: isinstance(v, bool))
NUMBER = kind("a finite number", _number)
POSITIVE = kind("a number > 0", lambda v: _number(v) and v > 0)
COUNT = kind("a positive integer", lambda v: _integer(v) and v > 0)
INDEX = kind("a non-negative integer", lambda v: _integer(v) and v >= 0)
PORT = kind("a port number 0..65535", lambda v: _integer(v) and 0 <= v <= 65535)
OBJECT = kind("an object", lambda v: isinstance(v, dict))
SCALAR = kind("a string, number, true/false or null",
              lambda v: v is None or isinstance(v, (str, bool)) or _number(v))


def optional(check: Check) -> Check:
    def nullable(value, where):
        if value is None:
            return
        try:
            check(value, where)
        except Mismatch as wrong:
            if wrong.where != where:  # inside the value: that field's own expectation
                raise
            raise Mismatch(where, nullable.expected, value) from None

    nullable.expected = f"{check.expected} or null"
    return nullable


def one_of(choices) -> Check:
    return kind("one of " + ", ".join(choices), lambda v: isinstance(v, str) and v in choices)


def list_of(check: Check, expected: str | None = None) -> Check:
    expected = expected or f"a list, each {check.expected}"

    def checked(value, where):
        if not isinstance(value, list):
            raise Mismatch(where, expected, value)
        for i, item in enumerate(value):
            check(item, f"{where}[{i}]")

    checked.expected = expected
    return checked


def dict_of(check: Check, expected: str | None = None) -> Check:
    expected = expected or f"an object, each value {check.expected}"

    def checked(value, where):
        if not isinstance(value, dict):
            raise Mismatch(where, expected, value)
        for key, item in value.items():
            check(item, inside(where, key))

    checked.expected = expected
    return checked


def fields(declared: dict[str, Check], strict: bool = False, expected: str = "an object") -> Check:
    """An object whose declared keys hold what they declare (others are kept,
    unless ``strict``: then a key not declared is refused)."""
    def checked(value, where):
        if not isinstance(value, dict):
            raise Mismatch(where, expected, value)
        for key, item in value.items():
            if key in declared:
                declared[key](item, inside(where, key))
            elif strict:
                raise Mismatch(inside(where, key), f"expected one of {', '.join(declared)}", unknown=True)

    checked.expected, checked.declared = expected, declared
    return checked


def inside(where: str, key: str) -> str:
    return f"{where}.{key}" if where else str(key)


# ------------------------------------------------------------------ environment
ENVIRONMENT = fields({
    **{key: optional(STRING) for key in ("dlbench", "git_commit", "python", "os", "machine", "hostname", "cpu",
                                         "openblas_coretype")},
    **{key: optional(COUNT) for key in ("physical_cores", "logical_cores", "available_cores")},
    "memory_gib": optional(NUMBER),
    # null where a reader takes it for empty (as older documents may hold)
    "gpus": optional(list_of(STRING, "a list of strings")),
    "blas": optional(list_of(dict_of(SCALAR))),
    "versions": optional(dict_of(optional(STRING))),
    **{key: optional(dict_of(optional(NUMBER))) for key in ("peak_gflops", "peak_gflops_bfloat16",
                                                            "peak_gflops_float16")},
})

# ------------------------------------------------------------------ settings
OVERRIDES = fields({"epochs": COUNT, "max_steps": COUNT, "batch_size": COUNT, "seed": INDEX}, strict=True)
SWEEP = fields({"batch_size": list_of(COUNT), "threads": list_of(COUNT), "seed": list_of(INDEX),
                "precision": list_of(one_of(PRECISIONS)), "data_parallel": list_of(COUNT)}, strict=True)
NAMES_TO_TEXT = dict_of(STRING, "an object of names to strings")

SETTINGS = fields({
    "scenarios": dict_of(STRING, "an object of scenario names to shipped names or .toml files"),
    "backends": list_of(STRING, "a list of backend names"),
    "overrides": OVERRIDES,
    "device": one_of(DEVICES),
    "threads": COUNT,
    "repeat": COUNT,
    "timeout": optional(POSITIVE),
    "precision": one_of(PRECISIONS),
    "deterministic": BOOL,
    "backend_options": dict_of(dict_of(SCALAR)),
    "sweep": SWEEP,
    "isolation": one_of(ISOLATIONS),
    "max_memory_mib": optional(COUNT),
    "scenario_digests": NAMES_TO_TEXT,
    "scenario_descriptions": NAMES_TO_TEXT,
    "sources": NAMES_TO_TEXT,
    "weights_files": NAMES_TO_TEXT,
    "mode": one_of(MODES),
    "inference_batch_sizes": list_of(COUNT),
    "inference_calls": optional(COUNT),
    "data_parallel": COUNT,
    "scaling": one_of(SCALINGS),
    "sync_batchnorm": BOOL,
    "hosts": list_of(STRING, "a list of host names"),
    "node_rank": INDEX,
    "coordinator_port": PORT,
    "executor": one_of(EXECUTORS),
    "slurm_partition": optional(STRING),
    "slurm_gpus_per_job": optional(COUNT),
    "slurm_time": optional(COUNT),
})

# ------------------------------------------------------------------ rows
NUMBER_METRICS = ("samples_per_sec", "samples_per_sec_overall", "test_accuracy", "test_loss", "final_loss",
                  "compile_seconds", "train_seconds", "build_seconds", "placement_seconds", "eval_seconds",
                  "time_to_accuracy", "gflops_per_sec", "peak_rss_mib", "peak_device_mib", "certificate_seconds",
                  "wall_seconds", "peak_fraction", "tokens_per_sec", "samples_per_sec_per_replica",
                  "test_perplexity", "loss_scale", "test_r2")
COUNT_METRICS = ("steps", "test_samples", "batch_size", "flops_per_step", "loss_history_every",
                 "tokens_per_sample", "skipped_steps")
SERIES_METRICS = ("window_samples_per_sec", "loss_history", "samples_per_sec_samples", "compile_seconds_samples",
                  "wall_seconds_samples")

#: one entry of ``metrics["inference"]`` (its batch size, calls and latencies: :func:`dlbench.results.schema.check_inference`)
INFERENCE_ENTRY = fields({
    **{key: optional(NUMBER) for key in ("samples_per_sec", "compile_seconds", "tokens_per_sec")},
    **{key: optional(COUNT) for key in ("repeats", "tokens_per_sample")},
    **{key: list_of(optional(NUMBER)) for key in ("p99_ci95_ms", "latency_samples_ms", "compile_seconds_samples",
                                                  "p50_per_repeat_ms")},
})

METRICS = fields({
    **{key: optional(NUMBER) for key in NUMBER_METRICS},
    **{key: optional(INDEX) for key in COUNT_METRICS},
    **{key: list_of(optional(NUMBER)) for key in SERIES_METRICS},
    "samples_per_sec_stats": dict_of(optional(NUMBER)),
    "unstable": BOOL,
    "certificate_error": STRING,
    "inference_error": STRING,
    "certificate": optional(OBJECT),
    "inference": list_of(INFERENCE_ENTRY, "a list of inference entries"),
    "inference_outputs": optional(fields({"agrees": optional(BOOL), "max_rel_diff": optional(NUMBER),
                                          "tolerance": optional(NUMBER)})),
})

PARITY = fields({
    "agrees": optional(BOOL), "kind": optional(STRING), "reference": optional(STRING), "reason": optional(STRING),
    **{key: optional(INDEX) for key in ("checkpoints", "checkpoints_agreeing", "first_step_over", "worst_checkpoint")},
    **{key: optional(NUMBER) for key in ("horizon", "accuracy_diff", "max_rel_loss_diff", "worst_tensor_diff",
                                         "worst_tensor_tol", "worst_margin", "worst_loss_diff", "worst_loss_tol")},
})

DISTRIBUTED = fields({
    "engine": optional(STRING), "collective": optional(STRING), "batchnorm": optional(STRING),
    "scaling": optional(STRING), "world_size": optional(COUNT), "threads_per_replica": optional(COUNT),
    "communication_seconds_per_step": optional(NUMBER),
})

ROW = fields({
    **{key: optional(STRING) for key in ("error", "traceback", "device", "precision", "backend_version")},
    "threads": optional(INDEX),
    "repeats": COUNT,
    "stochastic": BOOL,
    "sweep_point": dict_of(SCALAR),
    "parity": optional(PARITY),
    "distributed": optional(DISTRIBUTED),
    "metrics": METRICS,
})

DOCUMENT = fields({
    "created": optional(STRING),
    "command": list_of(STRING, "a list of strings (the command's words)"),
    "path": optional(STRING),
    "environment": ENVIRONMENT,
    "settings": SETTINGS,
    "executor": OBJECT,
    "machines": dict_of(ENVIRONMENT),
})
