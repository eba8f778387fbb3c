"""The GPU code paths that can be checked without a GPU: where a GPU run's
reference trains, the device-memory figures, the GPU's own matmul ceilings
(a tf32 one among them) and which ceiling a row is compared with, and that an
fp32 JAX network asks XLA for full-precision products everywhere (on a GPU
XLA's DEFAULT is TF32). The rest is scripts/gpu-check.sh's, on the GPU."""

import re
import types

import numpy as np
import pytest

from backend_helpers import require_backend
from dlbench.plugin.manager import get_plugins
from dlbench.measure import peak
from dlbench.run import runner
from dlbench.run.row import annotate
from dlbench.run.worker import resolve_device

GPU_ENV = {"cpu": "Some CPU", "logical_cores": 16, "gpus": ["NVIDIA H100 80GB HBM3, 81559 MiB, 580.159.04"]}


def test_a_gpu_run_trains_the_numpy_reference_on_the_cpu():
    numpy = get_plugins().backend("numpy")
    framework = types.SimpleNamespace(name="framework", devices=("cpu", "gpu"), gpu_name=lambda: None)
    assert resolve_device(numpy, "gpu") == "cpu"  # its rows are the reference the GPU rows are judged by
    assert resolve_device(framework, "gpu") is None  # a framework that sees no GPU: an unavailable row
    assert resolve_device(types.SimpleNamespace(**{**vars(framework), "gpu_name": lambda: "H100"}), "gpu") == "gpu"


def test_torch_trainer_reports_the_allocator_s_peak_on_a_gpu_and_nothing_on_a_cpu(monkeypatch):
    torch = pytest.importorskip("torch")
    require_backend("torch")
    from dlbench_backends.torch.trainer import TorchTrainer

    asked = []
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device: asked.append(device) or 3 << 20)
    cuda = types.SimpleNamespace(device=torch.device("cuda", 0))
    assert TorchTrainer.peak_device_bytes(cuda) == 3 << 20 and asked == [cuda.device]
    assert TorchTrainer.peak_device_bytes(types.SimpleNamespace(device=torch.device("cpu"))) is None


def test_jax_trainer_reports_xla_s_peak_bytes_on_a_gpu_and_nothing_on_a_cpu():
    require_backend("jax")
    import jax

    from dlbench_backends.jax.trainer import JaxTrainer

    gpu = types.SimpleNamespace(memory_stats=lambda: {"bytes_in_use": 10, "peak_bytes_in_use": 12345},
                                process_index=jax.process_index(), platform="gpu")
    assert JaxTrainer.peak_device_bytes(types.SimpleNamespace(device=gpu)) == 12345
    assert JaxTrainer.peak_device_bytes(types.SimpleNamespace(device=jax.devices("cpu")[0])) is None


def test_a_jax_replica_reads_its_own_first_device_when_the_trainer_s_first_is_another_process_s(monkeypatch):
    require_backend("jax")
    import jax

    from dlbench_backends.jax.trainer import JaxTrainer

    def unreadable():
        raise AssertionError("another process's device statistics were read")

    remote = types.SimpleNamespace(memory_stats=unreadable, process_index=jax.process_index() + 1, platform="gpu")
    own = types.SimpleNamespace(memory_stats=lambda: {"peak_bytes_in_use": 777})
    asked = []
    monkeypatch.setattr(jax, "local_devices", lambda backend=None: asked.append(backend) or [own])
    assert JaxTrainer.peak_device_bytes(types.SimpleNamespace(device=remote)) == 777 and asked == ["gpu"]


def test_a_gpu_has_a_tf32_ceiling_of_its_own_and_a_cpu_shares_fp32_s():
    assert peak.peak_dtype("tf32", "gpu") == "tfloat32" and peak.peak_dtype("tf32") == "float32"
    assert peak.peak_dtype("bf16", "gpu") == "bfloat16" and peak.peak_dtype("fp32", "gpu") == "float32"
    assert peak.environment_key("float32", "gpu") == "gpu_peak_gflops"
    assert peak.environment_key("tfloat32", "gpu") == "gpu_peak_gflops_tfloat32"
    assert peak.environment_key("bfloat16") == "peak_gflops_bfloat16"


