"""torch modules with their own forward (and, for benchmark, Keras functional graphs), read into
specs: every call of a module, residual adds, the layers the spec has, and one
error listing every part that cannot be read."""

import os

import numpy as np
import pytest

import dlbench
from dlbench import InputError
from dlbench.plugin.manager import get_plugins

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
L, nn, F = keras.layers, torch.nn, torch.nn.functional


def torch_reader():
    return get_plugins().backend("torch")


def spec_logits(imported, x, backend="numpy"):
    """The converted model's logits on ``x`` (channels-last), by ``backend`` (the NumPy reference)."""
    from dlbench.data.base import Dataset
    from dlbench.data.batches import BatchPlan
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.measure.session import prepare

    y = np.zeros(len(x), np.int64)
    data = Dataset(x, y, x, y, 2)
    session = prepare(get_plugins().backend(backend), imported.spec, data, BatchPlan(len(x), len(x), 1, 0),
                      TrainerOptions(), imported.weights)
    return session.trainer.predict(np.arange(len(x)))


def test_a_module_shared_in_a_sequential_is_applied_at_each_call():
    """One nn.ReLU() and one pool used twice: named_children() lists each once, the network calls each twice."""
    torch.manual_seed(0)
    relu, pool = nn.ReLU(), nn.MaxPool2d(2)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), relu, pool, nn.Conv2d(2, 3, 3, padding=1), relu, pool,
                        nn.Flatten(), nn.Linear(12, 4), relu, nn.Linear(4, 3))
    spec = dlbench.from_torch(net, (1, 8, 8), loss=nn.CrossEntropyLoss())
    kinds = [layer.type for layer in spec.layers]
    assert kinds == ["conv2d", "activation", "maxpool2d", "conv2d", "activation", "maxpool2d", "flatten", "dense",
                     "activation", "dense", "activation"]
    mlp = nn.Sequential(nn.Linear(2, 5), relu, nn.Linear(5, 5), relu, nn.Linear(5, 3))
    imported = torch_reader().import_model(mlp, input_shape=(2,), loss=nn.CrossEntropyLoss())
    x = np.random.default_rng(0).standard_normal((16, 2)).astype(np.float32)
    with torch.no_grad():
        expected = mlp(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(spec_logits(imported, x), expected, rtol=1e-5, atol=1e-6)


def first_loss(imported, x, y):
    """dlbench's first training loss on the batch (x, y), by the NumPy backend."""
    from dlbench.data.base import Dataset
    from dlbench.data.batches import BatchPlan
    from dlbench.plugin.backend import TrainerOptions
    from dlbench.measure.session import prepare

    data = Dataset(x, y, x, y, max(imported.spec.output_shape[-1], 2))
    session = prepare(get_plugins().backend("numpy"), imported.spec, data, BatchPlan(len(x), len(x), 1, 0),
                      TrainerOptions(), imported.weights)
    return float(session.trainer.train(np.arange(len(x))[None, :])[0])


class TinyDecoder(nn.Module):
    """A pre-norm Transformer block written as torch users write it: a causal mask made in forward,
    residual adds, tanh GELU, mean pooling over time."""

    def __init__(self, vocab=20, d=8, heads=2):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d, eps=1e-3)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ff1, self.ff2 = nn.Linear(d, 16), nn.Linear(16, d)
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        x = self.emb(x)
        h = self.ln1(x)
        mask = nn.Transformer.generate_square_subsequent_mask(x.size(1))
        a, _ = self.attn(h, h, h, attn_mask=mask, need_weights=False)
        x = x + a
        x = x + self.ff2(F.gelu(self.ff1(self.ln2(x)), approximate="tanh"))
        return self.head(x.mean(dim=1))


