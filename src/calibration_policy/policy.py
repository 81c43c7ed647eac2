"""The update policy: every threshold lives here, in config, never in code."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from .errors import PolicyError
from .humanize import fmt_count, fmt_num, fmt_settings
from .notify import Endpoint, endpoints
from .paths import POLICY_ENV, POLICY_FILE_NAME
from .permissions import PermissionsTable
from .redact import mask

DEFAULT_RULES = ("min_sample_size", "min_vega_sum", "bounds", "max_step", "min_delta")

# Strict: in TOML `min_sample_size = true` must be an error, not the number 1.
Number = Annotated[float, Strict()]
NonNegative = Annotated[float, Strict(), Field(ge=0)]
Positive = Annotated[float, Strict(), Field(gt=0)]


def _friendly(error: ValidationError, unknown: str = "is not a policy setting (check the spelling)") -> str:
    """One sentence naming every problem; ``unknown`` says what a misspelt name is not (a policy setting, or an
    option of one rule)."""
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        kind, message = item["type"], item["msg"]
        if kind == "extra_forbidden":
            message = unknown
        elif kind == "finite_number":
            message = "must be a finite number, not NaN or infinity"
        elif kind == "value_error":
            problems.append(
                f"{field}: {message.removeprefix('Value error, ')}" if field else message.removeprefix("Value error, ")
            )
            continue
        else:
            message = message.replace("Input should be", "must be").replace("Input", "the value")
        got = item.get("input")
        shown = "" if isinstance(got, (dict, BaseModel)) or kind == "missing" else f" (got {got!r:.60})"
        problems.append(f"{field or 'policy'} {message}{shown}")
    return "Invalid calibration policy: " + "; ".join(p.rstrip(".") for p in problems) + "."


def _options_problem(error: ValidationError, what: str, spec: Any) -> str:
    """A rule's or a smoother's options refused, in words: a misspelt name is said to be no option of that rule
    ("the rule “Cooldown”"), with the options it has, not "not a policy setting"."""
    known = ", ".join(spec.options.model_fields) or "none"
    label = spec.label or spec.name.replace("_", " ")
    unknown = f"is not an option of {what} “{label}” (check the spelling; its options: {known})"
    return _friendly(error, unknown).removeprefix("Invalid calibration policy: ").rstrip(".")


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML settings file as a dict, or one sentence saying why it cannot be used."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{what} {path} does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise PolicyError(f"{what} {path} is not valid TOML: {error}.") from None
    except OSError as error:
        raise PolicyError(f"{what} {path} cannot be read: {error.strerror}.") from None


class HardLimit(BaseModel):
    """The watch's hard limit: this many runs in a row where the new values fit worse by more than ``worse_by``
    (a fraction: 0.25 = 25 % more tracking error than the old values) fail the change before the test could."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    runs: Annotated[int, Strict()] = Field(ge=1, le=1000)
    worse_by: NonNegative


