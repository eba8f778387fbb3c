"""The TensorFlow backend's data parallel (``tf.distribute.MirroredStrategy``):
two replicas on logical CPU devices take the same steps as one process at the
same global batch (losses and weights within float32 rounding), keep their
copies of every trained variable bit-identical, and are caught when the
all-reduce is averaged wrongly or every replica takes the same slice;
BatchNormalization per replica differs from the single process and
synchronized matches it; training states round-trip, evaluation and
prediction work, and bf16 and fp16 (its loss scale) train.

Logical devices must be made before TensorFlow starts, so everything that
trains runs once, in a fresh process: this file run as a script
(:func:`main`) writes its measurements to an npz, and the tests judge them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.plugin.distributed import DataParallel

HERE = Path(__file__).parent
REPLICAS = 2
#: 44 samples in batches of 8: windows of full batches, then a partial batch of 4 (2 per replica)
N_TRAIN, BATCH, STEPS, WINDOW = 44, 8, 12, 5
RTOL, ATOL = 1e-5, 1e-6
#: the networks compared with one process: (network, data) by name
CASES = ("mlp", "cnn", "lm", "bn-sync")
MUTANTS = ("mean-all-reduce", "local-mean-loss", "same-slice")


# ---------------------------------------------------------------- the fresh process
def main(out: str) -> None:
    """Train every case on 2 replicas and on one process, and save what the tests compare."""
    sys.path[:0] = [str(HERE), str(HERE.parent)]
    from dlbench.plugin.manager import get_plugins

    backend = get_plugins().backends["tensorflow"]
    backend.configure_threads(1)
    backend.configure_data_parallel(DataParallel(REPLICAS), 1)
    results: dict[str, np.ndarray] = {}
    for name in CASES:
        compare_with_one_process(results, name)
    for mutant in MUTANTS:
        train_mutant(results, mutant)
    per_replica_batchnorm(results)
    precisions(results)
    states_evaluation_and_prediction(results)
    refusals(results, backend)
    np.savez(out, **results)


def case(name: str):
    from backend_helpers import toy_data
    from dlbench.plugin.testing.networks import BATCHNORM_CASES, BUILD_CASES, CONV_CASES, classes
    from dlbench.plugin.testing.sequence_networks import SEQUENCE_INFRA_CASES, token_data

    if name == "lm":  # labels per timestep: the loss averages over tokens; an embedding's IndexedSlices gradient
        return SEQUENCE_INFRA_CASES["embedding-dense-per-timestep-adam"][0], token_data(n_train=N_TRAIN)
    spec = {"mlp": BUILD_CASES["relu-softmax-momentum"], "cnn": CONV_CASES["conv2d-same-strided-maxpool"],
            "bn-sync": BATCHNORM_CASES["batchnorm-after-conv2d"],
            "bn-per-replica": BATCHNORM_CASES["batchnorm-after-conv2d"]}[name]
    return spec, toy_data(input_shape=spec.input_shape, n_classes=classes(spec), n_train=N_TRAIN)


def options(replicas: int, sync_batchnorm: bool = False, precision: str = "fp32"):
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.plugin.distributed import DataParallel

    return TrainerOptions(precision=precision, data_parallel=DataParallel(replicas, sync_batchnorm=sync_batchnorm))


def train(name: str, replicas: int, sync_batchnorm: bool = False, precision: str = "fp32"):
    from dlbench.plugin.testing.like_numpy import trained

    spec, data = case(name)
    return trained("tensorflow", spec, data, options(replicas, sync_batchnorm, precision), BATCH, STEPS, WINDOW)


def put_run(results: dict, key: str, trainer, losses) -> None:
    results[f"{key}/losses"] = losses
    for i, layer in enumerate(trainer.weights()):
        for name, value in layer.items():
            results[f"{key}/weights/{i}/{name}"] = value


def copies_identical(variables) -> bool:
    """Whether every replica's copy of every (mirrored) variable holds the same bits."""
    return all(np.array_equal(copy.numpy(), v.values[0].numpy()) for v in variables for copy in v.values)


