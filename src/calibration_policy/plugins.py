"""The plugin manager: built-in plugins plus everything in the ``calibration_policy`` entry points.

One lookup serves every kind (smoothers, rules, domains, sources, targets): each plugin's
``register_*`` hook is called on its own, so a registration can be traced to the plugin and
package that made it. A plugin that raises, registers something malformed or takes a name that
is already taken is refused *alone*, with a warning naming it and its package; the other plugins
keep working, and asking for a refused name raises that plugin's error.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .errors import PluginError, PolicyError, UnknownPluginError
from .redact import get_logger
from .specs import ChangeType, Deliverer, Rule, Smoother, StoreType, TargetFactory

log = get_logger(__name__)

ENTRY_POINT_GROUP = "calibration_policy"

# Names, not imports: the core never imports its default plugins, it only asks pluggy to load them.
DEFAULT_PLUGINS = (
    "calibration_policy.default_plugins.default_permissions",
    "calibration_policy.default_plugins.smoothers",
    "calibration_policy.default_plugins.rules",
    "calibration_policy.default_plugins.lab_rules",
    "calibration_policy.default_plugins.vol_surface",
    "calibration_policy.default_plugins.scoring_weights",
    "calibration_policy.default_plugins.demo",
    "calibration_policy.default_plugins.lab_commands",
    "calibration_policy.default_plugins.review_commands",
    "calibration_policy.default_plugins.users_commands",
    "calibration_policy.default_plugins.postgresql",
    "calibration_policy.default_plugins.notifiers",
    "calibration_policy.default_plugins.outbox_commands",
)

_lock = threading.Lock()
_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide manager, built on first use so importing the package stays cheap."""
    global _pm
    with _lock:
        if _pm is None:
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


def plugin_package(plugin_name: str) -> str:
    """ "cp-risk-limits 1.0" for an installed plugin, "calibration-policy (built-in)", or its file."""
    pm = get_plugin_manager()
    plugin = pm.get_plugin(plugin_name)
    for candidate, dist in pm.list_plugin_distinfo():
        if candidate is plugin:
            return f"{dist.metadata['name']} {dist.version}"
    if plugin_name in DEFAULT_PLUGINS:
        return "calibration-policy (built-in)"
    return str(getattr(plugin, "__file__", None) or "registered in process")


# -- one lookup for every kind ---------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    hook: str
    what: str  # "smoothing strategy", as errors say it
    spec: type | None  # the record a plugin must register, or None for "any object with a name"


KINDS = {
    "smoothers": Kind("register_smoothers", "smoothing strategy", Smoother),
    "rules": Kind("register_rules", "rule", Rule),
    "domains": Kind("register_domains", "domain", None),
    "sources": Kind("register_sources", "calibration source", None),
    "targets": Kind("register_targets", "live-config target", TargetFactory),
    "stores": Kind("register_stores", "store", StoreType),
    "change_kinds": Kind("register_change_kinds", "change kind", ChangeType),
    "deliverers": Kind("register_deliverers", "notification deliverer", Deliverer),
}


@dataclass
class Registry:
    """What the installed plugins registered for one kind, and what was refused."""

    kind: Kind
    found: dict[str, Any] = field(default_factory=dict)
    owner: dict[str, str] = field(default_factory=dict)
    refused: dict[str, PluginError] = field(default_factory=dict)  # by name where known, else by plugin

    def get(self, name: str) -> Any:
        if name in self.refused:  # two plugins claim it: using either silently would be a guess
            raise self.refused[name]
        if name in self.found:
            return self.found[name]
        broken = "".join(f" ({error})" for key, error in self.refused.items() if key.startswith("plugin:"))
        error = UnknownPluginError(self.kind.what, name, list(self.found))
        if broken:
            error.args = (str(error) + f" Some plugins failed to load:{broken}",)
        raise error


