"""The Python API: dlbench.benchmark runs what `dlbench run` runs; Results and load read it back."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import dlbench
from dlbench import LSTM, Adam, Dense, Embedding, InputError, Sequential

XOR_MLP = Sequential([Dense(10, activation="relu"), Dense(1, activation="sigmoid")], input_shape=(2,)).compile(
    loss="binary_crossentropy", optimizer=Adam(learning_rate=0.01))


def token_classifier(per_token=False):
    """An embedding and an LSTM: one class per sequence, or (a language model) a class per token."""
    head = [LSTM(5, return_sequences=True), Dense(20, "softmax")] if per_token else [LSTM(5), Dense(3, "softmax")]
    return Sequential([Embedding(20, 4, input_shape=(9,)), *head]).compile("categorical_crossentropy", Adam(0.01))


def token_arrays(per_token=False, n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 20, (n, 9))
    y = np.roll(x, -1, axis=1) if per_token else rng.integers(0, 3, n)
    return x[:48], y[:48], x[48:], y[48:]


def xor_arrays(n=200, seed=0):
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 2, size=(n, 2))
    x = (corners + 0.1 * rng.standard_normal((n, 2))).astype(np.float32)
    y = corners[:, 0] ^ corners[:, 1]
    return x[:160], y[:160], x[160:], y[160:]


@pytest.fixture(scope="module")
def spec_run():
    """A compiled spec on arrays, numpy only, with repetitions: a real run through the workers."""
    return dlbench.benchmark(XOR_MLP, data=xor_arrays(), backends="numpy", epochs=3, steps=30, batch_size=16,
                             repeat=2, progress=False)


def test_a_spec_on_arrays_trains_in_workers_and_says_where_it_came_from(spec_run):
    (row,) = spec_run.rows
    assert (row.scenario, row.backend, row.status, row.repeats) == ("model", "numpy", "ok", 2)
    assert row.metrics["steps"] == 30 and row.test_accuracy is not None and row.samples_per_sec > 0
    settings = spec_run.document["settings"]
    assert settings["sources"]["model"].startswith("Sequential spec built in Python; data: x_train (160, 2) float32")
    assert settings["overrides"] == {"epochs": 3, "max_steps": 30, "batch_size": 16} and settings["repeat"] == 2
    assert spec_run.path is None and spec_run.document["path"] is None
    assert spec_run.document["command"] == ["dlbench.benchmark(Sequential spec built in Python, data=<arrays>, "
                                            "backends='numpy', epochs=3, steps=30, batch_size=16, repeat=2)"]


def test_rows_are_read_only(spec_run):
    row = spec_run.rows[0]
    with pytest.raises(AttributeError):
        row.status = "failed"
    with pytest.raises(TypeError):
        row.metrics["steps"] = 1
    copy = spec_run.document
    copy["results"].clear()
    assert len(spec_run.document["results"]) == 1


def test_to_pandas_is_one_row_per_repetition_with_the_csv_columns(spec_run):
    pytest.importorskip("pandas")
    from dlbench.report.table import runs_of
    from dlbench.report.render import render_csv

    frame = spec_run.to_pandas()
    csv_columns = render_csv(runs_of([spec_run.document])).splitlines()[0].split(",")
    assert list(frame.columns) == [*csv_columns, "repeat"]
    assert list(frame["repeat"]) == [0, 1] and set(frame["backend"]) == {"numpy"}
    metrics = spec_run.document["results"][0]["metrics"]
    assert list(frame["samples_per_sec"]) == metrics["samples_per_sec_samples"]
    assert list(frame["compile_seconds"]) == metrics["compile_seconds_samples"]
    assert list(frame["test_accuracy"]) == [metrics["test_accuracy"]] * 2


def test_to_pandas_without_pandas_names_the_extra(spec_run, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now raises ImportError
    with pytest.raises(InputError, match=r"pip install 'dlbench\[pandas\]'") as caught:
        spec_run.to_pandas()
    assert isinstance(caught.value, ImportError)


def test_save_and_load_give_back_the_same_document_and_never_replace_a_file(spec_run, tmp_path):
    path = spec_run.save(tmp_path / "run.json")
    loaded = dlbench.load(path)
    assert loaded.document["results"] == spec_run.document["results"] and loaded.path == path
    assert loaded.document["path"] == str(path)
    with pytest.raises(InputError, match="exists already; dlbench never replaces a result document"):
        spec_run.save(path)
    stored = spec_run.save(tmp_path)  # a folder: the store's layout, as --out
    assert stored.parent.parent == tmp_path and stored.name.startswith("0001_")
    with pytest.raises(InputError, match="a result document is a .json file"):
        spec_run.save(tmp_path / "run.txt")


def test_tables_reports_plots_and_comparisons_are_the_reports(spec_run, tmp_path):
    text = str(spec_run.table())
    assert "model" in text and "numpy" in text and "ok" in text
    html = spec_run._repr_html_()
    assert "<table>" in html and "<h2>model</h2>" in html
    for suffix, marker in ((".md", "# dlbench results"), (".html", "<!DOCTYPE html>"), (".csv", "run,created")):
        written = spec_run.report(tmp_path / f"report{suffix}")
        assert written.read_text().startswith(marker)
    assert list(tmp_path.glob("report-*.png"))  # Markdown gets its plots beside it
    with pytest.raises(InputError, match="cannot tell the format from the suffix '.txt'"):
        spec_run.report(tmp_path / "report.txt")
    plots = spec_run.plot()
    assert "model: loss curves" in plots and "throughput (median samples/s, IQR)" in plots
    assert plots._repr_html_().count("<img") == len(plots)
    comparison = spec_run.compare(spec_run)
    assert not comparison.regressed and "model" in str(comparison)
    assert comparison.as_json()[0]["verdict"] == "same"


def test_given_weights_are_where_every_backend_starts(tmp_path):
    """Zero weights make every logit 0: the first loss is exactly log 2."""
    zeros = [{name: np.zeros(shape, np.float32) for name, shape in layer.items()} for layer in XOR_MLP.param_shapes()]
    results = dlbench.benchmark(XOR_MLP, data=xor_arrays(), backends="numpy", steps=2, batch_size=16,
                                weights=zeros, progress=False)
    (row,) = results.rows
    assert row.status == "ok"
    assert math.isclose(row.metrics["loss_history"][0], math.log(2), rel_tol=1e-6)
    assert results.document["settings"]["sources"]["model"].endswith("initial weights: given in Python")
    default = dlbench.benchmark(XOR_MLP, data=xor_arrays(), backends="numpy", steps=2, batch_size=16,
                                progress=False)
    assert not math.isclose(default.rows[0].metrics["loss_history"][0], math.log(2), rel_tol=1e-3)


def test_a_spec_on_a_named_dataset_and_a_stored_run(tmp_path):
    results = dlbench.benchmark(XOR_MLP, data={"name": "xor", "n_samples": 100}, backends="numpy", steps=5,
                                out=tmp_path, progress=True)
    (stored,) = tmp_path.glob("*/*.json")
    assert results.path == stored and json.loads(stored.read_text()) == results.document
    assert results.document["settings"]["sources"]["model"].endswith("data: xor, n_samples=100")


@pytest.mark.slow
def test_the_document_is_the_one_dlbench_run_prints(tmp_path):
    """Field for field, apart from times, paths, the command and what varies with the machine's load."""
    cli = subprocess.run([sys.executable, "-m", "dlbench.cli", "run", "--scenario", "digits-mlp", "--backend",
                          "numpy,jax", "--format", "json", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert cli.returncode == 0, cli.stderr
    printed = json.loads(cli.stdout)
    ours = dlbench.benchmark("digits-mlp", backends="numpy,jax", progress=False).document
    assert ours["command"] == ["dlbench.benchmark('digits-mlp', backends='numpy,jax')"]
    for doc in (printed, ours):
        for key in ("created", "path", "command"):
            doc.pop(key)
        for row in doc["results"]:
            row["metrics"] = {k: v for k, v in row["metrics"].items() if not measured(k)}
    assert differences(ours, printed) == []
    assert len(ours["results"]) == 2 and ours["results"][1]["parity"]["kind"] == "certificate"


def differences(a, b, where="") -> list[str]:
    """Where two JSON values differ, as paths (for a readable failure)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in dict.fromkeys([*a, *b]) for d in differences(a.get(k, "<missing>"), b.get(k, "<missing>"),
                                                                          f"{where}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def measured(metric: str) -> bool:
    """Metrics of time, speed (and whether its spread was large) and memory, which differ from run to run."""
    return any(word in metric for word in ("seconds", "per_sec", "gflops", "time_to", "peak_", "unstable"))


BAD = [
    (dict(model="no-such-scenario"), "unknown scenario 'no-such-scenario'"),
    (dict(model="xor-mlp", data="xor"), "data is only for a model given in Python"),
    (dict(model=Sequential([Dense(1, activation="sigmoid")], input_shape=(2,))), "compile the Sequential first"),
    (dict(model=XOR_MLP), "a model given in Python needs data="),
    (dict(model=42), "cannot benchmark a builtins.int; expected a shipped scenario name"),
    (dict(model=XOR_MLP, data="no-such-data"), "unknown dataset 'no-such-data'"),
    (dict(model=XOR_MLP, data=xor_arrays()[:3]), "expected the arrays (x_train, y_train, x_test, y_test), got 3 items"),
    (dict(model=XOR_MLP, data=(np.ones((8, 3)), np.zeros(8, int), np.ones((4, 2)), np.zeros(4, int))),
     "x_train has samples of shape (3,), the model takes (2,)"),
    (dict(model=XOR_MLP, data=(np.ones((8, 2)), np.full(8, 0.5), np.ones((4, 2)), np.zeros(4))),
     "y_train must hold class indices (whole numbers); got 0.5 (float targets are a regression's: loss mse, "
     "mae or huber)"),
    (dict(model=XOR_MLP, data=(np.ones((8, 2)), np.eye(2)[np.zeros(8, int)], np.ones((4, 2)), np.zeros(4))),
     "y_train has shape (8, 2): one-hot labels?"),
    (dict(model=XOR_MLP, data=(np.ones((8, 2)), np.zeros(7, int), np.ones((4, 2)), np.zeros(4, int))),
     "y_train has 7 labels for 8 samples"),
    (dict(model=XOR_MLP, data=(np.ones((8, 2)), np.arange(8), np.ones((4, 2)), np.zeros(4, int))),
     "binary_crossentropy needs labels 0 and 1; got labels up to 7"),
    (dict(model=XOR_MLP, data=(np.ones((8, 2)), np.array(list("abababab")), np.ones((4, 2)), np.zeros(4, int))),
     "y_train holds <U1 values; expected integer class indices"),
    (dict(model=token_classifier(), data=(np.arange(16).reshape(2, 8) + 13, [0, 1], np.zeros((1, 9)), [0])),
     "x_train has samples of shape (8,), the model takes (9,)"),
    (dict(model=token_classifier(), data=(np.full((2, 9), 20), [0, 1], np.zeros((1, 9)), [0])),
     "x_train holds the token id 20, but the embedding takes ids 0..19 (input_dim 20)"),
    (dict(model=token_classifier(), data=(np.full((2, 9), 2.5), [0, 1], np.zeros((1, 9)), [0])),
     "x_train must hold token ids (whole numbers); got 2.5"),
    (dict(model=token_classifier(per_token=True), data=(np.zeros((2, 9), int), [0, 1], np.zeros((1, 9)), [0])),
     "y_train has shape (2,); the model predicts at every timestep: a class index per token, (2, 9)"),
    (dict(model=XOR_MLP, data=xor_arrays(), weights="model"), "weights='model' starts from a Keras or torch"),
    (dict(model=XOR_MLP, data=xor_arrays(), weights=[{}, {}]), "weights[0]: layer 0 (dense) has parameters"),
    (dict(model=XOR_MLP, data=xor_arrays(), weights="random"), "unknown 'random'; expected one of init, model"),
    (dict(model="xor-mlp", mode="serve"), "--mode: unknown mode 'serve'; expected one of both, inference, train"),
    (dict(model="xor-mlp", mode="inference", inference_batch_size=[0]),
     "--inference-batch-size: '0': expected positive integers"),
    (dict(model="xor-mlp", device="tpu"), "device: unknown 'tpu'; expected one of auto, cpu, gpu"),
    (dict(model="xor-mlp", epochs=0), "epochs: must be a positive integer, got 0"),
    (dict(model="xor-mlp", repeat=0), "repeat: must be a positive integer, got 0"),
    (dict(model="xor-mlp", precision="fp8"), "precision: unknown 'fp8'; expected one of bf16, fp16, fp32, tf32"),
    (dict(model="xor-mlp", backends="caffe"), "unknown backend 'caffe'"),
]


@pytest.mark.parametrize("arguments, message", BAD, ids=[m for _, m in BAD])
def test_bad_input_raises_one_error_type_and_writes_nothing(arguments, message, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError) as caught:
        dlbench.benchmark(**arguments, out=out, progress=False)
    assert message in str(caught.value)
    assert not out.exists()


def test_a_label_past_the_last_unit_is_refused_naming_both():
    spec = Sequential([Dense(3, activation="softmax")], input_shape=(2,)).compile("categorical_crossentropy")
    data = (np.ones((6, 2)), np.array([0, 1, 2, 3, 0, 1]), np.ones((2, 2)), np.zeros(2, int))
    with pytest.raises(InputError, match=r"the labels go up to 3 but the last layer has 3 units \(classes 0..2\)"):
        dlbench.benchmark(spec, data=data, backends="numpy", progress=False)


@pytest.mark.parametrize("per_token", [False, True], ids=["one-class-per-sequence", "language-model"])
def test_an_embedding_model_trains_on_token_id_arrays(per_token):
    """Token ids stay integers (they went into the .npz as floats, refused as "real numbers"), and a
    language model's labels are a class index per token (refused as "one-hot labels?")."""
    backends = ("numpy", "torch") if per_token else ("numpy",)  # torch: the ids reach a framework as integers
    run = dlbench.benchmark(token_classifier(per_token), data=token_arrays(per_token), backends=",".join(backends),
                            steps=4, batch_size=16, progress=False)
    rows = {row["backend"]: row for row in run.document["results"]}
    assert [rows[b]["status"] for b in backends] == ["ok"] * len(backends), [r.get("error") for r in rows.values()]
    assert all(rows[b]["parity"]["agrees"] is True for b in backends[1:]), [r["parity"] for r in rows.values()]
    assert "x_train (48, 9) int64" in run.document["settings"]["sources"]["model"]


def test_import_dlbench_loads_no_framework_and_no_plotting():
    code = ("import sys, dlbench; print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'keras', 'matplotlib', "
            "'pandas', 'dlbench_backends') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_run_of_a_model_given_in_python_says_why_it_cannot_be_resumed(spec_run, tmp_path):
    from click.testing import CliRunner

    from dlbench.cli import main

    path = spec_run.save(tmp_path / "run.json")
    result = CliRunner().invoke(main, ["run", "--resume", str(path)])
    assert result.exit_code == 2, result.output
    assert "cannot resume: 'model' was a model given in Python (Sequential spec built in Python; data:" in result.output


def test_a_run_without_rows_is_an_empty_frame_with_the_columns(spec_run):
    pytest.importorskip("pandas")
    empty = dlbench.Results({**spec_run.document, "results": []})
    assert empty.rows == () and list(empty.to_pandas().columns) == list(spec_run.to_pandas().columns)
    assert len(empty.to_pandas()) == 0
