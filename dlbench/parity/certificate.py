"""Re-synchronised parity: the certificate that a backend computes the same
training step as the reference, which chaos cannot fool.

Two free-running float32 trainings part exponentially (a one-ulp change of a
weight reaches 1e-3 within tens of Adam steps), so comparing whole runs says
little once they have parted, and a tolerance wide enough for that drift lets
a wrong backend pass. Instead the backend is *re-synchronised* with the
reference at checkpoints spread over the whole run:

1. While the reference trains (untimed, between timed windows), its full
   training state (parameters, moving statistics, optimizer slots, step) is
   taken at up to ``CHECKPOINTS`` steps spread evenly from step 0 to the last
   step with room for a segment (:func:`checkpoint_steps`): any run of at
   least ``SEGMENT_STEPS`` steps has a checkpoint.
2. From each state the reference runs a segment of ``SEGMENT_STEPS`` of the
   core's batches three times: in float32 (the reference itself), in
   float64 (exact arithmetic, near enough), in float32 with every matmul,
   batch sum and BatchNorm statistic summed in the opposite order (and a
   max-pool's exactly tied maximum routed to the last offset) and in float32
   with each of those sums cut into 3, 4 and 16 blocks summed pairwise (the
   order of a multi-threaded or vectorised kernel: TensorFlow's and XLA's
   reductions, oneDNN's). The reference itself sums long reductions sequentially (a bias
   gradient over batch x positions, 86,528 terms on a 28x28 convnet at batch
   128), which rounds differently from both. How far the twins land from the
   reference is how much float32 rounding alone moves this segment, from
   this state, including the discrete events it causes: a ReLU input within
   rounding of zero, or two maxima of a max-pool window within rounding of
   each other (a digit's blank background gives many), land on the other
   side in one order and not in another. One such near-tie, flipped by
   torch, TensorFlow and JAX alike and by none of the reference's earlier
   twins, moved one conv bias of the keras-io MNIST convnet by 5e-5 of its
   update at a checkpoint (66 times the float64 and reversed twins'
   distance); the 4-block twin flips near-ties of its own and measured 4e-5
   there. Each blocking flips other near-ties: of four such checkpoints
   (the convnet, a 28x28 BatchNorm CNN; torch and JAX, 5x to 24x the earlier
   twins' tolerance) each was covered by one of the three blockings and not
   by the other two, so the tolerance is the farthest of five twins. At mixed precision (bf16, fp16) the
   reference and its twins round every matmul operand to bf16/fp16 alike,
   and two more twins also store in bf16/fp16 what torch autocast and
   Keras's mixed policies keep there (every matmul result, or each layer's
   output once, after its bias, as fused kernels do; bias gradients and the
   gradients between layers in both): the tolerance is then that
   precision's rounding, and "agrees" keeps its meaning. At tf32 a fourth
   twin rounds every matmul operand to TF32 as a GPU's tensor cores do (the
   reference itself stays float32, as tf32 computes on a CPU), so a row that
   used TF32 is within the tolerance and one at fp32 that did is not. The certificate
   cannot tell a backend that silently computes in float32 from one in
   bf16 (their difference is within bf16's rounding); the backends' tests
   check that their reduced precision really rounds.
3. The backend under test loads the same state and runs the same segment.
4. It agrees at a checkpoint when its segment losses and every tensor of its
   parameters and moving statistics at the segment's end are within
   ``TOLERANCE_FACTOR`` times the reference's own float32 rounding of that
   segment (the farther twin), plus a floor of ``FLOOR_ULPS`` float32 ulps
   of the value (for the loss, a batch mean: times log2 of the batch size,
   the bound of a pairwise sum in another order, which the twins, summing
   the mean alike, do not show). Tensors are compared at the 99th percentile
   of their elements' differences (``ELEMENT_QUANTILE``), ours against the
   twins': rounding is not uniform, and a ReLU input within an ulp of zero
   flips side in one implementation and not in another. One such flip in
   synthetic-fcn's 1024-unit first layer moved that unit's bias by 1300
   times the twins' rounding after three steps (torch, 2 threads), and the
   norm of the whole tensor with it, while 99.9% of its elements stayed
   within 0.1 of the tolerance. A wrong constant, gradient or convention
   moves every element: the mutants of the project's tests are caught at
   every checkpoint, far beyond the tolerance. What the quantile cannot
   see is an error confined to under 1% of a tensor's elements (the loss
   still sees it where it changes the loss).
5. A backend agrees when at most :func:`tolerated_failures` of the n
   checkpoints are over their tolerance (a quarter, and at least one from
   two checkpoints on), so one checkpoint where rounding went an unusual way
   decides neither a short run nor a long one; more disagree. A run of one
   segment has one checkpoint: it agrees, disagrees when over 100 times its
   tolerance, and is not judged in between; a run shorter than a segment is
   not judged (:func:`verdict`). The report gives, per checkpoint, the loss
   difference and the worst tensor's difference, both relative to what the
   segment changed, with the tolerance beside them, and the worst
   checkpoint as the row's figure.

A wrong learning rate, epsilon, beta, BatchNorm convention, gradient or loss
reduction changes the very first segment by far more than rounding does; over
three steps chaos has no time to amplify anything. Segments run with dropout
off: what is certified is the maths of forward, backward and update, not a
framework's random masks (those are judged by the outcome distributions).
The free-running trajectories are still compared (:mod:`dlbench.parity.verdict`)
as information: how far the runs drift, and when.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path

import numpy as np

from dlbench.data.batches import BatchPlan
from dlbench.plugin.backend import TrainerOptions, TrainingState
from dlbench.measure.session import Session, prepare
from dlbench.network import Dropout
from dlbench.network.precision import STORAGE_TWINS, is_mixed
from dlbench.network.transformer import map_layers

CHECKPOINTS = 8
SEGMENT_STEPS = 3
TOLERANCE_FACTOR = 10.0
#: a run's only checkpoint, over its tolerance by at most this factor, is not a verdict: honest
#: backends were measured up to 14x at a checkpoint where a near-tie flipped (JAX, the keras-io
#: convnet on Fashion-MNIST), and the mutants' smallest margin was 29x (a loss summed, at step 0,
#: where Adam's first update is the gradient's sign and scales away)
LONE_CHECKPOINT_MARGIN = 100.0
#: the reference's options for itself and its rounding twins (options of the NumPy backend)
TWINS = {"float32": {}, "float64": {"dtype": "float64"}, "reversed": {"summation": "reversed"},
         **{f"blocked{n}": {"summation": f"blocked{n}"} for n in (3, 4, 16)}}
MIXED_TWINS = {**TWINS, **STORAGE_TWINS}
#: at tf32 a twin more, with every matmul operand rounded to TF32 (tensor cores)
TF32_TWINS = {**TWINS, "tf32": {"tf32": True}}
FLOOR_ULPS = 4.0
EPS32 = float(np.finfo(np.float32).eps)
#: tensors are compared at this quantile of their elements' differences (see the module docstring)
ELEMENT_QUANTILE = 0.99


def checkpoint_steps(window_starts: list[int], total_steps: int, n: int = CHECKPOINTS,
                     segment: int = SEGMENT_STEPS) -> list[int]:
    """Up to ``n`` steps spread evenly over the run, the first at step 0, each
    with room for a segment: a run of at least one segment has a checkpoint.
    Where the run has ``n`` window starts with room, they are the ones picked
    (the reference's timed windows stay whole); a shorter run takes its
    checkpoints at any step, and the reference splits its windows there."""
    last = total_steps - segment
    if last < 0:
        return []
    usable = sorted(s for s in set(window_starts) if 0 <= s <= last)
    if len(usable) < n or usable[0] != 0:
        usable = list(range(last + 1))
    picks = np.linspace(0, len(usable) - 1, min(n, len(usable))).round().astype(int)
    return sorted({usable[i] for i in picks})


def tolerated_failures(n: int) -> int:
    """How many of ``n`` checkpoints may be over their tolerance in a backend
    that agrees: a quarter of them, and at least one from two on, so that one
    checkpoint where rounding went an unusual way (a ReLU input or a max-pool
    near-tie on the other side, see the module docstring) decides neither a
    short run nor a long one. A lone checkpoint (a run of exactly one
    segment) must agree; see :func:`verdict` for when it is over."""
    return 0 if n <= 1 else max(1, n // 4)


def verdict(checkpoints: list[dict]) -> tuple[str, str | None]:
    """("agrees" | "disagrees" | "not judged", the reason) from the checkpoints'
    own verdicts, by the k-of-n rule of :func:`tolerated_failures`. No
    checkpoint is no verdict (the run is shorter than a segment); a lone
    checkpoint over its tolerance by less than ``LONE_CHECKPOINT_MARGIN`` is
    not one either (the rule would let one borderline checkpoint decide)."""
    n = len(checkpoints)
    failing = [c for c in checkpoints if not c["agrees"]]
    if n == 0:
        return "not judged", f"too short: fewer than {SEGMENT_STEPS} steps, no checkpoint"
    if len(failing) <= tolerated_failures(n):
        return "agrees", None
    if n == 1 and failing[0]["margin"] <= LONE_CHECKPOINT_MARGIN:
        return "not judged", (f"too short: one checkpoint, {failing[0]['margin']:.2g}x its tolerance "
                              f"(run {SEGMENT_STEPS + 1} steps or more for a verdict)")
    return "disagrees", f"{n - len(failing)}/{n} checkpoints within rounding"


def segment_batches(plan: BatchPlan, first_step: int, steps: int) -> list[np.ndarray]:
    """The core's batches of steps ``first_step .. first_step + steps - 1``, as
    (k, batch) arrays of equal batch size, in order."""
    groups, end = [], first_step + steps
    for window in plan.windows(max_window_steps=10**9):
        lo, hi = max(first_step, window.first_step), min(end, window.first_step + window.steps)
        if lo < hi:
            groups.append(window.indices[lo - window.first_step:hi - window.first_step])
        if window.first_step + window.steps >= end:
            break
    return groups


def without_dropout(spec):
    """The spec with every dropout rate at 0 (the segments certify the maths, not the masks)."""
    if not spec.has_dropout:
        return spec
    layers = map_layers(spec.layers, lambda layer: dataclasses.replace(layer, rate=0.0)
                        if isinstance(layer, Dropout) else layer)
    return dataclasses.replace(spec, layers=layers)


def twins_for(precision: str) -> dict[str, dict]:
    """The reference's twins at ``precision``: at bf16/fp16 their matmul operands
    are rounded like the reference's, and the tolerance is that precision's
    rounding; at tf32 one of them rounds its operands to TF32."""
    if is_mixed(precision):
        return MIXED_TWINS
    return TF32_TWINS if precision == "tf32" else TWINS


def cell_file(parity_dir: str, scenario: str, overrides: dict) -> Path:
    """Where the reference leaves its checkpoints for one (scenario, settings) cell."""
    key = json.dumps([scenario, overrides], sort_keys=True)
    return Path(parity_dir) / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"


# ------------------------------------------------------------ running segments
class SegmentRunner:
    """One trainer, built once like the run's (without dropout), that runs segments from loaded states."""

    def __init__(self, run: Session, options: TrainerOptions):
        self.plan = run.plan
        self.trainer = prepare(run.backend, without_dropout(run.spec), run.data, run.plan, options,
                               run.weights).trainer

    def run(self, state: TrainingState, first_step: int) -> tuple[np.ndarray, list]:
        """(segment losses, weights at the segment's end, in the trainer's precision)."""
        self.trainer.load_state(state.copy())
        losses = [self.trainer.train(group) for group in segment_batches(self.plan, first_step, SEGMENT_STEPS)]
        return np.concatenate([np.asarray(x, np.float64) for x in losses]), self.trainer.weights()


def reference_checkpoints(run: Session, states: dict[int, TrainingState], path: Path) -> None:
    """Run each checkpoint's segment on the reference (``run``'s backend) in
    float32 and as each of its twins, and store states and results in
    ``path`` for the other backends' workers."""
    runners = {twin: SegmentRunner(run, dataclasses.replace(run.options, extra={**run.options.extra, **extra}))
               for twin, extra in twins_for(run.options.precision).items()}
    arrays: dict[str, np.ndarray] = {}
    for step, state in sorted(states.items()):
        _put_state(arrays, f"{step}/state", state)
        for twin, runner in runners.items():
            losses, end = runner.run(state, step)
            arrays[f"{step}/{twin}/losses"] = losses
            _put_weights(arrays, f"{step}/{twin}/weights", end, np.float64)
    arrays["steps"] = np.array(sorted(states), np.int64)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def certify(run: Session, path: Path) -> dict:
    """``run``'s backend's verdict at every checkpoint the reference left in ``path``."""
    with np.load(path, allow_pickle=False) as archive:
        stored = {k: archive[k] for k in archive.files}
    runner = SegmentRunner(run, run.options)
    checkpoints = []
    for step in stored["steps"].tolist():
        state = _get_state(stored, f"{step}/state")
        losses, end = runner.run(state, step)
        twins = [(stored[f"{step}/{t}/losses"], _get_weights(stored, f"{step}/{t}/weights"))
                 for t in twins_for(run.options.precision) if t != "float32"]
        checkpoints.append({"step": step, **judge(
            losses, end, stored[f"{step}/float32/losses"], _get_weights(stored, f"{step}/float32/weights"),
            twins, state.weights, run.plan.batch_size)})
    worst = max(checkpoints, key=lambda c: c["margin"], default=None)
    agreeing = sum(1 for c in checkpoints if c["agrees"])
    value, reason = verdict(checkpoints)
    return {"verdict": value, "reason": reason, "agrees": None if value == "not judged" else value == "agrees",
            "checkpoints": checkpoints, "agreeing": agreeing, "worst": worst, "segment_steps": SEGMENT_STEPS,
            "tolerance_factor": TOLERANCE_FACTOR, "tolerated_failures": tolerated_failures(len(checkpoints))}


# ------------------------------------------------------------------- the judge
def judge(losses, weights, ref32_losses, ref32_weights, twins, start_weights, batch_size: int = 1) -> dict:
    """One checkpoint's verdict against the reference's float32 segment, with
    the tolerance from ``twins`` ([(losses, weights)], the reference's rounding
    twins); differences are reported relative to what the segment changed
    (the loss, or the tensor's update), tolerances likewise."""
    losses, ref32_losses = np.asarray(losses, np.float64), np.asarray(ref32_losses, np.float64)
    if losses.shape != ref32_losses.shape or not np.all(np.isfinite(losses)):
        return {"agrees": False, "margin": float("inf"), "loss_diff": None, "loss_tol": None,
                "tensor": None, "tensor_diff": None, "tensor_tol": None}
    scale = max(float(np.max(np.abs(ref32_losses))), 1e-12)
    loss_diff = float(np.max(np.abs(losses - ref32_losses)))
    # a batch mean summed in another order moves by up to ~log2(batch) ulps (pairwise summation's bound)
    loss_tol = _tolerance(max(float(np.max(np.abs(np.asarray(t) - ref32_losses))) for t, _ in twins),
                          scale * max(1.0, math.log2(batch_size)))
    margins = {"loss": loss_diff / loss_tol}
    details = {}
    for i, (ours, r32, start) in enumerate(zip(weights, ref32_weights, start_weights)):
        for name in r32:
            b = np.asarray(r32[name], np.float64)
            diff = _spread(np.asarray(ours[name], np.float64) - b)
            rounding = max(_spread(np.asarray(tw[i][name], np.float64) - b) for _, tw in twins)
            tol = _tolerance(rounding, _spread(b))
            update = max(_spread(b - np.asarray(start[name], np.float64)), 1e-30)
            key = f"layers[{i}].{name}"
            margins[key] = diff / tol
            details[key] = (diff / update, tol / update)
    worst = max((k for k in margins if k != "loss"), key=margins.get, default=None)
    margin = max(margins.values())
    return {"agrees": margin <= 1.0, "margin": margin, "loss_diff": loss_diff / scale, "loss_tol": loss_tol / scale,
            "tensor": worst, "tensor_diff": details[worst][0] if worst else None,
            "tensor_tol": details[worst][1] if worst else None}


def _spread(values: np.ndarray) -> float:
    """How large a tensor's elements are, at :data:`ELEMENT_QUANTILE` of their magnitudes."""
    return float(np.quantile(np.abs(values), ELEMENT_QUANTILE)) if values.size else 0.0


def _tolerance(rounding: float, magnitude: float) -> float:
    return TOLERANCE_FACTOR * rounding + FLOOR_ULPS * EPS32 * magnitude + 1e-30


# ------------------------------------------------- states in a pickle-free npz
def _put_weights(arrays: dict, prefix: str, weights: list, dtype=np.float32) -> None:
    for i, layer in enumerate(weights):
        arrays[f"{prefix}/{i}/#"] = np.zeros(0)  # keeps layers without parameters
        for name, value in layer.items():
            arrays[f"{prefix}/{i}/{name}"] = np.asarray(value, dtype)


def _get_weights(arrays: dict, prefix: str) -> list:
    layers: dict[int, dict] = {}
    for key, value in arrays.items():
        if key.startswith(prefix + "/"):
            index, name = key[len(prefix) + 1:].split("/", 1)
            layer = layers.setdefault(int(index), {})
            if name != "#":
                layer[name] = value
    return [layers[i] for i in sorted(layers)]


def _put_state(arrays: dict, prefix: str, state: TrainingState) -> None:
    _put_weights(arrays, f"{prefix}/weights", state.weights)
    for i, layer in enumerate(state.slots):
        arrays[f"{prefix}/slots/{i}/#"] = np.zeros(0)
        for param, slots in layer.items():
            arrays[f"{prefix}/slots/{i}/{param}/#"] = np.zeros(0)
            for name, value in slots.items():
                arrays[f"{prefix}/slots/{i}/{param}/{name}"] = np.asarray(value, np.float32)
    arrays[f"{prefix}/step"] = np.array(state.step, np.int64)
    if state.loss_scale is not None:
        arrays[f"{prefix}/loss_scale"] = np.array(state.loss_scale, np.float64)


def _get_state(arrays: dict, prefix: str) -> TrainingState:
    slots: dict[int, dict] = {}
    root = f"{prefix}/slots/"
    for key, value in arrays.items():
        if key.startswith(root):
            parts = key[len(root):].split("/")
            layer = slots.setdefault(int(parts[0]), {})
            if len(parts) >= 2 and parts[1] != "#":
                param = layer.setdefault(parts[1], {})
                if len(parts) == 3 and parts[2] != "#":
                    param[parts[2]] = value
    scale = arrays.get(f"{prefix}/loss_scale")
    return TrainingState(_get_weights(arrays, f"{prefix}/weights"), [slots[i] for i in sorted(slots)],
                         int(arrays[f"{prefix}/step"]),
                         None if scale is None else (float(scale[0]), int(scale[1])))
