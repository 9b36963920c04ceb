"""YAML files people write (the data-sharing agreement, mapping profiles), read by YAML 1.2.

Under YAML 1.1 (PyYAML) an agency's unquoted ``Yes: "YES"`` in a value map is the
boolean True, and ``on``, ``off``, ``No`` and ``010`` (octal 8) change type the same
way, so a profile fails with an error about a key the author never wrote. YAML 1.2
(ruamel.yaml's safe loader) keeps those words as strings and reads ``010`` as the
integer 10. A mapping with the same key twice is an error, not the last one silently.

The document's node tree is kept beside the data, so a problem found later (a
pydantic error's location, e.g. ``("partners", 2, "submit_by", "cron")``) is
reported at the line where that key or item is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from hub.errors import ConfigError

#: A location in the data: mapping keys and list indexes (pydantic's ``loc``).
Loc = Sequence[str | int]


class YamlSyntaxError(ConfigError):
    """A file that is not valid YAML; the message is ``<file>:<line>:<column>: ...``."""

    def __init__(self, path: Path, line: int | None, column: int | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.reason = reason
        where = f"{path}:{line}:{column}" if line is not None else str(path)
        super().__init__(f"{where}: not valid YAML: {reason}")


@dataclass(frozen=True)
class YamlDocument:
    """A loaded YAML file: its data (plain dicts, lists, str, int, ...) and node tree."""

    path: Path
    data: Any
    root: Node | None

    def line_of(self, loc: Loc) -> int | None:
        """The line (1-based) of the deepest key or list item on the way to `loc`.

        Parts of `loc` that name no key or item here (pydantic's union and ``[key]``
        markers, a required key that is missing) are passed over, so a missing field
        is reported at the mapping that lacks it. None for an empty document.
        """
        if self.root is None:
            return None
        node: Node = self.root
        line: int = node.start_mark.line
        for part in loc:
            found = _child(node, part)
            if found is None:
                continue
            line, node = found
        return line + 1

    def where(self, loc: Loc) -> str:
        """``<file>:<line>`` for `loc`, or just the file when there is no line."""
        line = self.line_of(loc)
        return f"{self.path}:{line}" if line is not None else str(self.path)


def _child(node: Node, part: str | int) -> tuple[int, Node] | None:
    """(line of the key or item, its value node) for one step of a location."""
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return key.start_mark.line, value
    elif isinstance(node, SequenceNode) and isinstance(part, int):
        if 0 <= part < len(node.value):
            item: Node = node.value[part]
            return item.start_mark.line, item
    return None


def _yaml() -> YAML:
    # Pure Python: the files are small, and one parser reads them on every platform.
    return YAML(typ="safe", pure=True)


def read_yaml(path: Path) -> YamlDocument:
    """`path` read by YAML 1.2 rules (UTF-8).

    OSError when the file cannot be read (the caller words it); YamlSyntaxError,
    naming the file, line and column, when it is not valid YAML.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        raise YamlSyntaxError(path, None, None, reason) from exc
    try:
        yaml = _yaml()
        root = yaml.compose(text)  # parsed once: the node tree, then the data built from it
        data = None if root is None else yaml.constructor.construct_document(root)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise YamlSyntaxError(path, line, column, _reason(exc)) from exc
    except YAMLError as exc:
        raise YamlSyntaxError(path, None, None, _one_line(str(exc))) from exc
    return YamlDocument(path, data, root)


def _reason(exc: MarkedYAMLError) -> str:
    reason = _one_line(exc.problem or str(exc))
    if exc.context and exc.context_mark and exc.problem_mark:
        if exc.context_mark.line != exc.problem_mark.line:
            reason += f" ({exc.context} at line {exc.context_mark.line + 1})"
    return reason


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
