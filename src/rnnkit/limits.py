"""Memory guards: refuse, before allocating, what cannot fit in memory.

A size given by a user (``hidden_size=10**5``, a vocabulary of 10**12 tokens, a batch of a
million long sequences) can ask for hundreds of gigabytes. NumPy would then either fail after a
long time or get the process killed by the system. Instead, the code that allocates from such
sizes first estimates the bytes it needs, with Python ints (no overflow), and calls
:func:`check_memory`, which raises :class:`MemoryLimitError` when the estimate exceeds the
memory available. The layers check their parameters in their constructors (before drawing any
weight) and the cache of a forward pass before computing it; the data loaders check what they
decode.

What "available" means: :func:`available_memory`, the smallest of

- ``MemAvailable`` of ``/proc/meminfo`` (Linux; elsewhere the physical memory, from
  ``os.sysconf``, or :data:`FALLBACK_BYTES` when nothing can be read),
- what the process's cgroup still allows (v2: ``memory.max`` minus ``memory.current``; v1:
  ``memory.limit_in_bytes`` minus ``memory.usage_in_bytes``; the cgroup and each of its parents,
  counting reclaimable page cache (``inactive_file``) as free; which cgroups have a limit is
  found once per process),
- what an address-space limit (``ulimit -v``, ``RLIMIT_AS``) leaves beside the process's
  current size;

plus the buffers of :mod:`rnnkit.runtime.workspace` that nothing uses (the process holds them,
so the system does not count them as available, but the next pass takes its arrays from them).

It is measured only for requests above :data:`CHEAP_BYTES` (64 MiB), so the checks cost
nothing on the hot path: below it a request passes without any system call.

Overriding, for users who know better (swap, memory that will be freed first, an estimate
that is too pessimistic for their case), in order of precedence:

- :func:`memory_limit`: ``rnnkit.limits.memory_limit("32G")`` sets the limit for the whole
  process; used as ``with rnnkit.limits.memory_limit(None): ...`` it applies inside the block
  only. ``None`` or ``"off"`` switches the guard off, ``"auto"`` returns to the measurement.
- The environment variable ``RNNKIT_MEMORY_LIMIT`` (:data:`ENV_VAR`): a number of bytes with an
  optional suffix ``K``, ``M``, ``G`` or ``T`` (powers of 1024; ``"8G"``, ``"512M"``,
  ``"8GiB"``), or ``"off"``.

A limit set either way replaces the measurement and applies to every request, small or large.

Example:
    >>> import rnnkit
    >>> from rnnkit.limits import MemoryLimitError, memory_limit
    >>> with memory_limit("1M"):
    ...     try:
    ...         rnnkit.LSTM(256, 256)
    ...     except MemoryLimitError as err:
    ...         print(err.nbytes > 2**20)
    True
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from rnnkit.runtime import workspace

#: The environment variable that overrides the measured memory (see the module docstring).
ENV_VAR = "RNNKIT_MEMORY_LIMIT"
#: Requests of at most this many bytes pass without measuring the memory (no system call).
CHEAP_BYTES = 64 * 2**20
#: The memory assumed when nothing can be measured (no /proc/meminfo, no os.sysconf).
FALLBACK_BYTES = 64 * 2**30
#: How many arrays the size of its parameters a model will probably need when it is trained:
#: the parameters, their gradients, the two moment estimates of Adam (the largest optimiser
#: state of :mod:`rnnkit.optim`) and the copy of the best parameters a Trainer keeps for early
#: stopping. Constructors check this multiple of the parameters' bytes; the construction itself
#: needs at most three (the weights are drawn in float64, one tensor at a time).
TRAINING_COPIES = 5

_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)
_OFF = ("off", "none", "no", "unlimited")
_AUTO = "auto"

# The limit memory_limit() set: _AUTO (none set: the environment or the measurement), None
# (the guard is off) or a number of bytes.
_override: Any = _AUTO


class MemoryLimitError(MemoryError):
    """An allocation was refused because its estimate exceeds the memory available.

    Attributes (None for an error made from a message alone):
        what: what was being allocated (``"LSTM(10, 100000) parameters"``).
        nbytes: the estimate, in bytes.
        available: the limit it exceeds, in bytes.
        source: where the limit comes from (``"MemAvailable in /proc/meminfo"``,
            ``"RNNKIT_MEMORY_LIMIT=8G"``, ...).
    """

    def __init__(
        self, what: str, nbytes: int | None = None, available: int | None = None, source: str = ""
    ) -> None:
        self.what, self.nbytes, self.available, self.source = what, nbytes, available, source
        if nbytes is None or available is None:  # a message as it is, like any exception's
            super().__init__(what)
            return
        where = f" ({source})" if source else ""
        super().__init__(
            f"{what} would need about {format_size(nbytes)}, more than the "
            f"{format_size(available)} of memory available{where}. To allow it anyway, set "
            f"{ENV_VAR} (bytes, or with K/M/G/T, or 'off') or use "
            "rnnkit.limits.memory_limit(...)"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.what, self.nbytes, self.available, self.source)


def format_size(nbytes: int) -> str:
    """``nbytes`` for a message: ``"512 bytes"``, ``"1.5 KiB"`` ... ``"3.6 TiB"``, ``"8e+06 TiB"``.

    Example:
        >>> format_size(160 * 10**9)
        '149.0 GiB'
    """
    if nbytes < 1024:
        return f"{nbytes} bytes"
    for unit in ("KiB", "MiB", "GiB"):
        nbytes /= 1024
        if nbytes < 1024:
            return f"{nbytes:.1f} {unit}"
    tib = nbytes / 1024
    return f"{tib:.1f} TiB" if tib < 1e5 else f"{tib:.0e} TiB"


def parse_size(value: Any, name: str = "limit") -> int | None:
    """A size as bytes: an int, or a string of digits with an optional suffix ``K``, ``M``,
    ``G``, ``T`` (powers of 1024, optionally followed by ``B`` or ``iB``); None for ``None``
    or ``"off"``. ValueError or TypeError naming ``name`` otherwise.

    Example:
        >>> parse_size("1.5G"), parse_size(4096), parse_size("off")
        (1610612736, 4096, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in _OFF:
            return None
        match = _SIZE.fullmatch(value)
        if match is None:
            raise ValueError(
                f"{name} must be a number of bytes with an optional K/M/G/T suffix (such as "
                f"'512M' or '8G') or 'off', got {value!r}"
            )
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must be an int (bytes), a size string or None, got {value!r}")
    value = int(value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0 bytes, got {value}")
    return value


# -- measuring -------------------------------------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _stat_field(text: str | None, key: str) -> int | None:
    """The value of ``key`` in a ``key value`` file (memory.stat); None if absent."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def meminfo_available(path: str | os.PathLike[str] = "/proc/meminfo") -> int | None:
    """``MemAvailable`` of a ``/proc/meminfo`` file, in bytes; None where there is none."""
    for line in (_read(Path(path)) or "").splitlines():
        if line.startswith("MemAvailable:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                unit = 1024 if parts[2:3] == ["kB"] else 1
                return int(parts[1]) * unit
    return None


class CgroupLevel(NamedTuple):
    """One memory cgroup whose limit bounds the process: its folder and the names of its files
    (v2: ``memory.max``, ``memory.current``, ``inactive_file``; v1: ``memory.limit_in_bytes``,
    ``memory.usage_in_bytes``, ``total_inactive_file``)."""

    folder: Path
    limit_file: str
    usage_file: str
    inactive_key: str  # the reclaimable page cache's line in memory.stat


def cgroup_levels(
    cgroup_file: str | os.PathLike[str] = "/proc/self/cgroup",
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> list[CgroupLevel]:
    """The process's memory cgroup and its parents that have a limit (v2: ``memory.max`` not
    ``max``; v1: ``memory.limit_in_bytes`` below 2**62), from ``cgroup_file``
    (``/proc/self/cgroup``: ``0::/path`` for v2, ``N:memory:/path`` for v1, under
    ``root/memory``) and the cgroup file systems mounted at ``root``. In a container the path
    may not exist under the mount; then the mount's root (the container's own cgroup) is read.
    """
    root = Path(root)
    levels = []
    for line in (_read(Path(cgroup_file)) or "").splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            base, files = root, ("memory.max", "memory.current", "inactive_file")
        elif "memory" in parts[1].split(","):
            v1 = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")
            base, files = root / "memory", v1
        else:
            continue
        folder = base / parts[2].lstrip("/")
        if not folder.is_dir():
            folder = base
        while True:
            limit = (_read(folder / files[0]) or "").strip()
            if limit.isdigit() and int(limit) < 2**62:
                levels.append(CgroupLevel(folder, *files))
            if folder == base or base not in folder.parents:
                break
            folder = folder.parent
    return levels


def cgroup_available(
    cgroup_file: str | os.PathLike[str] = "/proc/self/cgroup",
    root: str | os.PathLike[str] = "/sys/fs/cgroup",
    levels: list[CgroupLevel] | None = None,
) -> int | None:
    """What the process's memory cgroup and its parents still allow, in bytes: the smallest
    ``limit - usage + inactive_file`` over the :func:`cgroup_levels` (or the ``levels``
    given), or None when none has a limit."""
    best: int | None = None
    for level in cgroup_levels(cgroup_file, root) if levels is None else levels:
        limit = (_read(level.folder / level.limit_file) or "").strip()
        usage = (_read(level.folder / level.usage_file) or "").strip()
        if limit.isdigit() and usage.isdigit():
            cache = _stat_field(_read(level.folder / "memory.stat"), level.inactive_key) or 0
            left = max(0, int(limit) - int(usage) + cache)
            best = left if best is None else min(best, left)
    return best


@functools.lru_cache(maxsize=1)
def _process_cgroup_levels() -> list[CgroupLevel]:
    """This process's limited cgroups, found once (the limits and usage are read every time)."""
    return cgroup_levels()


