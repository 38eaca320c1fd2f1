"""Packaging beyond ``pyproject.toml``: the configs ship inside the package.

``conf/`` stays at the top of the repository, where Hydra's config tree is read and edited in a
checkout, and is mapped to the package ``depthbench.conf`` (each of its folders a package whose
YAML and Markdown files are package data). A wheel therefore carries every config, and
``depthbench-train`` finds them after a non-editable install
(``depthbench.core.conf_dir.find_conf_dir``).
"""

from setuptools import find_namespace_packages, setup

CONF = ["depthbench.conf", *(f"depthbench.conf.{p}" for p in find_namespace_packages("conf"))]

setup(
    packages=[*find_namespace_packages("src"), *CONF],
    package_dir={"": "src", "depthbench.conf": "conf"},
    package_data={"depthbench": ["py.typed"], **{p: ["*.yaml", "*.md"] for p in CONF}},
)
