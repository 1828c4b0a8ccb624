"""No route turns a built-in error into an HTTP answer: a ValueError or a LookupError caught by a route made every
bug look like bad input (422) or a missing thing (404). Routes let domain errors (errors/) pass to the handlers of
api/errors.py, and catch only what they must translate themselves (a library's own error, with a narrower class)."""

from __future__ import annotations

import ast
from pathlib import Path

from harness.procs import REPO

# The built-in classes most bugs raise. (PATCH /documents/{id}/access catches Exception to answer that nothing was
# changed, and says so in a 503: a deliberate all-or-nothing, left as it is.)
BROAD = {"ValueError", "LookupError", "KeyError", "IndexError", "UnicodeError", "TypeError", "AttributeError"}


def caught(handler: ast.ExceptHandler) -> list[str]:
    if handler.type is None:
        return ["(bare except)"]
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return [t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else ast.dump(t)
            for t in types]


def reraises(handler: ast.ExceptHandler) -> bool:
    """A handler that ends by raising what it caught (after undoing or logging something) does not answer."""
    last = handler.body[-1]
    return isinstance(last, ast.Raise) and (last.exc is None or (isinstance(last.exc, ast.Name)
                                                                  and last.exc.id == handler.name))


def broad_catches(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ExceptHandler) and not reraises(node):
            found += [f"{path.name}:{node.lineno} catches {name}"
                      for name in caught(node) if name in BROAD or name.startswith("(")]
    return found


def test_no_route_catches_value_error_or_lookup_error():
    sources = sorted((REPO / "api" / "routes").glob("*.py")) + [REPO / "api" / "deps.py"]
    assert len(sources) > 10
    assert [c for p in sources for c in broad_catches(p)] == []


def test_the_check_sees_a_catch(tmp_path):
    route = tmp_path / "route.py"
    route.write_text("try:\n    f()\nexcept (OSError, ValueError) as e:\n    raise HTTPException(422, str(e))\n"
                     "try:\n    g()\nexcept KeyError:\n    undo()\n    raise\n")
    assert broad_catches(route) == ["route.py:3 catches ValueError"]  # the second re-raises what it caught
