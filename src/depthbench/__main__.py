"""``python -m depthbench SUBCOMMAND ...`` is the ``depthbench`` command."""

from depthbench.cli import main

if __name__ == "__main__":
    main()
