"""The bad-input catalogue: every case is one clear line naming the file, the
field and what is allowed; exit code 2; no traceback; no result file."""

import pytest
from click.testing import CliRunner

from dlbench.cli import main
from dlbench.plugin.manager import get_plugins

GOOD = """name = "case"
description = "a valid scenario the cases break one thing in"
[data]
name = "digits"
test_fraction = 0.2
[model]
input_shape = [64]
layers = [ { type = "dense", units = 32, activation = "relu" },
           { type = "dense", units = 10, activation = "softmax" } ]
[train]
loss = "categorical_crossentropy"
optimizer = { name = "sgd", learning_rate = 0.1, momentum = 0.5 }
batch_size = 64
epochs = 2
seed = 0
drop_last = false
"""

# (case, text to replace in GOOD, replacement, expected message after "FILE: ")
FILE_CASES = [
    ("malformed TOML", 'name = "case"', 'name = "case', "malformed TOML"),
    ("unknown top-level key", 'name = "case"', 'name = "case"\nauthor = "me"', "author: unknown key 'author'"),
    ("unknown layer type", 'type = "dense", units = 32', 'type = "dens", units = 32',
     "model.layers[0].type: unknown 'dens'; expected one of activation, averagepool1d, averagepool2d, "
     "batchnorm, bidirectional, conv1d, conv2d, dense, dropout, embedding, flatten, global_average_pool1d, global_average_pool2d, "
     "global_max_pool1d, global_max_pool2d, gru, layer_norm, lstm, maxpool1d, maxpool2d, position_embedding, residual, "
     "self_attention, simple_rnn"),
    ("unknown activation", 'activation = "relu"', 'activation = "rlu"',
     "model.layers[0].activation: unknown 'rlu'; expected one of elu, gelu, gelu_erf, gelu_tanh, "
     "leaky_relu, linear, relu, sigmoid, silu, softmax, tanh"),
    ("unknown loss", 'loss = "categorical_crossentropy"', 'loss = "hinge"',
     "train.loss: unknown 'hinge'; expected one of binary_crossentropy, categorical_crossentropy, huber, mae, mse"),
    ("negative huber delta", 'loss = "categorical_crossentropy"', 'loss = { name = "huber", delta = -1.0 }',
     "train.loss.delta: must be in (0.0, inf), got -1.0"),
    ("zero huber delta", 'loss = "categorical_crossentropy"', 'loss = { name = "huber", delta = 0 }',
     "train.loss.delta: must be in (0.0, inf), got 0"),
    ("label smoothing of one", 'loss = "categorical_crossentropy"',
     'loss = { name = "categorical_crossentropy", label_smoothing = 1.0 }',
     "train.loss.label_smoothing: must be in [0.0, 1.0), got 1.0"),
    ("negative label smoothing", 'loss = "categorical_crossentropy"',
     'loss = { name = "categorical_crossentropy", label_smoothing = -0.1 }',
     "train.loss.label_smoothing: must be in [0.0, 1.0), got -0.1"),
    ("label smoothing on mse", 'loss = "categorical_crossentropy"', 'loss = { name = "mse", label_smoothing = 0.1 }',
     "train.loss.label_smoothing: unknown option 'label_smoothing' of loss 'mse'; it takes no options"),
    ("delta on cross-entropy", 'loss = "categorical_crossentropy"',
     'loss = { name = "categorical_crossentropy", delta = 1.0 }',
     "train.loss.delta: unknown option 'delta' of loss 'categorical_crossentropy'; expected one of label_smoothing"),
    ("loss table without a name", 'loss = "categorical_crossentropy"', "loss = { delta = 1.0 }",
     "train.loss.name: missing; expected one of binary_crossentropy"),
    ("huber on a softmax output", 'loss = "categorical_crossentropy"', 'loss = { name = "huber", delta = 1.0 }',
     "train.loss: huber compares the last layer's values with float targets; a softmax makes them probabilities"),
    ("mae on class labels", GOOD[GOOD.index('units = 10, activation = "softmax"'):],
     GOOD[GOOD.index('units = 10, activation = "softmax"'):].replace('activation = "softmax"', 'activation = "linear"')
     .replace('"categorical_crossentropy"', '"mae"'),
     "train.loss: mae compares float targets, but dataset 'digits' has class labels; use categorical_crossentropy"),
    ("mae on a softmax output", 'loss = "categorical_crossentropy"', 'loss = "mae"',
     "train.loss: mae compares the last layer's values with float targets; a softmax makes them probabilities"),
    ("cross-entropy on float targets", 'name = "digits"\ntest_fraction = 0.2', 'name = "regression"\nn_features = 64',
     "train.loss: categorical_crossentropy needs class labels, but dataset 'regression' has float targets (a "
     "regression); expected one of huber, mae, mse"),
    ("a regression with more outputs than targets", GOOD[GOOD.index('name = "digits"'):GOOD.index("optimizer =")],
     GOOD[GOOD.index('name = "digits"'):GOOD.index("optimizer =")].replace(
         'name = "digits"', 'name = "regression"\nn_features = 64\nn_targets = 3').replace(
         '"softmax"', '"linear"').replace('"categorical_crossentropy"', '"mse"'),
     "model.layers: dataset 'regression' has 3 float target(s) per sample, but the model's output is (10,)"),
    ("a target accuracy of a regression", GOOD[GOOD.index('name = "digits"'):],
     GOOD[GOOD.index('name = "digits"'):].replace('name = "digits"', 'name = "regression"\nn_features = 64').replace(
         'units = 10, activation = "softmax"', "units = 1").replace('"categorical_crossentropy"', '"huber"')
     + "target_accuracy = 0.5\n",
     "train.target_accuracy: dataset 'regression' has float targets (a regression), which have no accuracy"),
    ("unknown optimizer", 'name = "sgd"', 'name = "lamb"',
     "train.optimizer.name: unknown 'lamb'; expected one of adadelta, adam, adamw, rmsprop, sgd"),
    ("unknown optimizer key", "momentum = 0.5", "dampening = 0.5", "train.optimizer.dampening: unknown key"),
    ("unknown schedule", "momentum = 0.5", 'momentum = 0.5, schedule = { name = "onecycle" }',
     "train.optimizer.schedule.name: unknown 'onecycle'; expected one of cosine, exponential, step, "
     "warmup_cosine, warmup_linear"),
    ("schedule without its steps", "momentum = 0.5", 'momentum = 0.5, schedule = { name = "cosine" }',
     "train.optimizer.schedule: cosine needs decay_steps"),
    ("warm-up as long as the decay", "momentum = 0.5",
     'momentum = 0.5, schedule = { name = "warmup_cosine", warmup_steps = 10, decay_steps = 10 }',
     "train.optimizer.schedule.decay_steps: must be more than warmup_steps (10): it counts the warm-up, got 10"),
    ("negative weight decay", "momentum = 0.5", "momentum = 0.5, weight_decay = -0.01",
     "train.optimizer.weight_decay: must be in [0.0, inf), got -0.01"),
    ("clipping with a zero norm", "momentum = 0.5", "momentum = 0.5, clip_global_norm = 0.0",
     "train.optimizer.clip_global_norm: must be in (0.0, inf), got 0.0"),
    ("nesterov without momentum", "momentum = 0.5", "nesterov = true",
     "train.optimizer.nesterov: nesterov needs a momentum above 0"),
    ("unknown dataset", 'name = "digits"', 'name = "mnist9"', "data.name: unknown dataset 'mnist9'; expected one of"),
    ("unknown dataset option", "test_fraction = 0.2", "test_fraction = 0.2\nshuffle = true",
     "data.shuffle: unknown option 'shuffle' for dataset 'digits'; expected one of spatial, test_fraction"),
    ("wrong dataset option type", "test_fraction = 0.2", 'test_fraction = "a fifth"',
     "data.test_fraction: must be of type float"),
    ("test fraction out of range", "test_fraction = 0.2", "test_fraction = 1.0",
     "data.test_fraction: must be in (0, 1), got 1.0"),
    ("string units", "units = 32", 'units = "32"', "model.layers[0].units: must be a positive integer, got '32'"),
    ("zero units", "units = 32", "units = 0", "model.layers[0].units: must be a positive integer, got 0"),
    ("negative units", "units = 10", "units = -10", "model.layers[1].units: must be a positive integer, got -10"),
    ("unknown layer key", "units = 32,", "units = 32, kernel_size = 3,", "model.layers[0].kernel_size: unknown key"),
    ("list learning rate", "learning_rate = 0.1", "learning_rate = [0.1]",
     "train.optimizer.learning_rate: must be a number, got [0.1]"),
    ("zero learning rate", "learning_rate = 0.1", "learning_rate = 0",
     "train.optimizer.learning_rate: must be in (0.0, inf), got 0"),
    ("negative learning rate", "learning_rate = 0.1", "learning_rate = -0.1",
     "train.optimizer.learning_rate: must be in (0.0, inf), got -0.1"),
    ("momentum of one", "momentum = 0.5", "momentum = 1.0", "train.optimizer.momentum: must be in [0.0, 1.0)"),
    ("zero batch size", "batch_size = 64", "batch_size = 0", "train.batch_size: must be a positive integer, got 0"),
    ("negative epochs", "epochs = 2", "epochs = -1", "train.epochs: must be a positive integer, got -1"),
    ("negative seed", "seed = 0", "seed = -3", "train.seed: must be a non-negative integer, got -3"),
    ("string drop_last", "drop_last = false", 'drop_last = "no"', "train.drop_last: must be true or false"),
    ("a batch larger than the data with drop_last", "batch_size = 64\nepochs = 2\nseed = 0\ndrop_last = false",
     "batch_size = 100000\nepochs = 2\nseed = 0\ndrop_last = true",
     "train.batch_size: a batch of 100000 samples with drop_last = true leaves no step in an epoch of 1438 "
     "training samples: nothing would be trained"),
    ("missing loss", 'loss = "categorical_crossentropy"\n', "", "train.loss: missing; expected one of"),
    ("no layers", GOOD[GOOD.index("layers = ["):GOOD.index("[train]")], "layers = []\n",
     "model.layers: must be a non-empty list"),
    ("input shape not a list", "input_shape = [64]", "input_shape = 64", "model.input_shape: must be a list"),
    ("input shape mismatch", "input_shape = [64]", "input_shape = [63]",
     "model.input_shape: (63,) does not match dataset 'digits', whose samples have shape (64,)"),
    ("dense on a 3-D input", "input_shape = [64]", "input_shape = [8, 8, 1]",
     "model.layers[0]: dense needs a 1-D input (features,) or a sequence (time, features), got shape (8, 8, 1); "
     "add a flatten layer before it"),
    ("binary loss on 10 units", 'loss = "categorical_crossentropy"', 'loss = "binary_crossentropy"',
     "train.loss: binary_crossentropy needs a last layer of 1 unit with sigmoid activation, got 10 units"),
    ("categorical loss on 1 unit", "units = 10, activation = \"softmax\"", "units = 1, activation = \"softmax\"",
     "train.loss: categorical_crossentropy needs a last layer of at least 2 units with softmax"),
    ("fewer units than classes", "units = 10, activation", "units = 5, activation",
     "model.layers: the last layer has 5 units but dataset 'digits' has 10 classes"),
    ("a model too large for the machine", "units = 32, activation", "units = 2000000000, activation",
     "model.layers: training this model needs at least"),
    ("negative alpha", '{ type = "dense", units = 32, activation = "relu" }',
     '{ type = "dense", units = 32 }, { type = "activation", activation = "leaky_relu", alpha = -0.1 }',
     "model.layers[1].alpha: must be in [0.0, inf), got -0.1"),
    ("alpha of an activation without one", '{ type = "dense", units = 32, activation = "relu" }',
     '{ type = "dense", units = 32 }, { type = "activation", activation = "relu", alpha = 0.1 }',
     "model.layers[1].alpha: only leaky_relu and elu take an alpha, not relu"),
    ("alpha on a dense layer", 'units = 32, activation = "relu"', 'units = 32, activation = "leaky_relu", alpha = 0.2',
     "model.layers[0].alpha: unknown key 'alpha'; expected one of activation, units, use_bias"),
    ("string use_bias", "units = 32,", 'units = 32, use_bias = "no",',
     "model.layers[0].use_bias: must be true or false, got 'no'"),
    ("global pooling of a vector", '{ type = "dense", units = 32, activation = "relu" }',
     '{ type = "global_max_pool2d" }, { type = "dense", units = 32, activation = "relu" }',
     "model.layers[0]: global_max_pool2d needs a 3-D input (height, width, channels), got shape (64,)"),
    ("bidirectional around a dense layer", '{ type = "dense", units = 32, activation = "relu" }',
     '{ type = "bidirectional", layer = { type = "dense", units = 32 } }',
     "model.layers[0].layer: must be a simple_rnn, lstm or gru layer, got 'dense'"),
    ("bidirectional around a name", '{ type = "dense", units = 32, activation = "relu" }',
     '{ type = "bidirectional", layer = "lstm" }', "model.layers[0].layer: must be a table like"),
    ("expected accuracy malformed", 'name = "case"', 'name = "case"\nexpected_accuracy = [0.9]',
     "expected_accuracy: must be [low, high]"),
]


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("DLBENCH_PLUGINS", "fault_plugins")
    get_plugins.cache_clear()
    yield CliRunner()
    get_plugins.cache_clear()