def moving_statistics(trainer) -> list:
    return [v for layer in trainer.params for name, v in layer.items() if name.startswith("moving_")]


def put_copies(results: dict, key: str, trainer) -> None:
    slots = [v for variables in trainer.optimizer.slots().values() for v in variables]
    results[f"{key}/identical/trained"] = copies_identical(trainer.variables)
    results[f"{key}/identical/optimizer"] = copies_identical(slots + [trainer.optimizer.t])
    results[f"{key}/identical/moving"] = copies_identical(moving_statistics(trainer))


def compare_with_one_process(results: dict, name: str) -> None:
    sync = name == "bn-sync"
    single, losses = train(name, 1)
    put_run(results, f"{name}/single", single, losses)
    replicated, losses = train(name, REPLICAS, sync_batchnorm=sync)
    put_run(results, f"{name}/replicated", replicated, losses)
    put_copies(results, f"{name}/replicated", replicated)
    results[f"{name}/single/distributed"] = repr(single.distributed())
    results[f"{name}/single/has_strategy"] = single.strategy is not None
    info = replicated.distributed()
    results[f"{name}/replicated/engine"], results[f"{name}/replicated/world_size"] = info["engine"], info["world_size"]
    results[f"{name}/replicated/collective"] = info["collective"]


def train_mutant(results: dict, mutant: str) -> None:
    """The MLP on 2 replicas with one thing wrong, patched in before the trainer traces its window."""
    import tensorflow as tf

    from dlbench.plugin.distributed import replica_slice
    from dlbench_backends.tensorflow import trainer as module

    saved = module.TensorflowTrainer._all_reduce, module.replica_loss, module.replica_parts
    if mutant == "mean-all-reduce":  # the shares of the global mean, averaged instead of summed
        module.TensorflowTrainer._all_reduce = lambda self, grads: tf.distribute.get_replica_context().all_reduce(
            tf.distribute.ReduceOp.MEAN, grads)
    elif mutant == "local-mean-loss":  # each replica's own batch mean, then summed
        module.replica_loss = lambda name, replicas, **options: saved[1](name, 1, **options)
    else:  # every replica takes replica 0's slice
        module.replica_parts = lambda indices, n: np.stack([replica_slice(indices, 0, n)] * n)
    try:
        trainer, losses = train("mlp", REPLICAS)
    finally:
        module.TensorflowTrainer._all_reduce, module.replica_loss, module.replica_parts = saved
    put_run(results, f"mutant/{mutant}", trainer, losses)


def per_replica_batchnorm(results: dict) -> None:
    trainer, losses = train("bn-per-replica", REPLICAS)
    put_run(results, "bn-per-replica/replicated", trainer, losses)
    put_copies(results, "bn-per-replica/replicated", trainer)


def precisions(results: dict) -> None:
    for precision in ("bf16", "fp16"):
        for replicas, key in ((1, "single"), (REPLICAS, "replicated")):
            trainer, losses = train("mlp", replicas, precision=precision)
            put_run(results, f"{precision}/{key}", trainer, losses)
            if precision == "fp16":
                results[f"fp16/{key}/loss_scale"] = np.array(trainer.state().loss_scale)
                results[f"fp16/{key}/step"] = trainer.state().step
        put_copies(results, f"{precision}/replicated", trainer)


