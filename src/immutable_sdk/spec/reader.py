"""Reading one spec file: safe YAML with positions, strict keys, ``${VAR}`` and hard limits.

* Only plain data: mappings with string keys, lists, strings, numbers, true/false, null. YAML 1.1
  surprises are off: ``yes``/``no``/``on``/``off`` stay strings, ``2024-01-01`` and ``1:30`` stay
  strings, a number with a leading zero (an AWS account id) stays a string.
* A key written twice in the same mapping is an error (PyYAML would keep the last silently).
* ``!secret VALUE`` marks a value secret (``redaction``): it never reaches any output. So
  does a ``${VAR}`` whose variable's name looks secret (``${DB_PASSWORD}``).
* ``${VAR}`` and ``${VAR:-default}`` in values are replaced from the environment; ``$${`` writes
  a literal ``${``. An unset variable without a default is an error at that value. An unquoted
  value that is only a substitution is typed after it (``desired: ${N:-4}`` is the number 4).
  Keys are never replaced: a key with ``${...}`` is an error at the key (keys name fleets,
  images and tags, which state, plans and AWS resources are keyed on; they are written out).
* Files larger than ``MAX_FILE_BYTES`` are refused before parsing; aliases may not expand to
  more than ``MAX_ALIAS_NODES`` nodes (the "billion laughs"); recursive aliases are refused.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ..errors import Location, SpecProblem
from ..redaction import register_secret
from ..redaction.shapes import is_secret_name
from .nodes import LDict, LList, PathPart, Pos, dotted

MAX_FILE_BYTES = 5 * 1024 * 1024
"""Spec files larger than this (5 MiB) are refused without being parsed."""

MAX_ALIAS_NODES = 100_000
"""Nodes that YAML aliases may add to a document once expanded; more is refused."""

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}?")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

try:  # libyaml is much faster; it also bounds nesting depth
    from yaml._yaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class _Parser(Reader, Scanner, Parser, Composer):  # type: ignore[no-redef]
        def __init__(self, stream: str) -> None:
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)


class _Resolver(yaml.resolver.BaseResolver):
    """Implicit types close to YAML 1.2's core schema."""


_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
_Resolver.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)
_Resolver.add_implicit_resolver("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"])


class _Constructor(yaml.constructor.SafeConstructor):
    """Builds LDict/LList with positions; records problems instead of stopping at the first."""

    yaml_constructors: ClassVar[dict[Any, Any]] = {}

    def __init__(self, file: str, environ: Mapping[str, str]) -> None:
        super().__init__()
        self.file = file
        self.environ = environ
        # (container or None, key, position, message); paths are filled in afterwards
        self.found: list[tuple[Any, Any, Pos, str]] = []
        self.built: dict[int, Any] = {}

    def pos(self, node: Node) -> Pos:
        mark = node.start_mark
        return (self.file, mark.line + 1, mark.column + 1)

    def build(self, node: Node) -> Any:
        """The value of a composed node (aliased nodes are built once and shared)."""
        built = self.built.get(id(node), _UNBUILT)
        if built is not _UNBUILT:
            return built
        if isinstance(node, ScalarNode):
            # built once too: an aliased ``${VAR}`` value is substituted (and a secret
            # registered) once, however many times the alias repeats it
            value = self.built[id(node)] = self.scalar(node)
            return value
        if node.tag == SECRET_TAG:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{SECRET_TAG} marks one value (a string), not a list or a mapping",
                node.start_mark,
            )
        if isinstance(node, SequenceNode) and node.tag == _SEQ:
            items = LList(self.pos(node))
            self.built[id(node)] = items
            for item in node.value:
                items.push(self.build(item), self.pos(item))
            return items
        if isinstance(node, MappingNode) and node.tag == _MAP:
            data = LDict(self.pos(node))
            self.built[id(node)] = data
            self.fill_map(data, node)
            return data
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"unsupported tag {node.tag!r}: specs hold plain data only",
            node.start_mark,
        )

    def scalar(self, node: ScalarNode) -> Any:
        if node.tag == _STR:
            return self.construct_str(node)
        if node.tag == SECRET_TAG:
            plain = ScalarNode(_STR, node.value, node.start_mark, node.end_mark, node.style)
            value = self.construct_str(plain)
            register_secret(value)
            return value
        construct = self.yaml_constructors.get(node.tag)
        if construct is None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"unsupported tag {node.tag!r}: specs hold plain data only",
                node.start_mark,
            )
        return construct(self, node)

    def fill_map(self, data: LDict, node: MappingNode) -> None:
        first: dict[Any, Pos] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node, None)
            if key is _REFUSED or isinstance(key, (dict, list)):
                continue  # reported below
            if key in first:
                _, line, column = first[key]
                message = f"duplicate key {key!r} (first at line {line}, column {column})"
                self.found.append((data, key, self.pos(key_node), message))
            else:
                first[key] = self.pos(key_node)
        if any(key_node.tag == _MERGE for key_node, _ in node.value):
            self.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = self.key(key_node, data)
            if key is _REFUSED:
                continue
            if not isinstance(key, str):
                self.found.append(
                    (data, None, self.pos(key_node), f"keys must be strings, got {key!r}")
                )
                continue
            data.put(key, self.build(value_node), self.pos(key_node), self.pos(value_node))

    def key(self, node: Node, mapping: LDict | None) -> Any:
        """A mapping key: built as a value, except that ``${VAR}`` is refused, not replaced
        (reported as a problem of ``mapping`` when one is given)."""
        if not (isinstance(node, ScalarNode) and node.tag == _STR and "${" in node.value):
            return self.build(node)
        refs = [m.group(0) for m in _VAR.finditer(node.value) if m.group(0) != "$${"]
        if not refs:
            return node.value.replace("$${", "${")
        if mapping is not None:
            self.found.append(
                (
                    mapping,
                    None,
                    self.pos(node),
                    f"key {node.value!r} uses {refs[0]}: variables are replaced in values only; "
                    "write the key itself (keys name fleets, images and tags)",
                )
            )
        return _REFUSED

    def construct_str(self, node: ScalarNode) -> Any:
        value: str = node.value
        if "$" not in value:
            return value
        value = self.interpolate(value, node)
        if not node.style and value != node.value:  # plain scalar: type what it became
            tag = _Resolver().resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
            if tag != "tag:yaml.org,2002:str":
                return self.yaml_constructors[tag](self, ScalarNode(tag, value))
        return value

    def interpolate(self, text: str, node: ScalarNode) -> str:
        def substitute(m: re.Match[str]) -> str:
            if m.group(0) == "$${":
                return "${"
            body = m.group(1)
            name, sep, default = body.partition(":-")
            if not m.group(0).endswith("}") or not _NAME.match(name):
                self.found.append(
                    (
                        None,
                        None,
                        self.pos(node),
                        f"malformed variable reference {m.group(0)!r}; "
                        "write ${NAME} or ${NAME:-default}",
                    )
                )
                return m.group(0)
            value = self.environ.get(name)
            if value:
                if is_secret_name(name):  # ${DB_PASSWORD}: never shown, wherever it goes
                    register_secret(value)
                return value
            if sep:
                return default
            if value is None:
                self.found.append(
                    (
                        None,
                        None,
                        self.pos(node),
                        f"environment variable {name} is not set and has no default "
                        f"(write ${{{name}:-default}} to give one)",
                    )
                )
                return ""
            return value

        return _VAR.sub(substitute, text)