def test_gpu_peaks_are_cached_under_the_gpu_whatever_the_threads():
    cpu, gpu = peak.machine_key(GPU_ENV, 2), peak.machine_key(GPU_ENV, 2, device="gpu")
    assert cpu != gpu and "H100" in gpu and "Some CPU" not in gpu
    assert peak.machine_key(GPU_ENV, 8, device="gpu") == gpu
    assert peak.machine_key(GPU_ENV, 2, "bfloat16", "gpu") == f"{gpu}|bfloat16"


def test_a_row_is_compared_with_the_ceiling_of_the_device_it_trained_on():
    env = {"peak_gflops": {"numpy": 100.0, "torch": 120.0}, "peak_gflops_bfloat16": {"torch": 200.0},
           "gpu_peak_gflops": {"torch": 50e3, "jax": 55e3}, "gpu_peak_gflops_tfloat32": {"torch": 400e3},
           "gpu_peak_gflops_bfloat16": {"torch": 700e3, "jax": 750e3}}
    ceilings = runner.ceilings(env)
    assert ceilings == {"fp32": 120.0, "tf32": 120.0, "bf16": 200.0,
                        "gpu fp32": 55e3, "gpu tf32": 400e3, "gpu bf16": 750e3}
    assert peak.row_ceiling(ceilings, {"device": "NVIDIA H100 80GB HBM3", "precision": "tf32"}) == 400e3
    assert peak.row_ceiling(ceilings, {"device": "cpu", "precision": "tf32"}) == 120.0  # the NumPy reference
    assert peak.row_ceiling(ceilings, {"device": "NVIDIA H100 80GB HBM3", "precision": "fp16"}) is None


def test_a_gpu_run_measures_the_gpu_s_peaks_beside_the_cpu_s(monkeypatch):
    asked = []

    def peaks_for_run(env, threads, dtype="float32", device="cpu"):
        asked.append((dtype, device))
        return {"torch": 1.0}

    monkeypatch.setattr(peak, "peaks_for_run", peaks_for_run)
    env = runner.environment(2, ["fp32", "tf32", "bf16"], "gpu")
    assert set(asked) == {("float32", "cpu"), ("bfloat16", "cpu"),
                          ("float32", "gpu"), ("tfloat32", "gpu"), ("bfloat16", "gpu")}
    assert {"gpu_peak_gflops", "gpu_peak_gflops_tfloat32", "gpu_peak_gflops_bfloat16"} <= set(env)
    asked.clear()
    assert "gpu_peak_gflops" not in runner.environment(2, ["fp32"], "cpu") and asked == [("float32", "cpu")]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_gpu_matmul_is_none_where_the_framework_sees_no_gpu(backend):
    b = require_backend(backend)
    if b.gpu_name() is not None:
        pytest.skip("this machine has a GPU")
    assert b.matmul(64, "float32", "gpu") is None
    assert b.matmul(64, "tfloat32") is None  # a CPU has no TF32
    assert b.matmul(64)() is not None  # the CPU's matmul as before


def _lowered_precisions(scenario: str, precision: str) -> set[str]:
    """The precisions of every dot and convolution in the JAX gradient of a
    shipped scenario's network, as it is built for a GPU (JAX's own gradient rules)."""
    import jax
    import jax.numpy as jnp

    from dlbench.scenario import resolve_scenario
    from dlbench.network.init import initial_weights
    from dlbench_backends.jax.losses import LOSSES
    from dlbench_backends.jax.network import activation, build_forward, split_weights
    from dlbench_backends.jax.precision import Policy

    spec = resolve_scenario(scenario).model
    forward = build_forward(spec, Policy(precision), 0, False)
    params, stats = split_weights(initial_weights(spec, 0))
    tokens = spec.layers[0].__class__.__name__ == "Embedding"
    x = jnp.zeros((2, *spec.input_shape), jnp.int32 if tokens else jnp.float32)
    z = jax.eval_shape(lambda p, s: forward(p, s, x, True, 0)[0], params, stats)
    targets = jnp.zeros(z.shape[:-1], jnp.int32) if spec.loss == "categorical_crossentropy" else jnp.zeros(z.shape)

    def objective(p):
        return LOSSES[spec.loss](forward(p, stats, x, True, 0)[0], targets, activation(spec.output_activation))

    text = jax.jit(jax.grad(objective)).lower(params).as_text()
    products = [line for line in text.splitlines() if "stablehlo.dot_general" in line or "stablehlo.convolution" in line]
    assert products, f"{scenario} has no products"
    found = set()
    for line in products:
        # dot_general: "precision = [HIGHEST, HIGHEST]"; convolution: "#stablehlo<precision HIGHEST>"
        config = re.findall(r"(?:precision |precision = \[|, )(DEFAULT|HIGH|HIGHEST)\b", line)
        found |= set(config) if config else {"DEFAULT"}
    return found


