"""The one check every data loader makes before it opens a file: it must be a regular file.

Reading a device (``/dev/zero``), a FIFO or a socket as data never ends or blocks; a folder is
not data. Symbolic links are followed, so a link to a device is refused too.
"""

from __future__ import annotations

import os
import stat


def regular_file(path: str | os.PathLike[str], what: str = "file") -> str:
    """``path`` as a string, if it names a regular file; FileNotFoundError or ValueError naming
    it (and ``what`` was expected) otherwise.

    Example:
        >>> from rnnkit.data.files import regular_file
        >>> regular_file("/dev/zero", "text file")
        Traceback (most recent call last):
        ...
        ValueError: /dev/zero: is a character device, expected a text file
    """
    name = os.fspath(path)
    try:
        mode = os.stat(name).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: no such file") from None
    except NotADirectoryError:
        raise FileNotFoundError(f"{name}: no such file (a part of the path is a file)") from None
    if stat.S_ISREG(mode):
        return name
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a character device"
        if stat.S_ISCHR(mode)
        else "a block device"
        if stat.S_ISBLK(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise ValueError(f"{name}: is {kind}, expected a {what}")
