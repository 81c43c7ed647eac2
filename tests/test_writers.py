"""Nothing outside the governor writes a live config, an archive entry, a review or a policy version.

Read from the source (AST), like ``test_imports.py``: a call of a writing function — ``apply_values``,
an archive's ``prepare``/``mark``/``put``/``reconcile``, a review store's ``propose``/``save``/
``expire_pending``/``put``, ``PolicyVersions.record``/``rollback``, ``PolicyProposals.propose``/``approve``/``reject`` — is allowed only in the modules that
*are* the governed path (the governor, the change kinds, the steps they compose, settling) or that
define or store those records. A new entry point that writes directly fails here, naming the call.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# What makes a receiver a store of each kind: the call that produced it (``open_reviews(...)``,
# ``tab.store()``, ``ReviewStore(...)``), by the called name.
MAKERS = {
    "reviews": {"open_reviews", "ReviewStore", "_store", "reviews", "store"},
    "archive": {"open_archive", "Archive", "archive"},
    "versions": {"PolicyVersions"},
    "proposals": {"PolicyProposals"},
}
WORDS = {"reviews": ("review",), "archive": ("archive",), "versions": ("versions",), "proposals": ("proposals",)}
WRITES = {
    "reviews": {"propose", "save", "expire_pending", "put"},
    "archive": {"prepare", "mark", "put", "reconcile"},
    "versions": {"record", "rollback"},
    "proposals": {"propose", "approve", "reject"},
}

# The governed path, and the modules that define or keep the records.
ALLOWED = (
    "calibration_policy.governor",
    "calibration_policy.changes",  # the built-in change kinds
    "calibration_policy.default_plugins.scoring_weights.changes",  # a plugin's change kinds
    "calibration_policy.steps",  # the steps a change composes
    "calibration_policy.recovery",  # settling, the governor's first step
    "calibration_policy.watch",  # a failed watch's roll back, a step of the governed update that judged it
    "calibration_policy.doctor",  # `doctor --repair` settles what the governor could not
    "calibration_policy.apply",
    "calibration_policy.archive",
    "calibration_policy.review",
    "calibration_policy.policy_versions",
    "calibration_policy.stores",
    "calibration_policy.default_plugins.postgresql",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def called_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call):
        func = node.func
        return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    return None


def kind_of(receiver: ast.AST, bound: dict[str, str]) -> str | None:
    if isinstance(receiver, ast.Name):
        return bound.get(receiver.id)
    made = receiver.attr if isinstance(receiver, ast.Attribute) else called_name(receiver)  # self.store, tab.store()
    if made is None:
        return None
    # By the maker's name: open_reviews(), tab.store(), _versions(), a PolicyVersions(...) …
    return next(
        (kind for kind, makers in MAKERS.items() if made in makers or any(m in made for m in WORDS[kind])), None
    )


def writes_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    scopes = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))] + [tree]
    for scope in scopes:
        bound: dict[str, str] = {}
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                kind = kind_of(node.value, {})
                for target in node.targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and kind is not None:
                            bound[name.id] = kind
        for node in ast.walk(scope):
            if not isinstance(node, ast.Call):
                continue
            if isinstance(node.func, ast.Name) and node.func.id == "apply_values":
                found.append(f"{path.relative_to(SRC)}:{node.lineno} apply_values(...)")
            elif isinstance(node.func, ast.Attribute):
                kind = kind_of(node.func.value, bound)
                if kind is not None and node.func.attr in WRITES[kind]:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {kind} .{node.func.attr}(...)")
    return sorted(set(found))


def test_the_check_sees_the_writes_it_is_about():
    governed = writes_in(SRC / "calibration_policy" / "changes" / "reviews.py")
    assert any("apply_values" in w for w in governed) and any("reviews .save" in w for w in governed)
    assert any(".record(" in w for w in writes_in(SRC / "calibration_policy" / "policy_versions.py"))


def test_nothing_outside_the_governor_writes_a_live_config_an_archive_a_review_or_a_policy_version():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        name = module_name(path)
        if any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED):
            continue
        offenders += writes_in(path)
    assert not offenders, "write through Governor(ctx).execute(change) instead:\n" + "\n".join(offenders)
