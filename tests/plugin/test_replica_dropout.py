"""Dropout under data parallelism (DESIGN section 8): each replica draws its
own masks, as DDP's ranks and tf.distribute's replicas do, while the
replicas' copies of the weights stay identical. Today's engines: torch (two
processes under the backend's launcher), JAX (two host devices), TensorFlow
(two logical CPU devices). Each trains the dropout MLP for a few steps at two
replicas, then applies its network in training mode to the same sample on
both replicas: the two outputs must differ (the same masks would give the
same outputs) and every weight must be the same on both.

Devices and process groups must be set up before the frameworks start, so
the engine work runs in fresh processes (this file run as a script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend_helpers import require_backend

HERE = Path(__file__).parents[1]
REPLICAS, BATCH, STEPS, SEED = 2, 8, 3, 11
pytestmark = pytest.mark.slow


def setup():
    from backend_helpers import toy_data
    from dlbench.plugin.testing.networks import DROPOUT_CASES

    from dlbench.plugin.backend import TrainerOptions
    from dlbench.plugin.distributed import DataParallel

    spec = DROPOUT_CASES["dense"]
    data = toy_data(input_shape=spec.input_shape, n_classes=3, n_train=24)
    return spec, data, TrainerOptions(seed=SEED, data_parallel=DataParallel(REPLICAS))


def same_sample(data, per_replica: int) -> np.ndarray:
    """One sample, ``per_replica`` times for each replica: identical inputs everywhere."""
    return np.repeat(data.x_train[:1], per_replica * REPLICAS, axis=0)


def jax_replicas() -> dict:
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec as P
    from dlbench.plugin.testing.like_numpy import trained

    from dlbench_backends.jax.network import build_forward
    from dlbench_backends.jax.trainer import REPLICA_AXIS

    spec, data, options = setup()
    trainer, _ = trained("jax", spec, data, options, BATCH, STEPS)
    params, stats = trainer.carry[0], trainer.carry[1]
    copies = [[np.asarray(s.data) for s in leaf.addressable_shards] for leaf in jax.tree.leaves(params)]
    # the trainer's forward function, as make_functions builds it for a mesh
    forward = build_forward(spec, trainer.precision, SEED, trainer.custom_vjp, None, dropout_axis=REPLICA_AXIS)
    apply = jax.jit(jax.shard_map(lambda p, s, x: forward(p, s, x, True, jnp.int32(STEPS))[0], mesh=trainer.mesh,
                                  in_specs=(P(), P(), P(REPLICA_AXIS)), out_specs=P(REPLICA_AXIS), check_vma=False))
    outputs = np.asarray(apply(params, stats, same_sample(data, 4))).reshape(REPLICAS, 4, -1)
    return {"outputs": outputs.tolist(), "copies_identical": all(np.array_equal(c, cs[0]) for cs in copies
                                                                 for c in cs)}


def tensorflow_replicas() -> dict:
    import tensorflow as tf
    from dlbench.plugin.testing.like_numpy import trained

    from dlbench.plugin.manager import get_plugins

    spec, data, options = setup()
    get_plugins().backends["tensorflow"].configure_data_parallel(options.data_parallel, 1)
    trainer, _ = trained("tensorflow", spec, data, options, BATCH, STEPS)
    copies = [[c.numpy() for c in v.values] for v in trainer.variables]
    x = tf.constant(same_sample(data, 4)[:4])
    per_replica = trainer.strategy.run(lambda: trainer.model(x, training=True))
    outputs = [o.numpy() for o in trainer.strategy.experimental_local_results(per_replica)]
    return {"outputs": np.array(outputs).tolist(),
            "copies_identical": all(np.array_equal(c, cs[0]) for cs in copies for c in cs)}


def torch_replica() -> dict | None:
    """One replica's part (run under the torch backend's launcher); rank 0 returns both replicas'."""
    import torch
    import torch.distributed as dist
    from dlbench.plugin.testing.like_numpy import trained

    spec, data, options = setup()
    trainer, _ = trained("torch", spec, data, options, BATCH, STEPS)
    trainer.model.train()
    with torch.no_grad():
        output = trainer.model(torch.from_numpy(same_sample(data, 4)[:4])).numpy()
    weights = [p.detach().numpy() for p in trainer.model.parameters()]
    gathered = [None] * REPLICAS
    dist.all_gather_object(gathered, (output, weights))
    if dist.get_rank():
        return None
    return {"outputs": np.array([g[0] for g in gathered]).tolist(),
            "copies_identical": all(np.array_equal(w, w0) for g in gathered for w, w0 in zip(g[1], gathered[0][1]))}


def main(backend: str, out: str) -> None:
    sys.path[:0] = [str(HERE), str(HERE / "backends")]
    found = {"jax": jax_replicas, "tensorflow": tensorflow_replicas, "torch": torch_replica}[backend]()
    if found is not None:
        Path(out).write_text(json.dumps(found))


# ---------------------------------------------------------------- the tests
def measure(backend_name: str, tmp_path) -> dict:
    from dlbench.plugin.distributed import DataParallel

    backend = require_backend(backend_name)
    out = tmp_path / "found.json"
    env = {**os.environ, **backend.worker_environment(1, "cpu", REPLICAS),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH", "")]))}
    launch = (backend.launch_command(DataParallel(REPLICAS)) if backend_name == "torch" else None) or [sys.executable]
    result = subprocess.run([*launch, __file__, backend_name, str(out)], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-6000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_each_replica_draws_its_own_dropout_masks_and_the_weights_stay_identical(backend, tmp_path):
    found = measure(backend, tmp_path)
    first, second = np.array(found["outputs"])
    assert first.shape == second.shape and np.all(np.isfinite(first))
    assert not np.allclose(first, second), "both replicas drew the same dropout masks for the same sample"
    assert found["copies_identical"], "the replicas' weights parted"


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
