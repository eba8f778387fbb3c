"""One (scenario, backend) run, executed where the runner put it: normally a
fresh process (``python -m dlbench.run.worker REQUEST.json RESULT.json``) whose
thread settings were fixed in its environment before any framework import.
"""

from __future__ import annotations

import math
import resource
import sys
import time
import traceback
from pathlib import Path

from dlbench.errors import InputError
from dlbench.plugin.manager import get_plugins
from dlbench.results.document import write_document
from dlbench.parity import certificate, verdict as parity
from dlbench.plugin import distributed
from dlbench.measure import inference
from dlbench.measure.session import prepare_scenario
from dlbench.run.row import base_row, failed_row, training_metrics
from dlbench.run.settings import RunRequest
from dlbench.measure.timing import train_and_measure, window_starts
from dlbench.scenario import resolve_scenario
from dlbench.network.init import load_weights
from dlbench.network.precision import scales_loss
from dlbench.network.sequence import sequence_length

__all__ = ["RunRequest", "execute", "main"]


def data_parallel_unavailable(request: RunRequest, backend, device: str, spec) -> str | None:
    """Why ``backend`` cannot train ``request``'s replicas; None when it can
    (the reference trains at the global batch in one process)."""
    if not request.data_parallel.active or request.is_reference:
        return None
    return backend.data_parallel_unavailable(request.data_parallel, device, spec)


def resolve_device(backend, requested: str) -> str | None:
    """'cpu', or 'gpu' when the backend supports and sees one; None when 'gpu'
    cannot be had. The NumPy reference runs on the CPU whatever is asked: a GPU
    run's rows are judged against it, so it must be there."""
    if requested == "cpu" or parity.is_reference(backend.name):
        return "cpu"
    has_gpu = "gpu" in backend.devices and backend.gpu_name() is not None
    if requested == "auto":
        return "gpu" if has_gpu else "cpu"
    return "gpu" if has_gpu else None


def timed(fn, *args):
    """(fn(*args), seconds it took)."""
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def progress_writer(path: str, total_steps: int):
    """A ``progress(steps)`` that leaves "steps total" in ``path`` for the runner (None without a path)."""
    if not path:
        return None

    def progress(steps: int) -> None:
        Path(path).write_text(f"{steps} {total_steps}")

    return progress