_REFUSED = object()  # a key that is reported and left out of its mapping
_UNBUILT = object()
SECRET_TAG = "!secret"
"""``key: !secret VALUE`` marks a value secret: it is redacted from all output."""
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_SAFE = yaml.constructor.SafeConstructor
_Constructor.yaml_constructors = {  # plain data only: no binary, set, timestamp or python tags
    "tag:yaml.org,2002:null": _SAFE.construct_yaml_null,
    "tag:yaml.org,2002:bool": _SAFE.construct_yaml_bool,
    "tag:yaml.org,2002:int": _SAFE.construct_yaml_int,
    "tag:yaml.org,2002:float": _SAFE.construct_yaml_float,
    _STR: _Constructor.construct_str,
}


class _Loader(_Parser, _Constructor, _Resolver):
    def __init__(self, text: str, file: str, environ: Mapping[str, str]) -> None:
        _Parser.__init__(self, text)
        _Constructor.__init__(self, file, environ)
        _Resolver.__init__(self)


def read_spec_file(file: str, environ: Mapping[str, str]) -> tuple[LDict | None, list[SpecProblem]]:
    """Read one spec file: its top-level mapping, or the problems that stopped reading it.

    Problems that do not stop reading (duplicate keys, unset variables) come with the document.
    """
    text, problem = _read_text(file)
    if problem is not None:
        return None, [problem]
    assert text is not None
    try:
        loader = _Loader(text, file, environ)
    except yaml.YAMLError as exc:  # the pure-Python reader checks characters up front
        return None, [_yaml_problem(file, text, exc)]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [_problem(file, 1, 1, "the file is empty; expected a mapping")]
        bomb = _check_aliases(node, file)
        if bomb is not None:
            return None, [bomb]
        root = loader.build(node)
    except yaml.YAMLError as exc:
        return None, [_yaml_problem(file, text, exc)]
    except RecursionError:
        return None, [_problem(file, 1, 1, "the document is nested too deeply")]
    finally:
        loader.dispose()
    if not isinstance(root, LDict):
        what = "a list" if isinstance(root, list) else repr(root)
        return None, [
            _problem(
                file,
                node.start_mark.line + 1,
                node.start_mark.column + 1,
                f"expected a mapping at the top of the file, got {what}",
            )
        ]
    return root, _located(root, loader.found)


