"""SimpleRNN under the certificate, in the fast suite: the test scenario
``tests/scenarios/chars-simple-rnn.toml`` (a tiny character language model;
the slow certificate test runs it on every framework and every applicable
mutant) trained on the NumPy reference, torch and a NumPy backend that adds
the Elman step's bias twice (torch's two RNN biases both loaded with the
canonical one), judged as ``dlbench run`` judges them."""

from pathlib import Path

from backend_helpers import require_backend
from dlbench.run.row import annotate
from dlbench.run.worker import RunRequest, execute

SCENARIO = str(Path(__file__).parents[1] / "scenarios" / "chars-simple-rnn.toml")


def test_simple_rnn_is_certified_on_torch_and_a_doubled_elman_bias_is_not(tmp_path, mutants):
    require_backend("torch")
    rows = [execute(RunRequest(scenario=SCENARIO, backend=b, overrides={"max_steps": 40}, window_steps=5,
                               parity_dir=str(tmp_path))) for b in ("numpy", "torch", "mutant-simple-rnn-bias")]
    annotate(rows)
    torch, mutant = rows[1]["parity"], rows[2]["parity"]
    assert torch["kind"] == "certificate" and torch["agrees"], torch
    assert torch["checkpoints_agreeing"] == torch["checkpoints"] >= 4, torch
    assert mutant["kind"] == "certificate" and not mutant["agrees"], mutant
    assert mutant["checkpoints_agreeing"] <= mutant["checkpoints"] // 2, mutant
