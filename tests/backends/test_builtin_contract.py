"""What the shipped contract suite (:mod:`dlbench.plugin.testing`) leaves to the
repository: the built-ins' own options (their error messages, their compiling
options at inference) and the mutants that prove the kit's checks can fail."""

import pytest

from backend_helpers import require_backend
from dlbench.errors import InputError
from dlbench.network.init import initial_weights
from dlbench.plugin.backend import TrainerOptions
from dlbench.plugin.manager import get_plugins
from dlbench.plugin.testing.helpers import toy_data
from dlbench.plugin.testing.networks import BUILD_CASES, classes
from dlbench.plugin.testing.test_inference_contract import CASES, reference_state, verdict
from dlbench.plugin.testing.test_mixed_precision_contract import rounds_like_the_reference
from dlbench.measure.session import prepare


BAD_VALUES = [
    ("numpy", {"dtype": "float16"}, "numpy.dtype must be float32 or float64, got 'float16'"),
    ("numpy", {"summation": "backward"},
     "numpy.summation must be forward, reversed, blocked3, blocked4 or blocked16, got 'backward'"),
    ("torch", {"compile": "yes"}, "torch.compile must be true or false, got 'yes'"),
    ("tensorflow", {"jit_compile": "yes"}, "tensorflow.jit_compile must be true or false, got 'yes'"),
    ("jax", {"scan": "yes"}, "jax.scan must be true or false, got 'yes'"),
    ("jax", {"chunk_steps": 0}, "jax.chunk_steps must be at least 1, got 0"),
    ("jax", {"chunk_steps": 2.0}, "jax.chunk_steps must be an integer, got 2.0"),
    ("jax", {"custom_vjp": "yes"}, "jax.custom_vjp must be true, false or auto, got 'yes'"),
]


@pytest.mark.parametrize("name, extra, message", BAD_VALUES, ids=[f"{n}-{next(iter(e))}" for n, e, _ in BAD_VALUES])
def test_bad_option_values_are_rejected_naming_the_option_the_value_and_what_is_allowed(name, extra, message):
    backend = require_backend(name)
    spec = BUILD_CASES["sigmoid-bce-adam"]
    with pytest.raises(InputError) as info:
        backend.build(spec, initial_weights(spec, 0), TrainerOptions(extra=extra))
    assert info.value.field == "--backend-option" and info.value.message == message


COMPILED = {"torch": {"compile": True}, "tensorflow": {"jit_compile": True}}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(COMPILED))
def test_compiled_inference_gives_the_same_logits(name):
    """torch.compile and XLA, the options deployments turn on, compute the same network."""
    backend = require_backend(name)
    spec = CASES["conv1d-batchnorm-pools"]
    data = toy_data(input_shape=spec.input_shape, n_classes=classes(spec), n_train=43, n_test=13)
    weights, plan = reference_state(spec, data)
    session = prepare(backend, spec, data, plan, TrainerOptions(extra=COMPILED[name]), weights)
    result = verdict(session)
    assert result["agrees"], result


@pytest.mark.parametrize("mutant", ["mutant-float32-at-mixed", "mutant-other-half-type"])
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_backend_that_rounds_otherwise_fails_the_rounding_check(mutant, precision, mutants):
    assert not rounds_like_the_reference(get_plugins().backend(mutant), precision)