def _read_text(file: str) -> tuple[str | None, SpecProblem | None]:
    try:
        # Non-blocking: opening a FIFO for reading would wait for a writer forever. What is
        # not a regular file (a FIFO, a device, a directory) is refused before any read.
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return None, SpecProblem(Location(file), "", f"cannot read the file: {exc.strerror}")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            return None, SpecProblem(Location(file), "", "cannot read the file: a directory")
        return None, _problem(file, 1, 1, f"not a regular file: {_file_kind(mode)}")
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size > MAX_FILE_BYTES:
            return None, _too_large(file, size)
        try:
            data = fh.read(MAX_FILE_BYTES + 1)
        except OSError as exc:
            return None, SpecProblem(Location(file), "", f"cannot read the file: {exc.strerror}")
    if len(data) > MAX_FILE_BYTES:
        return None, _too_large(file, len(data))
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, _problem(file, line, column, "not a text file: invalid UTF-8")
    if "\0" in text:
        offset = text.index("\0")
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return None, _problem(file, line, column, "not a text file: NUL character")
    return text, None


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((what for test, what in kinds if test(mode)), "not a file")


def _too_large(file: str, size: int) -> SpecProblem:
    return _problem(
        file,
        1,
        1,
        f"the file is {size / 2**20:.1f} MiB; spec files may be at most "
        f"{MAX_FILE_BYTES // 2**20} MiB",
    )


def _check_aliases(root: Node, file: str) -> SpecProblem | None:
    """Refuse recursive aliases and aliases that expand past MAX_ALIAS_NODES (bounded work)."""
    seen: set[int] = set()
    on_path: set[int] = set()
    expanded = 0
    stack: list[tuple[Node, bool]] = [(root, True)]
    while stack:
        node, entering = stack.pop()
        if not entering:
            on_path.discard(id(node))
            continue
        if id(node) in on_path:
            m = node.start_mark
            return _problem(file, m.line + 1, m.column + 1, "an alias refers to itself")
        if id(node) in seen:
            expanded += 1
            if expanded > MAX_ALIAS_NODES:
                m = node.start_mark
                return _problem(
                    file,
                    m.line + 1,
                    m.column + 1,
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes; refusing to expand "
                    "them (is this a 'billion laughs' document?)",
                )
        seen.add(id(node))
        if isinstance(node, (MappingNode, SequenceNode)):
            on_path.add(id(node))
            stack.append((node, False))
            if isinstance(node, MappingNode):
                for key, value in reversed(node.value):
                    stack.append((value, True))
                    stack.append((key, True))
            else:
                stack.extend((item, True) for item in reversed(node.value))
    return None


def _located(root: LDict, found: list[tuple[Any, Any, Pos, str]]) -> list[SpecProblem]:
    """Problems with the dotted path of the container (or of the value at their position)."""
    if not found:
        return []
    paths: dict[int, tuple[PathPart, ...]] = {}
    at: dict[Pos, tuple[PathPart, ...]] = {}
    stack: list[tuple[Any, tuple[PathPart, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in paths:
            continue
        paths[id(node)] = path
        if isinstance(node, LDict):
            for k, v in node.items():
                at.setdefault(node.value_pos[k], (*path, k))
                if isinstance(v, (LDict, LList)):
                    stack.append((v, (*path, k)))
        elif isinstance(node, LList):
            for i, v in enumerate(node):
                at.setdefault(node.item_pos[i], (*path, i))
                if isinstance(v, (LDict, LList)):
                    stack.append((v, (*path, i)))
    problems = []
    for container, key, pos, message in found:
        if container is None:
            path = at.get(pos, ())
        else:
            path = paths.get(id(container), ())
            if key is not None:
                path = (*path, key)
        problems.append(SpecProblem(Location(*pos), dotted(path), message))
    return problems


def _yaml_problem(file: str, text: str, exc: yaml.YAMLError) -> SpecProblem:
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return _problem(file, line, column, f"invalid YAML: {exc.reason}")
    if not isinstance(exc, yaml.MarkedYAMLError):
        return _problem(file, 1, 1, f"invalid YAML: {exc}")
    mark = exc.problem_mark or exc.context_mark
    message = exc.problem or "invalid YAML"
    if exc.context and exc.problem_mark is not None:
        began = exc.context_mark
        if began is not None and (began.line, began.column) != (
            exc.problem_mark.line,
            exc.problem_mark.column,
        ):
            # where the unfinished construct (a quote, a '{', a '[') began, not only where
            # the parser gave up, which may be many lines further down
            at = f"line {began.line + 1}, column {began.column + 1}"
            message = f"{message} ({exc.context} that began at {at})"
        else:
            message = f"{message} ({exc.context})"
    if mark is not None and _starts_with_tab(text, mark.line, mark.column):
        message += "; indent with spaces, not tabs"
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return _problem(file, line, column, f"invalid YAML: {message}")


def _starts_with_tab(text: str, line: int, column: int) -> bool:
    lines = text.split("\n", line + 1)
    return line < len(lines) and "\t" in lines[line][: column + 1]


def _problem(file: str, line: int, column: int, message: str) -> SpecProblem:
    return SpecProblem(Location(file, line, column), "", message)