def states_evaluation_and_prediction(results: dict) -> None:
    """A replicated trainer's state into another; one process's state into a
    replicated trainer (what the certificate does), then the same window on both."""
    from dlbench.data.batches import BatchPlan

    spec, data = case("cnn")
    plan = BatchPlan(N_TRAIN, BATCH, epochs=100, seed=1, max_steps=3 * WINDOW)  # windows of 5, 1 (partial), 5...
    windows = [w.indices for w in plan.windows(WINDOW)]
    single, _ = train("cnn", 1)
    replicated, _ = train("cnn", REPLICAS)
    fresh, _ = train("cnn", REPLICAS)
    given = replicated.state()
    fresh.load_state(given.copy())
    results["state/round-trip"] = states_equal(given, fresh.state())
    results["state/same-window"] = np.array([replicated.train(windows[0]), fresh.train(windows[0])])
    put_copies(results, "state/loaded", fresh)
    fresh.load_state(single.state())
    results["state/from-one-process"] = np.array([np.concatenate([trainer.train(w) for w in windows[1:3]])
                                                  for trainer in (single, fresh)])
    results["state/evaluate"] = np.array([single.evaluate(), fresh.evaluate()])
    rows = np.arange(len(data.x_test))
    results["state/predict"] = np.array([single.predict(rows), fresh.predict(rows)])


def states_equal(a, b) -> bool:
    same = [np.array_equal(x[k], y[k]) for x, y in zip(a.weights, b.weights) for k in x]
    same += [np.array_equal(x[p][s], y[p][s]) for x, y in zip(a.slots, b.slots) for p in x for s in x[p]]
    return all(same) and a.step == b.step and a.loss_scale == b.loss_scale


def refusals(results: dict, backend) -> None:
    from dlbench_backends.tensorflow import distributed

    backend.configure_data_parallel(DataParallel(REPLICAS), 1)  # the devices it made already: nothing to do
    results["refused/more-devices"] = error_of(
        lambda: backend.configure_data_parallel(DataParallel(REPLICAS + 1), 1))
    results["refused/gpus"] = error_of(lambda: distributed.replica_devices("gpu", REPLICAS))


def error_of(call) -> str:
    try:
        call()
    except RuntimeError as exc:
        return str(exc)
    return ""


# ---------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    backend = require_backend("tensorflow")
    out = tmp_path_factory.mktemp("tf-data-parallel") / "measured.npz"
    env = {**os.environ, **backend.worker_environment(1, "cpu", REPLICAS), "PYTHONPATH": os.pathsep.join(
        filter(None, [str(HERE), str(HERE.parent), os.environ.get("PYTHONPATH", "")]))}
    result = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
    with np.load(out, allow_pickle=False) as archive:
        return {k: archive[k] for k in archive.files}


def run(measured: dict, key: str) -> tuple[np.ndarray, dict]:
    weights = {k.split("/weights/", 1)[1]: v for k, v in measured.items() if k.startswith(f"{key}/weights/")}
    return measured[f"{key}/losses"], weights


def assert_same_run(measured, key, reference, rtol=RTOL, atol=ATOL):
    (losses, weights), (ref_losses, ref_weights) = run(measured, key), run(measured, reference)
    assert losses.shape == ref_losses.shape == (STEPS,)
    np.testing.assert_allclose(losses, ref_losses, rtol=rtol, atol=atol, err_msg=f"{key}: losses")
    assert weights.keys() == ref_weights.keys()
    for name in weights:
        np.testing.assert_allclose(weights[name], ref_weights[name], rtol=10 * rtol, atol=10 * atol,
                                   err_msg=f"{key}: {name}")


def parted(measured, key, reference) -> float:
    """How far a run's losses are from the reference's, relatively, at the worst step."""
    losses, ref_losses = run(measured, key)[0], run(measured, reference)[0]
    return float(np.max(np.abs(losses - ref_losses) / np.abs(ref_losses)))


@pytest.mark.parametrize("name", CASES)
def test_two_replicas_take_the_steps_of_one_process_at_the_global_batch(measured, name):
    assert_same_run(measured, f"{name}/replicated", f"{name}/single")


@pytest.mark.parametrize("name", CASES)
def test_the_replicas_copies_of_the_trained_state_stay_bit_identical(measured, name):
    assert measured[f"{name}/replicated/identical/trained"]
    assert measured[f"{name}/replicated/identical/optimizer"]
    assert measured[f"{name}/replicated/identical/moving"]  # synchronized BatchNorm (bn-sync); vacuous elsewhere