def test_a_class_based_transformer_block_converts_exactly():
    torch.manual_seed(0)
    net = TinyDecoder()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # biases and norms that are not their initial zeros and ones
    imported = torch_reader().import_model(net, input_shape=(6,), loss=F.cross_entropy)
    spec = imported.spec
    assert [layer.type for layer in spec.layers] == ["embedding", "residual", "residual", "global_average_pool1d",
                                                      "dense", "activation"]
    attention_block, feed_forward = spec.layers[1], spec.layers[2]
    assert [layer.type for layer in attention_block.layers] == ["layer_norm", "self_attention"]
    assert attention_block.layers[1] == dlbench.SelfAttention(num_heads=2, key_dim=4, causal=True)
    assert feed_forward.layers[0].epsilon == 1e-3 and feed_forward.layers[2] == dlbench.Activation("gelu_tanh")
    x = np.random.default_rng(0).integers(0, 20, (8, 6))
    y = np.arange(8) % 3
    net.eval()
    with torch.no_grad():
        logits = net(torch.from_numpy(x))
        loss = float(F.cross_entropy(logits, torch.from_numpy(y)))
    np.testing.assert_allclose(spec_logits(imported, x), logits.numpy(), rtol=1e-4, atol=1e-5)
    assert first_loss(imported, x, y) == pytest.approx(loss, rel=1e-5)


class StackedRecurrent(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.rnn = getattr(nn, kind)(5, 6, num_layers=2, dropout=0.25, batch_first=True)
        self.out = nn.Linear(6, 3)
        self.kind = kind

    def forward(self, x):
        _, state = self.rnn(x)
        h_n = state[0] if self.kind == "LSTM" else state  # (h_n, c_n) of an LSTM
        return F.log_softmax(self.out(h_n[-1]), dim=1)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_stacked_torch_recurrent_layers_convert_exactly_and_say_how_they_train(kind):
    """Gate orders, b_ih + b_hh (GRU: both rows), num_layers=2 with its dropout between, h_n[-1]."""
    torch.manual_seed(0)
    net = StackedRecurrent(kind)
    imported = torch_reader().import_model(net, input_shape=(7, 5), loss=nn.NLLLoss())
    layers = imported.spec.layers
    spec_kind = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}[kind]
    assert [layer.type for layer in layers] == [spec_kind, "dropout", spec_kind, "dense", "activation"]
    assert layers[0].return_sequences and not layers[2].return_sequences and layers[1].rate == 0.25
    assert imported.channels_first is False  # (N, L, C) as nn.LSTM(batch_first=True) takes it: nothing moved
    assert ("trains like a one-bias Keras RNN" in imported.description) == (kind != "GRU")
    x = np.random.default_rng(1).standard_normal((8, 7, 5)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    logits = spec_logits(imported, x)
    np.testing.assert_allclose(logits - np.log(np.exp(logits).sum(1, keepdims=True)), expected, rtol=1e-4,
                               atol=1e-5)


class ThreeProblems(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, dilation=2)
        self.act = nn.Hardswish()
        self.pool = nn.LPPool2d(2, 2)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = self.pool(self.act(self.conv(x)))
        return self.fc(x.flatten(1))


class TiedLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


def test_every_unreadable_part_is_named_in_one_error():
    with pytest.raises(InputError) as caught:
        dlbench.from_torch(ThreeProblems(), (1, 12, 12), loss=nn.CrossEntropyLoss())
    message = str(caught.value)
    assert message.startswith("torch ThreeProblems: model: 3 parts of the model cannot be read: [1] layer 0 "
                              "('conv', Conv2d, line ")
    assert "x = self.pool(self.act(self.conv(x)))): dilation=(2, 2)" in message
    assert "[2] layer 1 ('act', Hardswish, line " in message and "Hardswish modules cannot be read" in message
    assert "[3] layer 2 ('pool', LPPool2d, line " in message and "LPPool2d modules cannot be read" in message
    assert message.count("Supported: Linear, Conv1d") == 1 and "\n" not in message
    with pytest.raises(InputError, match=r"Linear 'fc' is called again \(line \d+: return self.fc\(torch.relu"
                                         r"\(self.fc\(x\)\)\), then here\): its weights are shared"):
        dlbench.from_torch(TiedLinear(), (4,), loss="mse")


def test_losses_as_users_write_them_are_read_or_refused_by_name():
    class LogProbabilities(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return F.log_softmax(self.fc(x), dim=1)

    for loss in (F.nll_loss, nn.NLLLoss(), F.cross_entropy, None):
        assert dlbench.from_torch(LogProbabilities(), (4,), loss=loss).loss == "categorical_crossentropy"
    with pytest.raises(InputError, match="NLLLoss takes log-probabilities, but the module ends in logits"):
        dlbench.from_torch(nn.Sequential(nn.Linear(4, 3)), (4,), loss=F.nll_loss)
    with pytest.raises(InputError, match="loss smooth_l1_loss cannot be read; expected a dlbench loss name"):
        dlbench.from_torch(nn.Sequential(nn.Linear(4, 3)), (4,), loss=F.smooth_l1_loss)
    with pytest.raises(InputError, match="MSELoss of log-probabilities"):
        dlbench.from_torch(LogProbabilities(), (4,), loss=nn.MSELoss())


class DigitsNet(nn.Module):
    """A class with its own forward: a shared pool, functional calls, a residual MLP block, log_softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1, self.fc2, self.fc3, self.out = nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 16), nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.pool(F.relu(self.conv(x))))
        x = torch.relu(self.fc1(x.view(x.size(0), -1)))
        x = x + self.fc3(F.relu(self.fc2(x)))
        return F.log_softmax(self.out(x), dim=1)


def keras_digits():
    inputs = keras.Input((8, 8, 1))
    x = L.Flatten()(L.MaxPooling2D(2)(L.Conv2D(4, 3, padding="same", activation="relu")(inputs)))
    x = L.Dense(16, activation="relu")(x)
    x = L.Add()([x, L.Dense(16)(L.Dense(16, activation="relu")(x))])
    model = keras.Model(inputs, L.Dense(10, activation="softmax")(x), name="digits_residual")
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), optimizer=keras.optimizers.Adam(0.003))
    return model


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["torch", "keras"])
def test_a_traced_torch_module_and_a_functional_keras_model_train_alike_on_four_backends(kind):
    from test_model_import import BUILT_INS, EIGHT_EPOCHS, assert_four_agreeing_rows, digit_images

    torch.manual_seed(0)
    model = DigitsNet() if kind == "torch" else keras_digits()
    options = {"loss": F.nll_loss, "weights": "model"} if kind == "torch" else {}
    results = dlbench.benchmark(model, data=digit_images(channels_first=kind == "torch"), backends=BUILT_INS,
                                batch_size=32, progress=False, **EIGHT_EPOCHS, **options)
    assert_four_agreeing_rows(results)
    assert results.rows[0].scenario == ("torch-digitsnet" if kind == "torch" else "keras-digits_residual")


class LastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru, self.out = nn.GRU(5, 6, batch_first=True), nn.Linear(6, 3)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.out(out[:, -1])


@pytest.mark.slow  # a worker process: about a minute on a loaded machine
def test_a_torch_sequence_model_takes_its_data_batch_first_as_torch_does():
    """(N, L, C) for nn.GRU(batch_first=True) is the spec's layout: benchmark moves nothing (an image it would)."""
    torch.manual_seed(0)
    net = LastStep()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 7, 5)).astype(np.float32), np.arange(16) % 3
    results = dlbench.benchmark(net, data=(x, y, x, y), backends="numpy", loss=nn.CrossEntropyLoss(), batch_size=16,
                                steps=1, weights="model", progress=False)
    assert results.rows[0].status == "ok", results.rows[0].error
    with torch.no_grad():
        expected = float(F.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y)))
    assert results.rows[0].metrics["loss_history"][0] == pytest.approx(expected, rel=1e-5)


