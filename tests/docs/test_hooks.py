"""docs/plugins.md shows every hook with the exact signature of its hookspec."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

from immutable_sdk import hookspecs

PAGE = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
BLOCK = re.compile(r"```python\n(@hookspec.*?)\n```", re.DOTALL)


def documented() -> dict[str, ast.FunctionDef]:
    found: dict[str, ast.FunctionDef] = {}
    for block in BLOCK.findall(PAGE.read_text()):
        (node,) = ast.parse(block).body
        assert isinstance(node, ast.FunctionDef), block
        assert node.name not in found, f"{node.name} is documented twice"
        found[node.name] = node
    return found


def hookspec_functions() -> dict[str, object]:
    return {n: f for n, f in vars(hookspecs).items() if n.startswith("immutable_sdk_")}


def test_every_hook_is_documented_and_no_other() -> None:
    assert set(documented()) == set(hookspec_functions())


def test_each_documented_signature_is_the_hookspecs() -> None:
    docs = documented()
    for name, function in hookspec_functions().items():
        node = docs[name]
        signature = inspect.signature(function)  # type: ignore[arg-type]
        shown = [
            (a.arg, ast.unparse(a.annotation) if a.annotation else None) for a in node.args.args
        ]
        actual = [(p.name, p.annotation) for p in signature.parameters.values()]
        assert shown == actual, name
        assert node.returns is not None and ast.unparse(node.returns) == signature.return_annotation
        options = function.immutable_sdk_spec
        decorator = ast.unparse(node.decorator_list[0])
        expected = "hookspec(firstresult=True)" if options["firstresult"] else "hookspec"
        assert decorator == expected, name


def test_the_check_sees_a_wrong_signature() -> None:
    wrong = (
        "@hookspec\ndef immutable_sdk_step_finished(rollout: RolloutInfo, step: Step) -> None: ..."
    )
    node = ast.parse(wrong).body[0]
    assert isinstance(node, ast.FunctionDef)
    real = inspect.signature(hookspec_functions()["immutable_sdk_step_finished"])  # type: ignore[arg-type]
    assert [a.arg for a in node.args.args] != list(real.parameters)
