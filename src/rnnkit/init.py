r"""Initialisation schemes, the classic remedies against vanishing and exploding gradients at the
start of training.

Array initialisers fill a parameter **in place** (so optimisers holding it keep working) and take
``blocks``: a fused gate matrix of shape (G*H, N) is G blocks of (H, N), and each gate block is
initialised as a matrix of its own (the fan-in and fan-out of one gate, one orthogonal matrix per
gate), which is what the schemes' derivations assume.

- :func:`uniform_`: U(-bound, bound); PyTorch's default for recurrent layers is bound = 1/sqrt(H).
- :func:`xavier_uniform_`, :func:`xavier_normal_` (Glorot & Bengio 2010): variance
  :math:`2 / (\text{fan\_in} + \text{fan\_out})`, times ``gain``\ :sup:`2`.
- :func:`orthogonal_` (Saxe et al. 2014): an orthogonal matrix (QR of a Gaussian matrix, signs
  fixed so that the distribution is uniform), times ``gain``; its singular values are all 1, so
  repeated products neither shrink nor grow a vector.
- :func:`identity_` (IRNN, Le et al. 2015): ``gain`` times the identity for ReLU RNNs, which
  then start by copying their state forward.

:func:`init_recurrent` applies a choice of these to every layer and direction of a recurrent
layer, and sets biases, with the LSTM's forget-gate bias as its own option (1.0 is the classic
choice: Gers et al. 2000, Jozefowicz et al. 2015).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rnnkit import _checks
from rnnkit.nn.recurrent import LSTM, Recurrent


def _blocks(array: np.ndarray, blocks: int) -> list[np.ndarray]:
    """Views of the ``blocks`` equal row blocks of a 2-D array."""
    if not isinstance(array, np.ndarray) or array.ndim != 2:
        raise ValueError(f"array must be a 2-D numpy.ndarray, got {getattr(array, 'shape', array)}")
    blocks = _checks.positive_int("blocks", blocks)
    if array.shape[0] % blocks:
        raise ValueError(f"array has {array.shape[0]} rows, not divisible into {blocks} blocks")
    n = array.shape[0] // blocks
    return [array[k * n : (k + 1) * n] for k in range(blocks)]


def uniform_(array: np.ndarray, bound: float, seed: Any = None) -> np.ndarray:
    """Fill ``array`` from U(-bound, bound), in place."""
    rng = _checks.rng(seed)
    array[...] = rng.uniform(-bound, bound, array.shape)
    return array


def xavier_uniform_(
    array: np.ndarray, gain: float = 1.0, blocks: int = 1, seed: Any = None
) -> np.ndarray:
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)) per gate block."""
    rng = _checks.rng(seed)
    for block in _blocks(array, blocks):
        fan_out, fan_in = block.shape
        bound = gain * np.sqrt(6.0 / (fan_in + fan_out))
        block[...] = rng.uniform(-bound, bound, block.shape)
    return array


def xavier_normal_(
    array: np.ndarray, gain: float = 1.0, blocks: int = 1, seed: Any = None
) -> np.ndarray:
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) per gate block."""
    rng = _checks.rng(seed)
    for block in _blocks(array, blocks):
        fan_out, fan_in = block.shape
        block[...] = rng.normal(0.0, gain * np.sqrt(2.0 / (fan_in + fan_out)), block.shape)
    return array


def orthogonal_(
    array: np.ndarray, gain: float = 1.0, blocks: int = 1, seed: Any = None
) -> np.ndarray:
    """An orthogonal matrix times ``gain`` per gate block (orthonormal rows or columns, whichever
    are fewer), from the QR decomposition of a Gaussian matrix with the signs of R's diagonal
    folded into Q (Mezzadri 2007), as PyTorch and Keras do."""
    rng = _checks.rng(seed)
    for block in _blocks(array, blocks):
        rows, cols = block.shape
        a = rng.standard_normal((max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)  # q (max, min) with orthonormal columns
        q *= np.sign(np.diag(r))
        block[...] = gain * (q if rows >= cols else q.T)
    return array


def identity_(array: np.ndarray, gain: float = 1.0, blocks: int = 1) -> np.ndarray:
    """``gain`` times the identity per (square) gate block: the IRNN's recurrent weights."""
    for block in _blocks(array, blocks):
        if block.shape[0] != block.shape[1]:
            raise ValueError(f"identity_ needs square blocks, got {block.shape}")
        block[...] = gain * np.eye(block.shape[0])
    return array