class Bounds(BaseModel):
    """Absolute limits a live value may never leave (a safety net against a broken calibration)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    min: Number
    max: Number

    @model_validator(mode="after")
    def _ordered(self) -> Bounds:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class CalibrationUpdatePolicy(BaseModel):
    """When a smoothed recommendation may replace the live value.

    Strict on purpose: a typo in a threshold name or a NaN must fail loudly, because a
    silently ignored setting is a setting that lets noise into the live config.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    domain: str = Field(
        "vol_surface", description="What is governed: vol_surface, scoring_weights or a plugin's domain."
    )
    min_delta_global: NonNegative = Field(0.03, description="Smallest change of the global multiplier worth applying.")
    min_delta_band: NonNegative = Field(0.03, description="Smallest change of a band multiplier worth applying.")
    band_min_delta: dict[str, NonNegative] = Field(
        default_factory=dict, description="Per-band overrides of min_delta_band."
    )
    min_sample_size: Annotated[int, Strict()] = Field(
        150, ge=0, description="Fewest liquid options (or trades) a run needs."
    )
    min_vega_sum: NonNegative = Field(5000.0, description="Least total vega of the sample.")
    smoothing_window_days: Number = Field(
        14.0, ge=1, le=36_500, description="Runs this many days back count in the smoothing."
    )
    smoothing: str = Field("ewma", description="Smoothing strategy name: ewma, rolling_median or a plugin's.")
    smoothing_options: dict[str, Any] = Field(
        default_factory=dict, description="Options of the strategy, e.g. half_life_days."
    )
    smoothing_skips_thin_runs: Annotated[bool, Strict()] = Field(
        True, description="Leave runs that fail the sample-size or vega minimum out of the smoothing of later runs."
    )
    rules: tuple[str, ...] = Field(DEFAULT_RULES, description="Apply rules, run in this order; all must pass.")
    max_step: Positive | None = Field(
        None, description="Largest change of one scope in one update; bigger moves are clipped."
    )
    bounds: Bounds | None = Field(
        None,
        description="Absolute [min, max] a value may take; outside it nothing applies (default: the domain's safety range).",
    )
    apply_scopes: Literal["all", "changed"] = Field(
        "all", description="On apply, write all smoothed scopes or only those that changed enough."
    )
    require_approval: Annotated[bool, Strict()] = Field(
        False, description="Make a pending suggestion for a person to approve instead of applying."
    )
    rule_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Options of rules that declare them, by rule name, e.g. { cooldown = { days = 3 } }.",
    )
    permissions: PermissionsTable | None = Field(
        None,
        description="Who may do what: roles → actions, users/groups → roles (default: every signed-in user may do everything).",
    )
    require_distinct_approver: Annotated[bool, Strict()] = Field(
        False, description="Four-eyes: the person who proposed or last modified a suggestion may not approve it."
    )
    force_requires_approval: Annotated[bool, Strict()] = Field(
        False, description="A force-apply becomes a pending suggestion that a second person must approve."
    )
    required_approvals: Annotated[int, Strict()] = Field(
        1, ge=1, le=20, description="Distinct approvals a suggestion needs."
    )
    watch_runs: Annotated[int, Strict()] = Field(
        0, ge=0, le=1000, description="Runs after a change that are scored new values vs old (0: no watch)."
    )
    watch_test: Literal["sign", "wilcoxon", "permutation_scopes"] = Field(
        "sign",
        description="The watch's paired one-sided test: an exact sign test or Wilcoxon signed-rank on each run's "
        "score, or permutation_scopes: an exact sign-flip permutation test on each scope of each run (more "
        "power, but it assumes a run's scopes move independently).",
    )
    watch_alpha: Annotated[float, Strict(), Field(gt=0, lt=0.5)] = Field(
        0.05, description="The watch's significance level: a verdict needs a p-value at or below it."
    )
    watch_tolerance: NonNegative = Field(
        0.02, description="The new values count as worse only when they fit worse by more than this fraction."
    )
    watch_hard_limit: HardLimit | None = Field(
        None,
        description="Fail at once after this many runs in a row worse by more than worse_by, e.g. { runs = 3, worse_by = 0.25 }.",
    )
    watch_action: Literal["roll_back", "propose_roll_back", "notify"] = Field(
        "propose_roll_back",
        description="What a failed watch does: roll back, leave the roll back to a person, or only tell.",
    )
    refuse_unrecorded_edits: Annotated[bool, Strict()] = Field(
        False,
        description="Refuse to act on a policy file edited outside calibration-policy until someone allowed to "
        "change the policy accepts it (`calibration-policy policy accept`).",
    )
    store: str | None = Field(
        None,
        description="Where runs, suggestions and the archive are kept: a database address such as "
        "postgresql://user:pw@host/db, or where that address is kept so the policy holds no password: "
        '"env:VARIABLE" or "file:/path" (default: the data folder; the environment\'s store setting wins).',
    )
    notify: tuple[Endpoint, ...] = Field(
        (),
        description="Where notifications of every decision and change go: the policy file's notify tables, each "
        "a signed webhook or a Slack message, with its address and secret kept outside the policy, and filters.",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as error:
            raise PolicyError(_friendly(error)) from error

    @field_validator("band_min_delta")
    @classmethod
    def _bands_only(cls, overrides: dict[str, float]) -> dict[str, float]:
        if "global" in overrides:
            raise ValueError("cannot hold 'global'; set min_delta_global instead")
        return overrides

    @field_validator("smoothing")
    @classmethod
    def _known_smoother(cls, name: str) -> str:
        from .plugins import get_smoother

        get_smoother(name)
        return name

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from .plugins import get_rule

        if len(set(names)) != len(names):
            raise ValueError("lists a rule twice")
        for name in names:
            get_rule(name)
        return names

    @field_validator("store")
    @classmethod
    def _store_url(cls, url: str | None) -> str | None:
        from .stores import check_store_setting

        return check_store_setting(url) if url is not None else None

    @field_serializer("store", when_used="json")
    def _store_masked(self, url: str | None) -> str | None:
        return mask(url) if url is not None else None  # every JSON answer and --json output: never a password

    @field_validator("notify", mode="before")
    @classmethod
    def _notify_tables(cls, value: Any) -> tuple[Endpoint, ...]:
        from .plugins import collect

        try:
            found = endpoints(value)
        except ValidationError as error:  # one endpoint's own problems, named by the endpoint
            raise ValueError(_friendly(error).removeprefix("Invalid calibration policy: ").rstrip(".")) from None
        known = collect("deliverers")
        for endpoint in found:
            known.get(endpoint.deliverer)  # an unknown deliverer fails with the policy, naming the installed ones
        return found

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, name: str) -> str:
        from .plugins import get_domain

        get_domain(name)
        return name

    @model_validator(mode="after")
    def _smoothing_options_valid(self) -> CalibrationUpdatePolicy:
        self.validated_smoothing_options()
        return self

    @model_validator(mode="after")
    def _rule_options_valid(self) -> CalibrationUpdatePolicy:
        for name in self.rule_options:
            if name not in self.rules:
                raise ValueError(f"rule_options names {name!r:.60}, which is not in rules ({', '.join(self.rules)})")
        for name in self.rules:
            self.validated_rule_options(name)
        return self

    @model_validator(mode="after")
    def _step_can_reach_threshold(self) -> CalibrationUpdatePolicy:
        # A clipped step below the change threshold would block every update forever.
        if self.max_step is not None and "max_step" in self.rules and "min_delta" in self.rules:
            largest = max([self.min_delta_global, self.min_delta_band, *self.band_min_delta.values()])
            if self.max_step < largest:
                raise ValueError(
                    f"max_step ({self.max_step:g}) is smaller than the largest change threshold ({largest:g}), "
                    "so no update could ever apply; raise max_step or lower the thresholds"
                )
        return self

    @model_validator(mode="after")
    def _watch_can_conclude(self) -> CalibrationUpdatePolicy:
        # The exact tests give at best 0.5**n on n runs (a per-scope one too, for a domain with one part a run).
        if self.watch_runs and 0.5**self.watch_runs > self.watch_alpha:
            needed = next(n for n in range(1, 64) if 0.5**n <= self.watch_alpha)
            raise ValueError(
                f"watch_runs {self.watch_runs} can never reach watch_alpha {self.watch_alpha:g}: the smallest p-value "
                f"{self.watch_runs} runs give is {0.5**self.watch_runs:.3g}; watch at least {needed} runs"
            )
        return self

    def validated_smoothing_options(self) -> BaseModel | None:
        """The strategy's options, checked by the model the strategy registered."""
        from .plugins import get_smoother

        smoother = get_smoother(self.smoothing)
        if smoother.options is None:
            if self.smoothing_options:
                raise ValueError(f"smoothing {self.smoothing!r} takes no options")
            return None
        try:
            return smoother.options(**self.smoothing_options)
        except ValidationError as error:
            detail = _options_problem(error, "the smoothing", smoother)
            raise ValueError(f"smoothing_options for {self.smoothing}: {detail}") from None

    def validated_rule_options(self, name: str) -> BaseModel | None:
        """A rule's options, checked by the model the rule registered (its defaults when not set)."""
        from .plugins import get_rule

        rule = get_rule(name)
        given = self.rule_options.get(name, {})
        if rule.options is None:
            if given:
                raise ValueError(f"rule {name!r} takes no options")
            return None
        try:
            return rule.options(**given)
        except ValidationError as error:
            raise ValueError(f"rule_options for {name}: {_options_problem(error, 'the rule', rule)}") from None

    def effective_bounds(self) -> Bounds | None:
        """The policy's bounds, else the domain's safety range (IV multipliers: 0.25–4)."""
        if self.bounds is not None:
            return self.bounds
        from .plugins import get_domain

        default = get_domain(self.domain).default_bounds
        return Bounds(min=default[0], max=default[1]) if default else None

    def threshold_for(self, scope: str) -> float:
        """The smallest change that counts for ``scope`` (global, or a band with its override).

        Only the vol surface has bands; every scope of another domain (a scoring weight) uses
        ``min_delta_global`` unless ``band_min_delta`` names it, exactly as :meth:`explain` says.
        """
        if scope == "global":
            return self.min_delta_global
        if scope in self.band_min_delta:
            return self.band_min_delta[scope]
        return self.min_delta_band if self.domain == "vol_surface" else self.min_delta_global

    # -- loading -----------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationUpdatePolicy:
        if not isinstance(data, dict):
            raise PolicyError(f"A policy must be a table of settings, not {type(data).__name__}.")
        if set(data) == {"policy"}:
            data = data["policy"]
            if not isinstance(data, dict):
                raise PolicyError(f"The [policy] table must be a table of settings, not {type(data).__name__}.")
        return cls(**dict(data))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> CalibrationUpdatePolicy:
        path = Path(path)
        data = read_toml(path, "Policy file")
        try:
            return cls.from_dict(data)
        except PolicyError as error:
            raise PolicyError(f"{path}: {error}") from None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str] | None = None, data_dir: str | os.PathLike[str] | None = None
    ) -> CalibrationUpdatePolicy:
        """The policy in force: ``path``, else ``$CALIBRATION_POLICY``, else (on a store shared by several
        machines) the store's newest policy version, else ``calibration_policy.toml`` next to the data,
        else the built-in defaults."""
        explicit = path if path is not None else (os.environ.get(POLICY_ENV) or None)
        path = explicit
        if path is None and data_dir is not None:
            candidate = Path(data_dir) / POLICY_FILE_NAME
            path = candidate if candidate.is_file() else None
        policy = cls.from_toml(path) if path is not None else cls()
        from .stores import active_store, follow

        follow(policy)  # `store = "postgresql://…"` in the policy file selects the store of this process
        if explicit is None and (shared := active_store().current_policy()) is not None:
            # A store shared by several machines holds the policy in force: its newest version.
            return cls.from_dict({**shared, "store": policy.store})
        return policy

    # -- explaining --------------------------------------------------------------------------

    def explain(self) -> str:
        """The policy in plain English with the live numbers, for the panel and the CLI."""
        from .plugins import get_domain

        domain = get_domain(self.domain)
        what = domain.parameter_label_plural
        window = f"{self.smoothing_window_days:g}"
        parts = [
            f"The system smooths calibration results over the last {window} days using {self.smoothing_phrase()} "
            f"and only updates {what} when the change is large enough"
        ]
        banded = self.domain == "vol_surface"
        every = "the global value" if banded else f"any {domain.parameter_label}"
        thresholds = [f"at least {fmt_num(self.min_delta_global)} for {every}"]
        if banded:
            thresholds.append(f"at least {fmt_num(self.min_delta_band)} for a band")
        thresholds += [f"{fmt_num(v)} for {band}" for band, v in sorted(self.band_min_delta.items())]
        parts[0] += f" ({', '.join(thresholds)})"
        evidence = []
        if "min_sample_size" in self.rules:
            evidence.append(f"at least {fmt_count(self.min_sample_size)} {domain.sample_unit} in the sample")
        if "min_vega_sum" in self.rules:
            evidence.append(f"a {domain.evidence_label} of at least {domain.evidence_amount(self.min_vega_sum)}")
        if evidence:
            parts[0] += " and there is enough data: " + " and ".join(evidence)
        parts[0] += "."
        if self.max_step is not None and "max_step" in self.rules:
            parts.append(
                f"One update moves a value by at most {fmt_num(self.max_step)}; a bigger move is made over several days."
            )
        limits = self.effective_bounds()
        if limits is not None and "bounds" in self.rules:
            parts.append(f"A value outside {fmt_num(limits.min)}–{fmt_num(limits.max)} is never applied.")
        if self.smoothing_skips_thin_runs:
            parts += self._explain_gates()
        if self.apply_scopes == "changed":
            parts.append("Only the values that changed enough are written; the others stay as they are.")
        else:
            parts.append("When an update applies, all smoothed values are written together.")
        if self.require_approval:
            parts.append("Every update waits for a person to approve it in the calibration panel.")
        parts += [self._explain_rule(name) for name in self.rules if name not in DEFAULT_RULES]
        if (
            self.permissions is not None
            or self.require_distinct_approver
            or self.force_requires_approval
            or self.required_approvals > 1
        ):
            from .permissions import explain as explain_permissions

            parts.append(explain_permissions(self))
        return " ".join(parts)

    def smoothing_phrase(self, detail: bool = True) -> str:
        """The smoother actually configured, as a reader says it: "the median", "an exponentially weighted
        average (… half-life 7 days)", or a plugin's label with its options as set. ``detail=False`` says it
        briefly, after "the last 14 days of runs, …" (the panel's one-line rule sentence): "averaged with a 7-day
        half-life", "their median", "by “Trimmed mean” (trim 0.2)"."""
        from .plugins import get_smoother

        options = self.validated_smoothing_options()
        if self.smoothing == "ewma":
            half_life = getattr(options, "half_life_days", 0)
            if detail:
                return f"an exponentially weighted average (recent runs count more; half-life {half_life:g} days)"
            return f"averaged with a {half_life:g}-day half-life"
        if self.smoothing == "rolling_median":
            return "the median (a single odd day cannot move it)" if detail else "their median"
        label, settings = get_smoother(self.smoothing).label or self.smoothing, fmt_settings(options)
        if detail:
            return f"“{label}”" + (f" ({settings})" if settings else "")
        return f"by “{label}”" + (f" ({settings})" if settings else "")

    def _explain_gates(self) -> list[str]:
        """The sentence on the runs the evidence gates leave out of the smoothing (none without a gate)."""
        from .plugins import get_rule

        gates = [get_rule(name) for name in self.rules if get_rule(name).gates_evidence]
        if not gates:
            return []
        plugins = [rule.label or rule.name for rule in gates if rule.name not in DEFAULT_RULES]
        if not plugins:
            return ["Runs without enough data are recorded but left out of the smoothing."]
        failing = " or ".join(f'"{label}"' for label in plugins)
        thin = ", or lack enough data," if len(plugins) < len(gates) else ""
        return [f"Runs that fail {failing}{thin} are recorded but left out of the smoothing."]

    def _explain_rule(self, name: str) -> str:
        """A plugin's rule explains itself: its label, its description and the options in force."""
        from .plugins import get_rule

        rule = get_rule(name)
        settings = fmt_settings(self.validated_rule_options(name))
        text = f'It also checks "{rule.label or name}"'
        if rule.description:
            text += f": {rule.description.rstrip('.')}"
        return text + (f" ({settings})." if settings else ".")
