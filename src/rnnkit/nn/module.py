"""The base of every layer: named parameter arrays, saved and loaded by name like PyTorch's."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


class Module:
    """Holds a layer's parameters as named NumPy arrays.

    :meth:`parameters` gives the live arrays (an optimiser updates them in place);
    :meth:`state_dict` gives copies; :meth:`load_state_dict` checks every name, shape and dtype
    before it changes anything, then copies the values into the live arrays.
    """

    def __init__(self) -> None:
        self._params: dict[str, np.ndarray] = {}

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by name; updating them in place updates the layer."""
        return dict(self._params)

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters by name, in PyTorch's order and with PyTorch's names."""
        return {name: value.copy() for name, value in self._params.items()}

    def load_state_dict(self, state_dict: Mapping[str, object]) -> None:
        """Load parameters saved by :meth:`state_dict` (or a PyTorch state_dict after ``.numpy()``).

        Every entry is checked first; on any mismatch a ``ValueError`` or
        ``TypeError`` names the key and nothing is loaded.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}"
            )
        missing = [k for k in self._params if k not in state_dict]
        extra = [k for k in state_dict if k not in self._params]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if extra:
                parts.append(f"unexpected keys {extra}")
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: {'; '.join(parts)} "
                f"(expected exactly {list(self._params)})"
            )
        loaded = {}
        for name, target in self._params.items():
            try:
                value = np.asarray(state_dict[name])
            except (TypeError, ValueError):  # a ragged nesting of sequences, for example
                raise TypeError(
                    f"state_dict[{name!r}] must be an array of shape {target.shape} and dtype "
                    f"{target.dtype}, got a {type(state_dict[name]).__name__} that is not "
                    "a regular array"
                ) from None
            if value.shape != target.shape:
                raise ValueError(
                    f"state_dict[{name!r}] must have shape {target.shape}, got {value.shape}"
                )
            if value.dtype != target.dtype:
                raise TypeError(
                    f"state_dict[{name!r}] must have dtype {target.dtype}, got {value.dtype}"
                )
            loaded[name] = value
        for name, value in loaded.items():
            np.copyto(self._params[name], value)