def _check(kind: Kind, item: Any, plugin: str) -> str:
    """The item's name, or a PluginError saying what is wrong with it."""
    if kind.spec is not None and not isinstance(item, kind.spec):
        where = f"Plugin {plugin} ({plugin_package(plugin)})"
        raise PluginError(
            f"{where} registered a {type(item).__name__} in {kind.hook}; "
            f"register a calibration_policy.{kind.spec.__name__}(name=..., ...) instead."
        )
    name = getattr(item, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise PluginError(
            f"Plugin {plugin} ({plugin_package(plugin)}) registered a {kind.what} with an empty or non-text name."
        )
    return name


_frozen = threading.local()


@contextlib.contextmanager
def frozen_registry() -> Iterator[None]:
    """Within it, each kind is collected once (in this thread): for a long loop of decisions, such as a
    replay of 70,000 runs, that asks for the same rules hundreds of thousands of times."""
    outer = getattr(_frozen, "cache", None)
    if outer is None:
        _frozen.cache = {}
    try:
        yield
    finally:
        if outer is None:
            _frozen.cache = None


def collect(kind_name: str) -> Registry:
    """Call every plugin's hook for ``kind_name`` and gather what each registered, in load order."""
    cache = getattr(_frozen, "cache", None)
    if cache is not None:
        if kind_name not in cache:
            cache[kind_name] = _collect(kind_name)
        return cache[kind_name]
    return _collect(kind_name)


def _collect(kind_name: str) -> Registry:
    kind = KINDS[kind_name]
    registry = Registry(kind)
    pm = get_plugin_manager()
    caller = getattr(pm.hook, kind.hook, None)
    if caller is None:  # a hook an extension adds (the panel's tabs) on a fresh manager: nothing registered yet
        return registry
    for impl in caller.get_hookimpls():  # registration order: built-ins first
        plugin = impl.plugin_name
        mine: list[tuple[str, Any]] = []

        def register(item: Any, *rest: Any, **options: Any) -> None:
            if rest or options:
                raise PluginError(
                    f"Plugin {plugin} ({plugin_package(plugin)}) called register() in {kind.hook} with "
                    f"several arguments; register one calibration_policy record, e.g. "
                    f"register({(kind.spec or Smoother).__name__}(name=..., ...))."
                )
            mine.append((_check(kind, item, plugin), item))

        try:
            impl.function(register=register)
        except PluginError as error:
            registry.refused[f"plugin:{plugin}"] = error
            log.warning("%s", error)
            continue
        except Exception as error:  # a third party's bug must not take the others down
            refused = PluginError(
                f"Plugin {plugin} ({plugin_package(plugin)}) failed in {kind.hook}: "
                f"{type(error).__name__}: {str(error)[:200]}"
            )
            registry.refused[f"plugin:{plugin}"] = refused
            log.warning("%s", refused)
            continue
        for name, item in mine:
            if name in registry.found and not getattr(item, "replaces", False):
                taken = PluginError(
                    f"The {kind.what} name {name!r} is registered by both {registry.owner[name]} "
                    f"({plugin_package(registry.owner[name])}) and {plugin} ({plugin_package(plugin)}); rename one, "
                    f"or let the newer one say replaces=True."
                )
                registry.refused[name] = taken
                log.warning("%s", taken)
                continue
            registry.found[name] = item
            registry.owner[name] = plugin
    return registry


def smoothers() -> dict[str, Smoother]:
    return collect("smoothers").found


def rules() -> dict[str, Rule]:
    return collect("rules").found


def domains() -> dict[str, Any]:
    return collect("domains").found


def sources() -> dict[str, Any]:
    return collect("sources").found


def get_smoother(name: str) -> Smoother:
    return collect("smoothers").get(name)


def get_rule(name: str) -> Rule:
    return collect("rules").get(name)


def get_domain(name: str) -> Any:
    return collect("domains").get(name)


def sums_to_one(domain: str) -> bool:
    """Whether ``domain``'s value sets add up to 1 (``Domain.sums_to_one``), so they are shown so that they do;
    False for a domain whose plugin is gone (its runs and changes still show)."""
    try:
        return bool(get_domain(domain).sums_to_one)
    except ValueError:
        return False


def get_source(name: str) -> Any:
    return collect("sources").get(name)


def get_target_factory(domain: str) -> Callable[..., Any]:
    return collect("targets").get(domain).factory


# -- what is installed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PluginInfo:
    """One installed plugin, as ``calibration-policy plugins`` lists it (like ``llm plugins``)."""

    name: str
    package: str
    hooks: tuple[str, ...]
    registers: dict[str, tuple[str, ...]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "hooks": list(self.hooks),
            "registers": {kind: list(names) for kind, names in self.registers.items()},
        }


def installed_plugins() -> list[PluginInfo]:
    pm = get_plugin_manager()
    registries = {kind: collect(kind) for kind in KINDS}
    found = []
    for plugin in pm.get_plugins():
        name = pm.get_name(plugin) or repr(plugin)
        hooks = tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))
        registers = {
            kind: tuple(sorted(n for n, owner in registry.owner.items() if owner == name))
            for kind, registry in registries.items()
        }
        found.append(PluginInfo(name, plugin_package(name), hooks, {k: v for k, v in registers.items() if v}))
    return sorted(found, key=lambda info: (info.name not in DEFAULT_PLUGINS, info.name))


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