def address_space_available() -> int | None:
    """What an address-space limit (``RLIMIT_AS``, ``ulimit -v``) leaves beside the process's
    current virtual size, in bytes; None without such a limit (or where it cannot be read)."""
    try:
        import resource
    except ImportError:  # not Unix
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    statm = _read(Path("/proc/self/statm"))
    if statm is None or not statm.split()[:1] or not statm.split()[0].isdigit():
        return soft  # the current size is unknown: the limit is an upper bound
    return max(0, soft - int(statm.split()[0]) * os.sysconf("SC_PAGE_SIZE"))


def _physical_memory() -> int | None:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _measure() -> tuple[int, str]:
    """The available memory and where the binding number comes from."""
    system = meminfo_available() if sys.platform.startswith("linux") else None
    found = [(system, "MemAvailable in /proc/meminfo")] if system is not None else []
    if not found:
        physical = _physical_memory()
        found = [(physical or FALLBACK_BYTES, "physical memory" if physical else "a default")]
    if sys.platform.startswith("linux"):
        left = cgroup_available(levels=_process_cgroup_levels())
        found.append((left, "the limit of this process's cgroup"))
    found.append((address_space_available(), "the address-space limit (ulimit -v)"))
    n, source = min(((n, s) for n, s in found if n is not None), key=lambda item: item[0])
    return n + workspace.held()[1], source  # the workspace's unused buffers serve again


