"""The spec's losses and their options, each convention written once.

A loss is a name, or a table naming it with its options (TOML
``loss = {name = "huber", delta = 0.5}``; Python ``{"name": "huber", "delta": 0.5}``).
Every backend computes it from the logits ``z`` of the last layer (its
activation ``f`` left out); ``t`` is the target, ``N`` the number of elements
it is averaged over (batch times units), ``B`` the batch (times the timesteps
of a per-timestep output), ``K`` the classes.

* ``categorical_crossentropy`` (option ``label_smoothing`` = eps in [0, 1),
  default 0): ``E = mean_B(-sum_j q_j log softmax(z)_j)`` with the smoothed
  target ``q = (1 - eps) onehot(y) + eps / K``, i.e.
  ``logsumexp(z) - (1 - eps) z[y] - eps mean_j(z_j)``; ``dE/dz = (softmax(z) - q) / B``.
  Output: softmax. torch's ``CrossEntropyLoss(label_smoothing=eps)`` ("a mixture of
  the original ground truth and a uniform distribution", Szegedy et al. 2016) and
  Keras's ``CategoricalCrossentropy(label_smoothing=eps)`` ("0.1/num_classes for
  non-target labels and 0.9 + 0.1/num_classes for target labels") define the same q.
  A ``log_softmax`` output with the negative log-likelihood (torch's ``nn.NLLLoss``,
  ``F.nll_loss``) is this loss: ``log_softmax`` of log-probabilities changes
  nothing, so the readers make it a softmax output with categorical_crossentropy.
* ``binary_crossentropy``: ``mean(max(z, 0) - z t + log(1 + exp(-|z|)))``; output:
  one sigmoid unit.
* ``mse``: ``mean_N((f(z) - t)^2)`` (torch ``MSELoss``, ``keras.losses.MeanSquaredError``).
* ``mae``: ``mean_N(|f(z) - t|)``, gradient ``f'(z) sign(f(z) - t) / N`` with
  ``sign(0) = 0`` (torch ``L1Loss``'s gradient, TensorFlow's ``abs``'s;
  ``keras.losses.MeanAbsoluteError``).
* ``huber`` (option ``delta`` > 0, default 1.0 as in torch, Keras and optax):
  with ``r = f(z) - t``, ``mean_N(0.5 r^2 if |r| <= delta else delta (|r| - 0.5 delta))``,
  gradient ``f'(z) clip(r, -delta, delta) / N`` (torch ``HuberLoss(delta=)``,
  ``keras.losses.Huber(delta=)``, ``optax.huber_loss(delta=)``, which agree).

The regression losses (mse, mae, huber) take float targets of one value per
output unit (a dataset of shape (n,) for one unit, (n, k) for k units). mse
also takes class labels, compared as a label (one unit) or its one-hot
encoding (several units); mae and huber take float targets only.
"""

from __future__ import annotations

from dlbench.errors import InputError, one_of
from dlbench.network.checks import check_choice, check_number

LOSSES = ("binary_crossentropy", "categorical_crossentropy", "mse", "mae", "huber")
#: the losses that compare outputs with float targets (a regression model's)
REGRESSION_LOSSES = ("mse", "mae", "huber")
#: the losses that compare outputs with class labels only
CLASSIFICATION_LOSSES = ("binary_crossentropy", "categorical_crossentropy")
#: each loss's options and their defaults
LOSS_OPTIONS = {"categorical_crossentropy": {"label_smoothing": 0.0}, "huber": {"delta": 1.0}}


def make_loss(loss) -> tuple[str, dict]:
    """(name, options with their defaults) of ``"mse"`` or ``{"name": "huber", "delta": 0.5}``, checked."""
    if isinstance(loss, str):
        return _checked(loss, {}, "loss")
    if not isinstance(loss, dict):
        raise InputError(f"must be a loss name or a table with its name and options, got {loss!r}", field="loss")
    options = dict(loss)
    if "name" not in options:
        raise InputError(f"missing; {one_of(LOSSES)}", field="loss.name")
    return _checked(options.pop("name"), options, "loss.name")


def _checked(name, options: dict, name_field: str) -> tuple[str, dict]:
    name = check_choice(name, LOSSES, name_field)
    allowed = LOSS_OPTIONS.get(name, {})
    for key in options:
        if key not in allowed:
            takes = f"{one_of(allowed)}" if allowed else "it takes no options"
            raise InputError(f"unknown option {key!r} of loss {name!r}; {takes}", field=f"loss.{key}")
    resolved = {**allowed, **options}
    if "delta" in resolved:
        resolved["delta"] = check_number(resolved["delta"], "loss.delta", low=0.0)
    if "label_smoothing" in resolved:
        resolved["label_smoothing"] = check_number(resolved["label_smoothing"], "loss.label_smoothing",
                                                   low=0.0, high=1.0, low_open=False)
    return name, resolved


def loss_table(name: str, options: dict):
    """The TOML value of a loss: its name alone where every option is its default."""
    if options == LOSS_OPTIONS.get(name, {}):
        return name
    return {"name": name, **options}