def assert_one_clear_line(result, message, out_dir):
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("dlbench: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.output
    assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize("case, old, new, message", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_bad_scenario_file(cli, tmp_path, case, old, new, message):
    assert old in GOOD, case
    path = tmp_path / "case.toml"
    path.write_text(GOOD.replace(old, new, 1))
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", "--scenario", str(path), "--backend", "numpy", "--out", str(out)])
    assert_one_clear_line(result, f"{path}: {message}", out)


def test_the_unbroken_scenario_runs(cli, tmp_path):
    path = tmp_path / "case.toml"
    path.write_text(GOOD)
    result = cli.invoke(main, ["run", "--scenario", str(path), "--backend", "numpy", "--steps", "3",
                               "--in-process", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output


COMMAND_LINE_CASES = [
    ("unknown scenario", ["--scenario", "nope"], "--scenario: unknown scenario 'nope'; expected one of"),
    ("missing scenario file", ["--scenario", "missing.toml"], "missing.toml: cannot read scenario file"),
    ("unknown backend", ["--backend", "caffe"], "--backend: unknown backend 'caffe'; expected one of"),
    ("empty backend list", ["--backend", ","], "--backend: no backend named; expected one of"),
    ("unavailable backend by name", ["--backend", "missing"],
     "--backend: backend 'missing' is unavailable: no_such_framework_for_dlbench is not installed; "
     'run: pip install "no-such-framework"'),
    ("zero steps", ["--steps", "0"], "--steps': must be a positive integer, got 0"),
    ("zero repeat", ["--repeat", "0"], "--repeat': must be a positive integer, got 0"),
    ("bad sweep key", ["--sweep", "lr=1,2"],
     "--sweep: unknown sweep key 'lr'; expected one of batch_size, data_parallel, precision, seed, threads"),
    ("unknown precision in a sweep", ["--sweep", "precision=fp32,int8"],
     "--sweep: 'precision=fp32,int8': unknown precision 'int8'; expected one of bf16, fp16, fp32, tf32"),
    ("a precision and a precision sweep", ["--precision", "bf16", "--sweep", "precision=fp32,bf16"],
     "--precision: --precision and --sweep precision=... both choose the precision; use one"),
    ("bad sweep values", ["--sweep", "batch_size=a"], "--sweep: 'batch_size=a': expected batch_size=N[,N...]"),
    ("malformed backend option", ["--backend-option", "compile"], "--backend-option: 'compile': expected"),
    ("backend option for a backend not in the run", ["--backend", "numpy", "--backend-option", "jax.scan=false"],
     "backend 'jax' is not in this run"),
    ("unknown backend option", ["--backend", "numpy,tensorflow", "--backend-option", "tensorflow.xla=true"],
     "--backend-option: unknown tensorflow option 'xla'; expected one of jit_compile"),
    ("backend option of the wrong type", ["--backend", "numpy,tensorflow", "--backend-option",
                                          "tensorflow.jit_compile=3"], "tensorflow.jit_compile must be true or false, got 3"),
    ("backend option for a backend without options", ["--backend", "numpy,diverge", "--backend-option",
                                                      "diverge.fast=true"],
     "unknown diverge option 'fast'; it takes no options"),
    ("bad numpy dtype", ["--backend", "numpy", "--backend-option", "numpy.dtype=float16"],
     "numpy.dtype must be float32 or float64, got 'float16'"),
    ("conflicting flags", ["--resume", "x.json", "--steps", "3"],
     "--resume takes its settings from the document; drop --steps"),
    ("resume from a missing document", ["--resume", "nope.json"], "nope.json: cannot read result file"),
    ("unknown device", ["--device", "tpu"], "'tpu' is not one of 'cpu', 'gpu', 'auto'"),
    ("seeds twice", ["--seeds", "2", "--sweep", "seed=1,2"], "--seeds: --seeds and --sweep seed=... both choose"),
    ("negative sweep seed", ["--sweep", "seed=-1"], "--sweep: 'seed=-1': expected seed=N[,N...] with non-negative"),
    ("negative timeout", ["--timeout", "-1"], "--timeout': -1.0 is not in the range x>0"),
    ("zero timeout", ["--timeout", "0"], "--timeout': 0.0 is not in the range x>0"),
    ("unknown mode", ["--mode", "serve"], "--mode: unknown mode 'serve'; expected one of both, inference, train"),
    ("zero inference batch size", ["--backend", "numpy", "--mode", "inference", "--inference-batch-size", "0"],
     "--inference-batch-size: '0': expected positive integers, e.g. 1,32,256"),
    ("inference batch sizes not numbers", ["--mode", "inference", "--inference-batch-size", "1,many"],
     "--inference-batch-size: '1,many': expected positive integers"),
    ("zero inference calls", ["--mode", "inference", "--inference-calls", "0"],
     "--inference-calls': must be a positive integer, got 0"),
    ("inference on a backend that cannot run it", ["--backend", "numpy,diverge", "--mode", "inference"],
     "--backend: backend 'diverge' cannot run inference (it runs train); choose another --mode or backend"),
    ("both on a backend that cannot run inference", ["--backend", "diverge", "--mode", "both"],
     "--backend: backend 'diverge' cannot run inference"),
    ("unknown executor", ["--executor", "pbs"], "'pbs' is not one of 'local', 'slurm'"),
    ("a slurm option with the local executor", ["--slurm-time", "30"],
     "--slurm-time: only goes with --executor slurm (this run's executor is local); add --executor slurm or drop "
     "--slurm-time"),
    ("a slurm partition without slurm", ["--executor", "slurm", "--slurm-partition", "gpu"],
     "--slurm-partition: there is no Slurm on this machine (no srun on the PATH), so --executor slurm runs the jobs "
     "as local processes, which have no partitions or GPUs to ask for; drop --slurm-partition"),
    ("slurm gpus without slurm", ["--executor", "slurm", "--slurm-gpus-per-job", "1"],
     "--slurm-gpus-per-job: there is no Slurm on this machine"),
    ("zero slurm time", ["--executor", "slurm", "--slurm-time", "0"],
     "--slurm-time': must be a positive integer, got 0"),
    ("zero gpus per job", ["--executor", "slurm", "--slurm-gpus-per-job", "0"],
     "--slurm-gpus-per-job': must be a positive integer, got 0"),
    ("the slurm executor in process", ["--executor", "slurm", "--in-process"],
     "--executor: --in-process runs every job in this process, --executor slurm each in a job of its own; use one"),
    ("zero replicas", ["--data-parallel", "0"], "--data-parallel': must be a positive integer, got 0"),
    ("unknown scaling", ["--scaling", "linear"], "'linear' is not one of 'strong', 'weak'"),
    ("more replicas than cores", ["--scenario", "digits-mlp", "--data-parallel", "64"],
     "--data-parallel: 64 replicas of 1 thread(s) need 64 CPU cores; this machine has"),
    ("replicas not dividing the batch", ["--scenario", "digits-mlp", "--data-parallel", "2", "--batch-size", "33"],
     "--data-parallel: 2 replicas do not divide the global batch of 33 samples; use a batch size that is a "
     "multiple of 2"),
    ("replicas not dividing the last batch", ["--scenario", "chars-lstm", "--data-parallel", "2", "--threads", "1"],
     "--data-parallel: 2 replicas do not divide the last batch of each epoch (21 of 13077 samples at batch 32); "
     "set train.drop_last = true"),
    ("data parallel outside training", ["--scenario", "digits-mlp", "--data-parallel", "2", "--mode", "inference"],
     "--mode: data-parallel runs measure training; --mode inference runs on one replica"),
    ("replicas chosen twice", ["--data-parallel", "2", "--sweep", "data_parallel=1,2"],
     "--data-parallel: --data-parallel and --sweep data_parallel=... both choose the replicas; use one"),
    ("hosts without data parallel", ["--hosts", "a,b"],
     "--hosts: spreads data-parallel replicas over hosts; add --data-parallel N"),
    ("one host named", ["--scenario", "digits-mlp", "--data-parallel", "2", "--hosts", "a", "--node-rank", "0"],
     "--hosts: names 1 host; a multi-host run needs two or more"),
    ("a host that cannot tell its rank", ["--scenario", "digits-mlp", "--data-parallel", "2",
                                          "--hosts", "localhost,localhost"],
     "--node-rank: cannot tell which of localhost, localhost this host"),
    ("a node rank beyond the hosts", ["--scenario", "digits-mlp", "--data-parallel", "2", "--hosts", "a,b",
                                      "--node-rank", "3"], "--node-rank: 3 is not one of the 2 hosts' ranks 0..1"),
    ("replicas not spreading over the hosts", ["--scenario", "digits-mlp", "--data-parallel", "2",
                                               "--hosts", "a,b,c", "--node-rank", "0"],
     "--data-parallel: 2 replicas do not spread evenly over 3 hosts; use a multiple of 3"),
    ("a coordinator port out of range", ["--scenario", "digits-mlp", "--data-parallel", "2", "--hosts", "a,b",
                                         "--node-rank", "0", "--coordinator-port", "80"],
     "--coordinator-port: must be a port 1024..65535, got 80"),
    ("multi-host with the slurm executor", ["--scenario", "digits-mlp", "--data-parallel", "2", "--hosts", "a,b",
                                            "--node-rank", "0", "--executor", "slurm"],
     "--executor: a multi-host run is started on every host"),
]


@pytest.mark.parametrize("case, args, message", COMMAND_LINE_CASES, ids=[c[0] for c in COMMAND_LINE_CASES])
def test_bad_command_line(cli, tmp_path, monkeypatch, case, args, message):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", *args, *([] if "--resume" in args else ["--out", str(out)])])
    if (case in ("unknown device", "negative timeout", "zero timeout", "unknown executor", "unknown scaling")
            or "must be a positive integer" in message):
        # click's own usage errors: exit 2, no traceback, a usage line before the error line
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
        return
    assert_one_clear_line(result, message, out)


def test_the_slurm_executor_without_submitit_names_the_extra(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "submitit", None)  # what an interpreter without it imports
    out = tmp_path / "out"
    result = cli.invoke(main, ["run", "--executor", "slurm", "--out", str(out)])
    assert_one_clear_line(result, '--executor: --executor slurm needs submitit, which is not installed; run: '
                                  'pip install "dlbench[cluster]"', out)


def test_unwritable_output_folder(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli.invoke(main, ["run", "--backend", "numpy", "--out", str(blocker / "runs")])
    assert_one_clear_line(result, f"{blocker / 'runs'}: --out: cannot create output folder", tmp_path / "none")
