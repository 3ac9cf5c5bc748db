"""``python -m rnnkit``: the ``rnnkit`` command."""

from rnnkit.apps.cli import main

if __name__ == "__main__":
    main()