@pytest.mark.parametrize("mutant", MUTANTS)
def test_a_wrong_reduction_or_slicing_is_caught(measured, mutant):
    assert parted(measured, f"mutant/{mutant}", "mlp/single") > 1e-3, mutant


def test_per_replica_batchnorm_differs_and_its_moving_statistics_part(measured):
    # the replicas normalise over their own 4 samples: another step than one process's over 8
    assert parted(measured, "bn-per-replica/replicated", "bn-sync/single") > 1e-3
    assert parted(measured, "bn-sync/replicated", "bn-sync/single") < 1e-5
    assert measured["bn-per-replica/replicated/identical/trained"]
    assert not measured["bn-per-replica/replicated/identical/moving"]  # each copy follows its own slices


def test_the_trainer_names_its_engine_and_a_single_replica_has_none(measured):
    assert str(measured["mlp/replicated/engine"]) == "tf.distribute.MirroredStrategy"
    assert int(measured["mlp/replicated/world_size"]) == REPLICAS
    assert str(measured["mlp/replicated/collective"]) == "ReductionToOneDevice"
    assert str(measured["mlp/single/distributed"]) == "None"
    assert not measured["mlp/single/has_strategy"]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_on_replicas(measured, precision):
    # the replicas sum their halves of the batch in another order than one process: bf16/fp16's rounding
    assert_same_run(measured, f"{precision}/replicated", f"{precision}/single", rtol=5e-3, atol=1e-3)
    assert measured[f"{precision}/replicated/identical/trained"]
    assert measured[f"{precision}/replicated/identical/optimizer"]  # fp16: the loss scale's copies too


def test_fp16_loss_scale_moves_on_replicas_as_in_one_process(measured):
    np.testing.assert_array_equal(measured["fp16/replicated/loss_scale"], measured["fp16/single/loss_scale"])
    assert measured["fp16/replicated/step"] == measured["fp16/single/step"]


def test_states_round_trip_and_load_from_one_process(measured):
    assert measured["state/round-trip"]
    same = measured["state/same-window"]
    np.testing.assert_array_equal(same[0], same[1])
    assert measured["state/loaded/identical/trained"] and measured["state/loaded/identical/optimizer"]
    single, replicated = measured["state/from-one-process"]
    assert single.shape == (1 + WINDOW,)
    np.testing.assert_allclose(replicated, single, rtol=RTOL)


def test_evaluation_and_prediction_read_the_trained_weights(measured):
    (loss, acc), (ref_loss, ref_acc) = measured["state/evaluate"][1], measured["state/evaluate"][0]
    np.testing.assert_allclose(loss, ref_loss, rtol=RTOL)
    assert acc == ref_acc
    np.testing.assert_allclose(measured["state/predict"][1], measured["state/predict"][0], rtol=RTOL, atol=ATOL)


def test_devices_that_are_not_there_are_refused_clearly(measured):
    assert "already started with 2 CPU device(s); 3 replicas" in str(measured["refused/more-devices"])
    assert "2 data-parallel replicas need 2 GPU devices; TensorFlow sees 0" in str(measured["refused/gpus"])


def test_xla_with_data_parallel_is_refused_before_tensorflow_starts():
    from dlbench.errors import InputError
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.plugin.distributed import DataParallel
    from dlbench.network.init import initial_weights
    from dlbench.plugin.testing.networks import BUILD_CASES

    backend = require_backend("tensorflow")
    spec = BUILD_CASES["tanh-adam"]
    with pytest.raises(InputError, match="XLA compiles for one device"):
        backend.build(spec, initial_weights(spec, 0), TrainerOptions(data_parallel=DataParallel(2),
                                                                     extra={"jit_compile": True}))


if __name__ == "__main__":
    main(sys.argv[1])
