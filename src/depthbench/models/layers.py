"""Small building blocks shared by the network families: activations, weight init, validation.

A bad constructor argument raises ``ConfigError`` (a ``ValueError``), the one exception type for
invalid configuration: the command line prints it as one line.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from depthbench.errors import ConfigError

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "identity": nn.Identity,
}
INITS = ("default", "kaiming", "he", "xavier")  # "he" is another name for "kaiming"


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` (one of ``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_positive_int(
    name: str, value: object, minimum: int = 1, allow_null: bool = False
) -> int | None:
    """Validate a size argument (depth, width, ``data.batch_size``, ...) and return it.

    ``value`` must be an integer >= ``minimum`` (or None when ``allow_null``); else ConfigError.
    """
    if value is None and allow_null:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null" if allow_null else "")
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    return value


def init_weights(module: nn.Module, scheme: str, activation: str = "relu") -> None:
    """Re-initialise every Linear/Conv weight in ``module`` with ``scheme``.

    ``default`` keeps PyTorch's init (Kaiming-uniform with a=sqrt(5)); ``kaiming`` (or ``he``) is
    He et al. 2015 (fan-in, gain for ReLU); ``xavier`` is Glorot & Bengio 2010 (fan-in + fan-out,
    gain 1), the init the lesson pairs with sigmoid/tanh. Biases are zeroed for every non-default
    scheme.
    """
    if scheme not in INITS:
        raise ConfigError(f"unknown init {scheme!r}; allowed: {', '.join(INITS)}")
    if scheme == "default":
        return
    nonlinearity = "leaky_relu" if activation == "leaky_relu" else "relu"
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme in ("kaiming", "he"):
                nn.init.kaiming_normal_(m.weight, nonlinearity=nonlinearity)
            else:
                nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
