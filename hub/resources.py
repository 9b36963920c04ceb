"""Where the files the hub reads at run time are installed: the one place that knows.

They ship inside the distribution as package data (``[tool.setuptools]`` in
pyproject.toml), under package names, while the repository keeps its layout:

* ``online_risk_hub_data.schemas`` is the repository's ``schemas/`` (every
  released ``.avsc`` version);
* ``online_risk_hub_data.deploy`` is the part of ``deploy/`` the code reads
  (the example agreement, the Prometheus config and rules, the Kafka pom);
* ``adapters.profiles`` is ``adapters/profiles/`` (the mapping profiles).

A wheel puts these packages in site-packages; an editable install
(``make setup``) maps the same names to the repository's folders. Code asks
here by name and never builds a path from ``__file__``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hub.errors import HubError

DATA_PACKAGE = "online_risk_hub_data"


def package_dir(package: str) -> Path:
    """The directory the import system gives `package`, a package of data files.

    Not ``importlib.resources.files``: the data packages are namespace packages
    (their folders hold no ``__init__.py``), and on Python 3.11 ``files`` rejects
    a namespace package whose ``__path__`` holds anything but directories, which
    setuptools' editable install adds (its path-hook placeholder). The answer is
    a real directory because callers hand these paths to other programs (Maven,
    Prometheus).
    """
    try:
        spec = importlib.util.find_spec(package)
    except ModuleNotFoundError:
        spec = None
    locations = (spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location)
        if path.is_dir():
            return path
    raise HubError(
        f"the hub's data package {package} is not installed; reinstall online-risk-hub"
        " (pip install online-risk-hub, or make setup in a checkout)"
    )


def schemas() -> Path:
    """The Avro schemas: ``<name>/v<version>.avsc`` for every shipped version."""
    return package_dir(f"{DATA_PACKAGE}.schemas")


def deploy(*parts: str) -> Path:
    """A shipped file from the repository's ``deploy/``, e.g. ``deploy("kafka", "pom.xml")``."""
    return package_dir(f"{DATA_PACKAGE}.deploy").joinpath(*parts)


def profiles() -> Path:
    """The shipped mapping profiles, ``<agency>.yaml``."""
    return package_dir("adapters.profiles")
