"""The plugin manager: built-in plugins plus everything in the ``calibration_policy`` entry points."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable

import pluggy

from . import hookspecs
from .errors import PolicyError, UnknownPluginError

ENTRY_POINT_GROUP = "calibration_policy"

DEFAULT_PLUGINS = (
    "calibration_policy.default_plugins.smoothers",
    "calibration_policy.default_plugins.rules",
    "calibration_policy.default_plugins.domains",
    "calibration_policy.default_plugins.scoring_weights",
)

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use so importing the package stays cheap."""
    global _pm
    with _lock:
        if _pm is None:
            import importlib

            pm = pluggy.PluginManager("calibration_policy")
            pm.add_hookspecs(hookspecs)
            for module in DEFAULT_PLUGINS:
                pm.register(importlib.import_module(module), name=module)
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            _pm = pm
        return _pm


def reset_plugin_manager() -> None:
    """Forget the manager so newly installed entry points are found (tests, long-lived hosts)."""
    global _pm
    with _lock:
        _pm = None


@dataclass(frozen=True)
class Smoother:
    name: str
    fn: Callable[..., float]
    options: type | None = None


def _collect(hook_name: str, make: Callable[..., Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def register(name: str, *args: Any, **kwargs: Any) -> None:
        if not isinstance(name, str) or not name:
            raise PolicyError(f"A plugin registered a {hook_name} with an empty or non-text name.")
        found[name] = make(name, *args, **kwargs)

    getattr(get_plugin_manager().hook, hook_name)(register=register)
    return found


def smoothers() -> dict[str, Smoother]:
    return _collect("register_smoothers", Smoother)


def rules() -> dict[str, Callable[..., Any]]:
    return _collect("register_rules", lambda name, fn: fn)


def domains() -> dict[str, Any]:
    found: dict[str, Any] = {}
    get_plugin_manager().hook.register_domains(register=lambda domain: found.setdefault(domain.name, domain))
    return found


def sources() -> dict[str, Any]:
    found: dict[str, Any] = {}
    get_plugin_manager().hook.register_sources(register=lambda source: found.setdefault(source.name, source))
    return found


def targets() -> dict[str, Callable[..., Any]]:
    return _collect("register_targets", lambda name, factory: factory)


def get_source(name: str) -> Any:
    known = sources()
    if name not in known:
        raise UnknownPluginError("calibration source", name, list(known))
    return known[name]


def get_target_factory(domain: str) -> Callable[..., Any]:
    known = targets()
    if domain not in known:
        raise UnknownPluginError(f"live-config target for {domain}", domain, list(known))
    return known[domain]


def load_plugins_dir(directory: str | os.PathLike[str]) -> list[str]:
    """Register every ``*.py`` in ``directory`` as a plugin (like datasette's --plugins-dir).

    This is how a host that is not a package (scripts in a repo) plugs in its sources and targets.
    """
    import importlib.util

    folder = Path(directory)
    if not folder.is_dir():
        raise PolicyError(f"The plugins folder {folder} does not exist.")
    pm = get_plugin_manager()
    loaded = []
    for path in sorted(folder.glob("*.py")):
        name = f"calibration_policy_plugins_dir.{path.stem}"
        if pm.has_plugin(name):
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(module)  # type: ignore[union-attr]
        pm.register(module, name=name)
        loaded.append(str(path))
    return loaded


def get_smoother(name: str) -> Smoother:
    known = smoothers()
    if name not in known:
        raise UnknownPluginError("smoothing strategy", name, list(known))
    return known[name]


def get_rule(name: str) -> Callable[..., Any]:
    known = rules()
    if name not in known:
        raise UnknownPluginError("rule", name, list(known))
    return known[name]


def get_domain(name: str) -> Any:
    known = domains()
    if name not in known:
        raise UnknownPluginError("domain", name, list(known))
    return known[name]
