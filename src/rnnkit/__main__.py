"""``python -m rnnkit``: the ``rnnkit`` command."""

from rnnkit.cli import main

if __name__ == "__main__":
    main()