INPUT_SCHEMES = ("pytorch", "xavier_uniform", "xavier_normal", "orthogonal", "normal")
RECURRENT_SCHEMES = ("pytorch", "orthogonal", "identity", "xavier_uniform", "xavier_normal")


def init_recurrent(
    layer: Recurrent,
    *,
    input: str = "xavier_uniform",
    recurrent: str = "orthogonal",
    bias: float | None = 0.0,
    forget_bias: float | None = None,
    gain: float = 1.0,
    input_std: float = 0.001,
    seed: Any = None,
) -> Recurrent:
    """Re-initialise every layer and direction of a recurrent layer, in place.

    Args:
        layer: an :class:`rnnkit.RNN`, :class:`rnnkit.LSTM`, :class:`rnnkit.GRU` or any
            :class:`rnnkit.nn.Recurrent`.
        input: scheme of ``weight_ih``: "xavier_uniform" (default), "xavier_normal",
            "orthogonal", "normal" (N(0, input_std^2), the IRNN's choice) or "pytorch"
            (U(-1/sqrt(H), 1/sqrt(H))).
        recurrent: scheme of ``weight_hh``: "orthogonal" (default), "identity" (IRNN),
            "xavier_uniform", "xavier_normal" or "pytorch".
        bias: value of every bias, or None to leave the biases as they are.
        forget_bias: LSTM only: the value of the forget gate's total bias ``b_if + b_hf``
            (set in ``bias_ih``; ``bias_hh``'s forget block is set to 0). 1.0 is the classic
            choice. None leaves it at ``bias``.
        gain: multiplies the weights (xavier, orthogonal, identity).
        input_std: standard deviation of the "normal" input scheme.
        seed: int, Generator or None.

    Returns:
        The layer.

    Example:
        >>> import numpy as np, rnnkit
        >>> irnn = rnnkit.init.init_recurrent(
        ...     rnnkit.RNN(2, 4, nonlinearity="relu", dtype=np.float64),
        ...     input="normal", recurrent="identity", seed=0)
        >>> irnn.state_dict()["weight_hh_l0"].tolist()[0]
        [1.0, 0.0, 0.0, 0.0]
        >>> lstm = rnnkit.init.init_recurrent(rnnkit.LSTM(2, 3), forget_bias=1.0, seed=0)
        >>> lstm.state_dict()["bias_ih_l0"].tolist()  # gates i, f, g, o
        [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    """
    if not isinstance(layer, Recurrent):
        raise TypeError(f"layer must be an rnnkit.nn.Recurrent, got {type(layer).__name__}")
    if input not in INPUT_SCHEMES:
        raise ValueError(f"input must be one of {INPUT_SCHEMES}, got {input!r}")
    if recurrent not in RECURRENT_SCHEMES:
        raise ValueError(f"recurrent must be one of {RECURRENT_SCHEMES}, got {recurrent!r}")
    if forget_bias is not None and not isinstance(layer, LSTM):
        raise ValueError(f"forget_bias is for LSTM layers only, got a {type(layer).__name__}")
    rng = _checks.rng(seed)
    G, H = layer.cell.num_gates, layer.hidden_size
    pytorch_bound = 1.0 / np.sqrt(H)
    for name, value in layer.parameters().items():
        kind = name.split("_l")[0]  # weight_ih, weight_hh, bias_ih, bias_hh
        scheme = {"weight_ih": input, "weight_hh": recurrent}.get(kind)
        if scheme == "pytorch":
            uniform_(value, pytorch_bound, rng)
        elif scheme == "normal":
            value[...] = rng.normal(0.0, input_std, value.shape)
        elif scheme == "identity":
            identity_(value, gain, G)
        elif scheme is not None:
            initialiser = {
                "xavier_uniform": xavier_uniform_,
                "xavier_normal": xavier_normal_,
                "orthogonal": orthogonal_,
            }[scheme]
            initialiser(value, gain, G, rng)
        elif bias is not None:
            value[...] = bias
        if forget_bias is not None and kind.startswith("bias"):
            value[H : 2 * H] = forget_bias if kind == "bias_ih" else 0.0
    return layer