def execute(request: RunRequest) -> dict:
    """Train and measure; every failure becomes the row's status and error."""
    plugins = get_plugins()
    try:
        scenario = resolve_scenario(request.scenario, plugins.scenario_dirs).with_overrides(**request.overrides)
    except InputError as exc:  # the file was removed or broken after the run began
        return failed_row(request, f"the scenario can no longer be read: {exc}")
    request, scenario = request.at_global_batch(scenario)
    row = {**base_row(request), "scenario": scenario.name}
    if request.scenario_digest and scenario.digest != request.scenario_digest:
        return {**row, "error": f"the scenario file {scenario.path} changed after the run began (SHA-256 "
                                f"{scenario.digest}, was {request.scenario_digest}); rerun to train the new version"}
    backend = plugins.backend(request.backend)
    row["backend_version"] = backend.version()
    availability = backend.availability()
    if not availability.available:
        return {**row, "status": "unavailable", "error": availability.reason}
    row["mode"] = request.mode
    if request.mode == "inference" and "inference" not in backend.modes:
        return {**row, "status": "unavailable", "error": f"backend {backend.name!r} cannot run inference"}
    try:
        row["threads"] = backend.configure_threads(request.threads)
        if request.data_parallel.active and not request.is_reference:
            backend.configure_data_parallel(request.data_parallel, request.threads)
        device = resolve_device(backend, request.device)
        if device is None:
            return {**row, "status": "unavailable", "error": f"no GPU visible to {backend.name}"}
        spec, train = scenario.model, scenario.train
        unsupported = (backend.precision_unavailable(request.precision, device, spec)
                       or data_parallel_unavailable(request, backend, device, spec))
        if unsupported:
            return {**row, "status": "unavailable", "error": unsupported}
        weights = load_weights(request.weights_file, spec) if request.weights_file else None
        session = prepare_scenario(scenario, backend, request.trainer_options(device, train.seed),
                                   data_dir=request.data_dir, weights=weights)
        if request.mode == "inference":
            return {**row, "device": session.trainer.device_name, "status": "ok",
                    "metrics": {**inference_row(request, session, plugins),
                                "build_seconds": session.build_seconds,
                                "placement_seconds": session.placement_seconds,
                                "test_samples": len(session.data.x_test), "batch_size": train.batch_size,
                                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}
        trainer, data, plan = session.trainer, session.data, session.plan
        if plan.total_steps == 0:  # refused before the run; a dataset whose metadata said otherwise ends here
            return {**row, "error": f"no training step: {len(data.x_train)} training samples, batch "
                                    f"{plan.batch_size} with drop_last"}
        checkpoints = (set(certificate.checkpoint_steps(window_starts(plan, request.window_steps), plan.total_steps))
                       if request.parity_dir and request.is_reference else set())
        m = train_and_measure(trainer, plan, request.window_steps, train.target_accuracy, checkpoints=checkpoints,
                              progress=progress_writer(request.progress_file, plan.total_steps))
        row["device"] = trainer.device_name
        (test_loss, test_score), eval_seconds = (timed(trainer.evaluate) if m.diverged_at is None
                                                    else ((None, None), 0.0))
    except Exception as exc:  # a failing backend is a result row, never a lost run
        return {**row, "status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=-8)}
    row["metrics"] = training_metrics(m, session, train.batch_size, test_loss, test_score, eval_seconds,
                                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    sps = row["metrics"]["samples_per_sec"]
    row["metrics"].update(sequence_metrics(spec, sps, test_loss))
    data_parallel = request.data_parallel
    if data_parallel.active:
        info = distributed.REFERENCE_INFO if request.is_reference else trainer.distributed()
        row["distributed"] = distributed.distributed_row(info, data_parallel.replicas, row["threads"],
                                                         data_parallel.scaling, data_parallel.sync_batchnorm,
                                                         has_batchnorm(spec))
        world = row["distributed"]["world_size"] or 1  # the reference: one process at the global batch
        row["metrics"]["samples_per_sec_per_replica"] = sps / world if sps else None
    if scales_loss(request.precision):
        row["metrics"].update(loss_scale_metrics(trainer, m.steps))
    if request.parity_dir and m.diverged_at is None:
        row["metrics"].update(certify_row(request, session, scenario, m.states))
    row["stochastic"] = spec.has_dropout
    if request.mode == "both" and m.diverged_at is None:
        row["metrics"].update(both_inference(request, session, plugins, backend))
    if m.diverged_at is not None:
        return {**row, "status": "diverged", "error": f"loss became NaN or infinite at step {m.diverged_at}"}
    return {**row, "status": "ok"}


def sequence_metrics(spec, samples_per_sec: float | None, test_loss: float | None) -> dict:
    """Where the input is a sequence: its length and the throughput in tokens/s
    (samples/s times tokens per sample); for a model with a label per timestep
    (a language model), the test perplexity, exp of the mean token cross-entropy."""
    length = sequence_length(spec)
    if length is None:
        return {}
    metrics = {"tokens_per_sample": length,
               "tokens_per_sec": samples_per_sec * length if samples_per_sec else None}
    if len(spec.output_shape) == 2 and spec.loss == "categorical_crossentropy":
        finite = test_loss is not None and math.isfinite(test_loss) and test_loss < 700
        metrics["test_perplexity"] = math.exp(test_loss) if finite else None
    return metrics


def loss_scale_metrics(trainer, steps: int) -> dict:
    """fp16's dynamic loss scaling: the steps it skipped (inf/NaN gradients; the
    steps run minus the optimizer steps taken) and the scale it ended with;
    nothing for a trainer that does not export its training state."""
    try:
        state = trainer.state()
    except NotImplementedError:
        return {}
    scale = state.loss_scale
    return {"skipped_steps": steps - state.step, "loss_scale": None if scale is None else float(scale[0])}


def certify_row(request: RunRequest, session, scenario, states) -> dict:
    """The reference leaves its checkpoints for the other backends; every other
    backend is judged on them (untimed; see :mod:`dlbench.parity.certificate`).
    A backend that cannot take part (no training state) keeps its row."""
    path = certificate.cell_file(request.parity_dir, scenario.name,
                                 {**request.overrides, "precision": request.precision})
    if per_replica_batchnorm(request, session.spec) and not request.is_reference:
        return {"certificate_error": "per-replica BatchNormalization statistics have no single-process "
                                     "reference; --sync-batchnorm makes the run comparable"}
    start = time.perf_counter()
    try:
        if request.is_reference:
            certificate.reference_checkpoints(session, states, path)
            return {"certificate_seconds": time.perf_counter() - start}
        if not path.exists():
            return {"certificate_error": "the reference left no checkpoints for this cell"}
        verdict = certificate.certify(session, path)
        return {"certificate": verdict, "certificate_seconds": time.perf_counter() - start}
    except Exception as exc:  # the free-run comparison still stands beside the missing certificate
        return {"certificate_error": f"{type(exc).__name__}: {exc}"}


def has_batchnorm(spec) -> bool:
    from dlbench.network import BatchNormalization
    from dlbench.network.transformer import nested_layers

    return any(isinstance(layer, BatchNormalization) for layer in nested_layers(spec.layers))


def per_replica_batchnorm(request: RunRequest, spec) -> bool:
    """Whether replicas normalise over their own slices, which the reference (one batch) does not."""
    return request.data_parallel.active and not request.data_parallel.sync_batchnorm and has_batchnorm(spec)


def inference_row(request: RunRequest, session, plugins) -> dict:
    """Latencies and the outputs' verdict from the weights the trainer holds (see :mod:`dlbench.measure.inference`)."""
    return inference.inference_metrics(session, request.inference_batch_sizes, request.inference_calls,
                                       plugins.backend(parity.REFERENCE_BACKEND))


def both_inference(request: RunRequest, session, plugins, backend) -> dict:
    """Inference after training, from the trained weights; a backend that cannot
    (or fails to) keeps its training row, with the reason."""
    if "inference" not in backend.modes:
        return {"inference_error": f"backend {backend.name!r} cannot run inference"}
    try:
        return inference_row(request, session, plugins)
    except Exception as exc:  # the training measurement still stands
        return {"inference_error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    request_path, result_path = (argv or sys.argv[1:])[:2]
    with open(request_path, encoding="utf-8") as f:
        request = RunRequest.from_json(f.read())
    row = execute(request)
    # under a multi-process launch every replica runs this; the host's first speaks for them
    if get_plugins().backend(request.backend).process_rank() == 0:
        write_document(row, Path(result_path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
