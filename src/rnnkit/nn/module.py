"""The base of every layer and model: named parameter arrays, named children, a training flag
and the random generators of stochastic blocks, all addressed by PyTorch-style dotted names."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np


class Module:
    """Holds a block's parameters as named NumPy arrays, and its child blocks.

    Assigning a :class:`Module` to an attribute registers it as a child under that name, so a
    model's parameters are addressed as ``rnn.weight_ih_l0`` or ``head.bias``, like PyTorch's.

    :meth:`parameters` gives the live arrays (an optimiser updates them in place);
    :meth:`state_dict` gives copies; :meth:`load_state_dict` checks every name, shape, dtype and
    that every value is finite before it changes anything, then copies the values into the live
    arrays. :meth:`train` and :meth:`eval` set the ``training`` flag of the block and all its
    children (dropout and zoneout act only in training). Stochastic blocks keep a
    ``numpy.random.Generator`` in ``self.rng``; :meth:`rng_state` and :meth:`set_rng_state` save
    and restore all of them, for checkpoints.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "_children", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        children = self.__dict__.get("_children")
        if isinstance(value, Module):
            if children is None:
                raise RuntimeError(
                    f"assign child {name!r} after Module.__init__() has run in "
                    f"{type(self).__name__}.__init__"
                )
            children[name] = value
        elif children is not None and name in children:
            del children[name]
        object.__setattr__(self, name, value)

    # -- tree -----------------------------------------------------------------------------------

    def children(self) -> dict[str, Module]:
        """The direct children by attribute name, in the order they were assigned."""
        return dict(self._children)

    def modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This block and every descendant, as (dotted name, module); the root's name is ''."""
        yield prefix, self
        for name, child in self._children.items():
            yield from child.modules(f"{prefix}{name}.")

    # -- parameters -----------------------------------------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        """The live parameter arrays by dotted name; updating them in place updates the model."""
        out: dict[str, np.ndarray] = {}
        for prefix, module in self.modules():
            for name, value in module._params.items():
                out[prefix + name] = value
        return out

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the parameters by dotted name, with PyTorch's names and order."""
        return {name: value.copy() for name, value in self.parameters().items()}

    def load_state_dict(self, state_dict: Mapping[str, object]) -> None:
        """Load parameters saved by :meth:`state_dict` (or a PyTorch state_dict after ``.numpy()``).

        Every entry is checked first (its name, shape and dtype, and that it is finite: NaN or
        Inf weights are bad input, as everywhere in rnnkit); on any mismatch a ``ValueError`` or
        ``TypeError`` names the key and nothing is loaded.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"state_dict must be a mapping of names to arrays, got {type(state_dict).__name__}"
            )
        params = self.parameters()
        missing = [k for k in params if k not in state_dict]
        extra = [k for k in state_dict if k not in params]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if extra:
                parts.append(f"unexpected keys {extra}")
            raise ValueError(
                f"state_dict does not match {type(self).__name__}: {'; '.join(parts)} "
                f"(expected exactly {list(params)})"
            )
        loaded = {}
        for name, target in params.items():
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
            if not np.isfinite(value).all():
                bad = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
                raise ValueError(
                    f"state_dict[{name!r}] must be finite, got {value[bad]} at index {bad}: "
                    "NaN or Inf weights would make every output NaN"
                )
            loaded[name] = value
        for name, value in loaded.items():
            np.copyto(params[name], value)

    # -- modes and randomness -------------------------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (True) or evaluation mode (False) here and in every child."""
        for _, module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout and zoneout are off (zoneout uses its expectation)."""
        return self.train(False)

    @contextlib.contextmanager
    def evaluation(self) -> Iterator[Module]:
        """``with module.evaluation():`` evaluation mode inside the block, the mode it had
        (training or not, set on every child) restored after, also on an exception."""
        training = self.training
        self.eval()
        try:
            yield self
        finally:
            self.train(training)

    def rng_state(self) -> dict[str, dict]:
        """The state of every stochastic block's generator, by dotted module name (JSON-able)."""
        return {
            name.rstrip("."): module.rng.bit_generator.state
            for name, module in self.modules()
            if isinstance(getattr(module, "rng", None), np.random.Generator)
        }

    def set_rng_state(self, states: Mapping[str, dict]) -> None:
        """Restore generator states saved by :meth:`rng_state`; the names must match exactly."""
        mine = {
            name.rstrip("."): module
            for name, module in self.modules()
            if isinstance(getattr(module, "rng", None), np.random.Generator)
        }
        if set(mine) != set(states):
            raise ValueError(
                f"rng states do not match {type(self).__name__}: expected {sorted(mine)}, "
                f"got {sorted(states)}"
            )
        for name, module in mine.items():
            module.rng.bit_generator.state = states[name]