def test_a_reshape_of_the_input_says_which_input_shape_makes_it_nothing():
    class Rows(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc = nn.LSTM(28, 8, batch_first=True), nn.Linear(8, 10)

        def forward(self, x):
            out, _ = self.rnn(x.reshape(-1, 28, 28))
            return self.fc(out[:, -1, :])

    with pytest.raises(InputError, match=r"reshape to \(-1, 28, 28\) of \(1, 28, 28\); supported: .*a reshape of "
                                         "the input: input_shape= the shape it makes"):
        dlbench.from_torch(Rows(), (1, 28, 28), loss=nn.CrossEntropyLoss())
    assert dlbench.from_torch(Rows(), (28, 28), loss=nn.CrossEntropyLoss()).input_shape == (28, 28)


class TextCNN(nn.Module):
    """Embedding, permute to (N, C, L), Conv1d, max over time by F.max_pool1d(x, x.size(2)).squeeze(2)."""

    def __init__(self):
        super().__init__()
        self.emb, self.conv, self.fc = nn.Embedding(30, 6), nn.Conv1d(6, 4, 3), nn.Linear(4, 3)

    def forward(self, x):
        x = self.emb(x).permute(0, 2, 1)
        x = F.relu(self.conv(x))
        x = F.max_pool1d(x, x.size(2)).squeeze(2)
        return self.fc(F.dropout(x, 0.5, training=self.training))


def test_a_torch_text_cnn_moves_between_layouts_and_converts_exactly():
    torch.manual_seed(0)
    net = TextCNN()
    imported = torch_reader().import_model(net, input_shape=(9,), loss=nn.CrossEntropyLoss())
    assert [layer.type for layer in imported.spec.layers] == ["embedding", "conv1d", "activation", "maxpool1d",
                                                              "flatten", "dropout", "dense", "activation"]
    x = np.random.default_rng(4).integers(0, 30, (8, 9))
    net.eval()
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(spec_logits(imported, x), expected, rtol=1e-4, atol=1e-5)


class ExplicitState(nn.Module):
    """The initial state written out, as many tutorials do: zeros are the spec's, anything else is refused."""

    def __init__(self, fill=0.0):
        super().__init__()
        self.lstm, self.fc, self.fill = nn.LSTM(5, 6, num_layers=2, batch_first=True), nn.Linear(6, 3), fill

    def forward(self, x):
        h0 = torch.full((2, x.size(0), 6), self.fill).to(x.device)
        c0 = torch.zeros(2, x.size(0), 6).to(x.device)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(out[:, -1, :])


def test_an_initial_state_of_zeros_is_the_specs_and_another_is_refused():
    spec = dlbench.from_torch(ExplicitState(), (7, 5), loss=nn.CrossEntropyLoss())
    assert [layer.type for layer in spec.layers] == ["lstm", "lstm", "dense", "activation"]
    with pytest.raises(InputError, match=r"layer \d+ \('lstm', LSTM, line \d+: out, _ = self.lstm\(x, \(h0, c0\)\)\): "
                                         r"LSTM called with 2 more argument\(s\) \(an initial state\?\)"):
        dlbench.from_torch(ExplicitState(fill=0.5), (7, 5), loss=nn.CrossEntropyLoss())


class PositionsAdded(nn.Module):
    """Token and position embeddings as GPT-style code adds them: an nn.Embedding of arange(T), or a parameter."""

    def __init__(self, table="embedding"):
        super().__init__()
        self.tok = nn.Embedding(20, 8)
        self.pos = nn.Embedding(16, 8) if table == "embedding" else nn.Parameter(0.1 * torch.randn(1, 6, 8))
        self.table, self.fc = table, nn.Linear(8, 3)

    def forward(self, x):
        positions = torch.arange(0, x.size(1), dtype=torch.long)
        x = self.tok(x) + (self.pos(positions) if self.table == "embedding" else self.pos)
        return self.fc(x.mean(dim=1))


@pytest.mark.parametrize("table", ["embedding", "parameter"])
def test_a_learned_position_table_added_in_forward_is_the_specs_position_embedding(table):
    torch.manual_seed(0)
    net = PositionsAdded(table)
    imported = torch_reader().import_model(net, input_shape=(6,), loss=nn.CrossEntropyLoss())
    assert [layer.type for layer in imported.spec.layers] == ["embedding", "position_embedding",
                                                              "global_average_pool1d", "dense", "activation"]
    x = np.random.default_rng(5).integers(0, 20, (8, 6))
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(spec_logits(imported, x), expected, rtol=1e-4, atol=1e-5)


class BasicBlock(nn.Module):
    """A ResNet basic block as torchvision writes it: BatchNorm in the branch, ``out += identity``."""

    def __init__(self, channels):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.conv2, self.bn2 = nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class TinyResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.layer1 = nn.Conv2d(1, 4, 3, padding=1), nn.Sequential(BasicBlock(4), BasicBlock(4))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d((1, 1)), nn.Linear(4, 10)

    def forward(self, x):
        x = self.layer1(F.relu(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


@pytest.mark.parametrize("backend", ["numpy", "torch", "tensorflow", "jax"])
def test_resnet_blocks_on_feature_maps_convert_exactly_on_every_backend(backend):
    """Residual blocks of convolutions and BatchNorm (moving statistics of their own), adaptive pooling."""
    torch.manual_seed(0)
    net = TinyResNet()
    with torch.no_grad():
        net.train()(torch.randn(16, 1, 8, 8) * 2 + 1)
    imported = torch_reader().import_model(net.eval(), input_shape=(1, 8, 8), loss=nn.CrossEntropyLoss())
    assert [layer.type for layer in imported.spec.layers] == ["conv2d", "activation", "residual", "activation",
                                                              "residual", "activation", "averagepool2d", "flatten",
                                                              "dense", "activation"]
    x = np.random.default_rng(6).standard_normal((8, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    ours = spec_logits(imported, np.ascontiguousarray(np.moveaxis(x, 1, -1)), backend)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


class ActivationsAndBiasFree(nn.Module):
    """Every activation form the spec has, bias-free layers and global max pooling over a map: refused before
    (bias=False, exact GELU, LeakyReLU, SiLU, ELU, amax)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, bias=False)
        self.conv2 = nn.Conv2d(3, 4, 1)
        self.acts = nn.Sequential(nn.GELU(), nn.LeakyReLU(0.2), nn.ELU(alpha=0.7), nn.SiLU())
        self.fc = nn.Linear(4, 5, bias=False)
        self.out = nn.Linear(5, 3)

    def forward(self, x):
        x = F.gelu(self.acts(self.conv(x)), approximate="tanh")
        x = F.elu(F.silu(self.conv2(x)), alpha=0.5)
        x = F.leaky_relu(x.amax((2, 3)))
        return self.out(F.gelu(self.fc(x)))


def test_torch_activations_bias_free_layers_and_amax_pooling_convert_exactly():
    torch.manual_seed(0)
    net = ActivationsAndBiasFree()
    imported = torch_reader().import_model(net, input_shape=(2, 6, 6), loss=nn.CrossEntropyLoss())
    described = [(layer.type, getattr(layer, "activation", None), getattr(layer, "alpha", None),
                  getattr(layer, "use_bias", None)) for layer in imported.spec.layers]
    assert described == [
        ("conv2d", "linear", None, False), ("activation", "gelu_erf", None, None),
        ("activation", "leaky_relu", 0.2, None), ("activation", "elu", 0.7, None), ("activation", "silu", None, None),
        ("activation", "gelu_tanh", None, None), ("conv2d", "linear", None, True), ("activation", "silu", None, None),
        ("activation", "elu", 0.5, None), ("global_max_pool2d", None, None, None),
        ("activation", "leaky_relu", 0.01, None), ("dense", "linear", None, False),
        ("activation", "gelu_erf", None, None), ("dense", "linear", None, True), ("activation", "softmax", None, None)]
    assert_torch_exact(net, imported, np.random.default_rng(1).standard_normal((8, 2, 6, 6)).astype(np.float32))


def assert_torch_exact(net, imported, x):
    """The converted model's logits and first loss are torch's own (cross-entropy on logits), x as torch takes it."""
    y = np.arange(len(x)) % 3
    with torch.no_grad():
        logits = net(torch.from_numpy(x))
        loss = float(F.cross_entropy(logits, torch.from_numpy(y)))
    ours = x.transpose(0, 2, 3, 1) if imported.channels_first and x.ndim == 4 else x
    np.testing.assert_allclose(spec_logits(imported, ours), logits.numpy(), rtol=1e-4, atol=1e-5)
    assert first_loss(imported, ours, y) == pytest.approx(loss, rel=1e-5)


class BidirectionalText(nn.Module):
    def __init__(self, kind, last=False):
        super().__init__()
        self.embed = nn.Embedding(20, 4)
        self.rnn = getattr(nn, kind)(4, 3, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(6, 3)
        self.last = last

    def forward(self, x):
        out, _ = self.rnn(self.embed(x))
        return self.out(out[:, -1] if self.last else out.amax(1))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_a_torch_bidirectional_recurrent_layer_converts_exactly(kind):
    """weight_*_l{k} and weight_*_l{k}_reverse as forward.* and backward.*, one canonical bias per direction."""
    torch.manual_seed(0)
    net = BidirectionalText(kind)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))  # biases that are not their initial values
    imported = torch_reader().import_model(net, input_shape=(7,), loss=nn.CrossEntropyLoss())
    layers = imported.spec.layers
    assert [layer.type for layer in layers] == ["embedding", "bidirectional", "bidirectional", "global_max_pool1d",
                                                "dense", "activation"]
    assert layers[2].layer.units == 3 and layers[2].layer.return_sequences
    assert_torch_exact(net, imported, np.random.default_rng(3).integers(0, 20, (8, 7)))


def test_the_last_step_of_a_torch_bidirectional_layer_is_refused():
    with pytest.raises(InputError, match=r"the last step or state of a bidirectional layer: torch's out\[:, -1\] "
                                         "holds the backward direction after one step"):
        torch_reader().import_model(BidirectionalText("GRU", last=True), input_shape=(7,), loss=nn.CrossEntropyLoss())



class TextMax(nn.Module):
    """A text CNN's maximum over time as published models write it: ``torch.max(x, dim)``'s values,
    unpacked, indexed or read as ``.values``."""

    def __init__(self, how):
        super().__init__()
        self.emb, self.conv, self.fc = nn.Embedding(30, 6), nn.Conv1d(6, 4, 3), nn.Linear(4, 3)
        self.how = how

    def forward(self, x):
        x = F.relu(self.conv(self.emb(x).permute(0, 2, 1)))  # (N, C, L)
        if self.how == "unpacked":
            x, _ = torch.max(x, dim=2)
        elif self.how == "indexed":
            x = torch.max(x, 2)[0]
        else:
            x = x.max(dim=2).values
        return self.fc(x)


class RecurrentMax(nn.Module):
    """The maximum over time of an LSTM's (N, L, C) outputs."""

    def __init__(self):
        super().__init__()
        self.emb, self.lstm, self.fc = nn.Embedding(30, 6), nn.LSTM(6, 5, batch_first=True), nn.Linear(5, 3)

    def forward(self, x):
        out, _ = self.lstm(self.emb(x))
        return self.fc(torch.max(out, 1)[0])


class MaxIndices(nn.Module):
    def __init__(self, whole):
        super().__init__()
        self.emb, self.fc, self.whole = nn.Embedding(30, 4), nn.Linear(4, 3), whole

    def forward(self, x):
        x = self.emb(x)  # (N, L, C)
        return self.fc(torch.max(x) * x[:, 0]) if self.whole else self.fc(torch.max(x, 1)[1].float())


@pytest.mark.parametrize("how", ["unpacked", "indexed", "values"])
def test_torch_max_over_time_is_global_max_pooling(how):
    """``torch.max(x, dim)`` returns (values, indices); its values are x.amax(dim), which the reader took
    while it refused ``max`` by name."""
    torch.manual_seed(0)
    net = TextMax(how)
    imported = torch_reader().import_model(net, input_shape=(9,), loss=nn.CrossEntropyLoss())
    assert [layer.type for layer in imported.spec.layers] == ["embedding", "conv1d", "activation",
                                                              "global_max_pool1d", "dense", "activation"]
    assert_torch_exact(net, imported, np.random.default_rng(5).integers(0, 30, (8, 9)))


def test_torch_max_over_an_lstms_outputs_converts_exactly_and_its_indices_are_refused():
    torch.manual_seed(0)
    net = RecurrentMax()
    imported = torch_reader().import_model(net, input_shape=(7,), loss=nn.CrossEntropyLoss())
    assert [layer.type for layer in imported.spec.layers] == ["embedding", "lstm", "global_max_pool1d", "dense",
                                                              "activation"]
    assert_torch_exact(net, imported, np.random.default_rng(6).integers(0, 30, (8, 7)))
    with pytest.raises(InputError, match=r"torch.max of a whole tensor or of two tensors; supported: "
                                         r"torch.max\(x, dim\) or x.max\(dim\) over time or space"):
        torch_reader().import_model(MaxIndices(whole=True), input_shape=(7,), loss=nn.CrossEntropyLoss())
    with pytest.raises(InputError, match=r"reads the indices of torch.max; supported: the values of "
                                         r"torch.max\(x, dim\)"):
        torch_reader().import_model(MaxIndices(whole=False), input_shape=(7,), loss=nn.CrossEntropyLoss())