@pytest.mark.parametrize("scenario", ["synthetic-fcn", "digits-cnn", "chars-lstm", "adding-gru", "chars-gpt"])
def test_jax_fp32_asks_for_full_precision_in_every_product_and_tf32_for_xla_s_default(scenario):
    require_backend("jax")
    assert _lowered_precisions(scenario, "fp32") == {"HIGHEST"}  # attention's too: not TF32 on a GPU
    assert _lowered_precisions(scenario, "tf32") == {"DEFAULT"}


def test_tf32_rounding_keeps_ten_mantissa_bits_to_nearest_with_ties_away_from_zero():
    from dlbench_backends.numpy.precision import round_tf32

    x = np.array([1 + 2**-11, 1 + 3 * 2**-11, -(1 + 2**-11), 1 + 2**-12, np.pi], np.float32)
    np.testing.assert_array_equal(round_tf32(x), np.array([1 + 2**-10, 1 + 2**-9, -(1 + 2**-10), 1, 3.140625],
                                                          np.float32))
    values = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    rounded = round_tf32(values)
    assert not np.any(rounded.view(np.uint32) & 0x1FFF)  # the 13 low mantissa bits are gone
    assert np.max(np.abs(rounded - values) / np.abs(values)) <= 2**-11


@pytest.fixture
def tensor_cores(monkeypatch):
    """The tf32_plugins backend registered (in this process and its workers)."""
    from dlbench.plugin import manager

    monkeypatch.setenv("DLBENCH_PLUGINS", "tf32_plugins")
    manager.get_plugins.cache_clear()
    yield
    manager.get_plugins.cache_clear()


@pytest.mark.parametrize("precision, agrees", [("tf32", True), ("fp32", False)])
def test_a_row_computed_on_tf32_tensor_cores_agrees_at_tf32_and_not_at_fp32(precision, agrees, tmp_path,
                                                                             tensor_cores):
    from dlbench.run.worker import RunRequest, execute

    rows = [execute(RunRequest(scenario="digits-mlp", backend=b, overrides={"max_steps": 40}, window_steps=5,
                               parity_dir=str(tmp_path), precision=precision))
            for b in ("numpy", "numpy-tensor-cores")]
    annotate(rows)
    verdict = rows[1]["parity"]
    assert rows[1]["status"] == "ok" and verdict["kind"] == "certificate"
    assert verdict["agrees"] is agrees, verdict


def test_the_report_header_names_the_gpu_and_its_ceilings_only_for_a_run_that_has_them():
    from dlbench.report.table import Run, environment_table

    gpu_run = Run("gpu", {"environment": {**GPU_ENV, "peak_gflops": {"numpy": 90.0},
                                          "gpu_peak_gflops": {"torch": 51000.0},
                                          "gpu_peak_gflops_tfloat32": {"torch": 380000.0}}})
    facts = {row[0]: row[1] for row in environment_table([gpu_run])[1]}
    assert facts["GPU"] == GPU_ENV["gpus"][0]
    assert facts["GPU peak GFLOP/s"] == "torch 51,000" and facts["GPU tf32 peak GFLOP/s"] == "torch 380,000"
    assert "GPU bf16 peak GFLOP/s" not in facts  # measured for a bf16 run only
    cpu_facts = {row[0] for row in environment_table([Run("cpu", {"environment": {"peak_gflops": {"numpy": 9.0}}})])[1]}
    assert not any(name.startswith("GPU ") for name in cpu_facts)
