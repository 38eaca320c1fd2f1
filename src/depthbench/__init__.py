"""depthbench: Lightning + Hydra experiments that check what depth does to a neural network.

The command line is ``depthbench`` (or ``python -m depthbench``); ``train.py`` and ``eval.py`` in
a checkout are the same commands. Importing the package loads nothing heavy: the subpackages
(``models``, ``data``, ``run_folder``, ...) are imported where they are used.
"""

# the one version: pyproject.toml reads it (``[tool.setuptools.dynamic]``)
__version__ = "0.1.0"