def available_memory() -> int:
    """The bytes of memory the process can still allocate, as measured now (see the module
    docstring); the overrides do not change it."""
    return _measure()[0]


# -- the limit and the check -----------------------------------------------------------------------


def _limit() -> tuple[Any, str]:
    """The limit in force: (_AUTO, "") for the measurement, None for none, or (bytes, source)."""
    if _override != _AUTO:
        return _override, "set by rnnkit.limits.memory_limit"
    text = os.environ.get(ENV_VAR)
    if text is None or text.strip().lower() in ("", _AUTO):
        return _AUTO, ""
    return parse_size(text, ENV_VAR), f"{ENV_VAR}={text}"  # ValueError naming it if malformed


def current_limit() -> int | None:
    """The limit :func:`check_memory` applies now, in bytes: the override, or the memory
    available as measured now; None when the guard is off."""
    limit, _ = _limit()
    return available_memory() if limit == _AUTO else limit


def check_memory(what: str | Callable[[], str], nbytes: int) -> None:
    """Raise :class:`MemoryLimitError` if ``nbytes`` (an estimate, a Python int) exceeds the
    limit in force (see the module docstring). Costs no system call for ``nbytes`` <=
    :data:`CHEAP_BYTES`.

    Args:
        what: what is being allocated, for the message (``"the forward pass of LSTM(...)"``);
            or a function returning it, called only if the request is refused (for hot paths).
        nbytes: the estimate of the bytes it needs.

    Example:
        >>> from rnnkit.limits import MemoryLimitError, check_memory, memory_limit
        >>> check_memory("a small buffer", 1024)
        >>> with memory_limit("1K"):
        ...     try:
        ...         check_memory("a buffer", 2048)
        ...     except MemoryLimitError as err:
        ...         print(err.what, err.nbytes, err.available)
        a buffer 2048 1024
    """
    limit, source = _limit()
    if limit is None:
        return
    if limit == _AUTO:
        if nbytes <= CHEAP_BYTES:
            return
        limit, source = _measure()
    if nbytes > limit:
        raise MemoryLimitError(
            what if isinstance(what, str) else what(), int(nbytes), int(limit), source
        )


def check_parameters(what: str, count: int, itemsize: int) -> None:
    """:func:`check_memory` for a model about to be made: ``count`` parameters of ``itemsize``
    bytes each, times :data:`TRAINING_COPIES` (its gradients, optimiser state and a copy of the
    best parameters come with training). ``what`` names the model."""
    check_memory(
        lambda: f"{what}, {count:,} parameters with their gradients and optimiser state",
        int(count) * int(itemsize) * TRAINING_COPIES,
    )


def array_bytes(shape: tuple[int, ...], dtype_size: int) -> int:
    """The bytes of an array of ``shape`` whose items take ``dtype_size`` bytes: a Python int,
    which cannot overflow."""
    return math.prod(int(n) for n in shape) * int(dtype_size)


def memory_limit(limit: int | str | None) -> contextlib.AbstractContextManager[None]:
    """Set the limit :func:`check_memory` applies, for the whole process: bytes (an int), a
    size string (``"32G"``), ``None`` or ``"off"`` for no limit, ``"auto"`` for the measured
    memory (the default). Used as a context manager, the previous setting returns at the end of
    the block (the setting is process-wide, not per thread).

    Example:
        >>> from rnnkit.limits import current_limit, memory_limit
        >>> with memory_limit("2G"):
        ...     current_limit()
        2147483648
        >>> with memory_limit(None):
        ...     current_limit() is None
        True
    """
    global _override
    if isinstance(limit, str) and limit.strip().lower() == _AUTO:
        value: Any = _AUTO
    else:
        value = parse_size(limit, "limit")
    previous, _override = _override, value
    return _Restore(previous)


class _Restore(contextlib.AbstractContextManager):
    """Puts the previous setting back at the end of a ``with memory_limit(...)`` block."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __exit__(self, *exc: object) -> None:
        global _override
        _override = self.previous
