"""The "Try a policy" form, generated from the policy's rules: each rule's settings and options model.

A rule gets one group of inputs: the policy settings it declares it reads (``Rule(..., settings=...)``:
``min_delta`` reads ``min_delta_global`` and ``min_delta_band``) under their own names, and each number field
of its options model as ``<rule>.<field>`` (``min_notional.min_usd``), labelled by the field's title or
description, with its unit (the domain's for the built-in settings; ``json_schema_extra={"unit": "USD"}`` for an
option). So a plugin rule with options gets its inputs without the panel knowing it. The lab rules not in
the policy are offered too: filling one of their fields adds the rule to the candidate.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from calibration_policy.errors import CalibrationPolicyError
from calibration_policy.plugins import get_domain, get_rule

from .views import rule_labels

# Rules the lab offers to add to a policy that lacks them, and where each goes: the stabilization window
# measures before the change gate; the directional gate replaces the plain one.
OPTIONAL_RULES = ("min_delta_directional", "stabilization_window", "cooldown_period")


@dataclass(frozen=True)
class LabField:
    name: str  # the input's name: a policy setting, or "<rule>.<option>"
    label: str
    kind: type  # int or float
    unit: str
    optional: bool  # blank means "not set" (no step limit), not "as the live policy"
    value: str

    @property
    def inputmode(self) -> str:
        return "numeric" if self.kind is int else "decimal"


@dataclass(frozen=True)
class RuleFields:
    rule: str
    label: str
    fields: tuple[LabField, ...]
    in_policy: bool


def _number_kind(annotation: Any) -> tuple[type, bool] | None:
    """``(int or float, whether None is allowed)`` for a number field; None for any other (set in the file)."""
    if annotation in (int, float):
        return annotation, False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and args[0] in (int, float) and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return None


def _shown(value: Any) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _setting_words(policy) -> dict[str, tuple[str, str]]:
    """The built-in settings' labels and units in the domain's words ("Fills at least", "Notional at least")."""
    domain = get_domain(policy.domain)
    unit = domain.value_unit
    evidence_unit = "" if domain.evidence_unit in domain.evidence_label.split() else domain.evidence_unit
    return {
        "min_delta_global": ("Global" if policy.domain == "vol_surface" else "Any value", unit),
        "min_delta_band": ("Band", unit),
        "min_sample_size": (f"{domain.sample_unit.capitalize()} at least", ""),
        "min_vega_sum": (f"{domain.evidence_label.capitalize()} at least", evidence_unit),
        "max_step": ("Step limit", unit),
    }


def form_fields(policy) -> list[RuleFields]:
    """Every rule of ``policy`` with its inputs (their values the policy's), then the optional lab rules."""
    words = _setting_words(policy)
    labels = rule_labels(policy.domain)
    settings_info = type(policy).model_fields
    groups = []
    for name in [*policy.rules, *(r for r in OPTIONAL_RULES if r not in policy.rules)]:
        rule, in_policy = get_rule(name), name in policy.rules
        fields = []
        for setting in rule.settings:
            kind = _number_kind(settings_info[setting].annotation)
            if kind is not None:
                label, unit = words.get(setting, (setting.replace("_", " ").capitalize(), ""))
                fields.append(LabField(setting, label, kind[0], unit, kind[1], _shown(getattr(policy, setting))))
        if rule.options is not None:
            current = policy.validated_rule_options(name) if in_policy else None
            for key, info in rule.options.model_fields.items():
                kind = _number_kind(info.annotation)
                if kind is None:
                    continue
                extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
                label = info.title or (info.description or key.replace("_", " ").capitalize()).rstrip(".")
                value = _shown(getattr(current, key)) if current is not None else ""
                fields.append(LabField(f"{name}.{key}", label, kind[0], str(extra.get("unit", "")), kind[1], value))
        if fields:
            groups.append(RuleFields(name, labels.get(name) or rule.label or name, tuple(fields), in_policy))
    return groups


def _number(field: LabField, text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise CalibrationPolicyError(f"{field.label} ({field.name}) must be a number, not {text!r:.30}.") from None
    if not math.isfinite(value):
        raise CalibrationPolicyError(f"{field.label} ({field.name}) must be a finite number, not {text!r:.30}.")
    if field.kind is int:
        if value != int(value):
            raise CalibrationPolicyError(f"{field.label} ({field.name}) must be a whole number, not {text!r:.30}.")
        return int(value)
    return value


def candidate_policy(current, form: dict[str, Any]):
    """The live policy with the form's values: settings set, rules' options changed, optional rules added
    when one of their fields is filled. A bad value is one sentence naming its field."""
    from pydantic import ValidationError

    from calibration_policy.policy import CalibrationUpdatePolicy

    data = current.model_dump()
    rules = list(data["rules"])
    options = {k: dict(v) for k, v in data["rule_options"].items()}
    for group in form_fields(current):
        given: dict[str, Any] = {}
        for field in group.fields:
            text = str(form.get(field.name) or "").strip()
            if not text and not (field.optional and field.name in form):
                continue
            value = _number(field, text) if text else None
            if "." in field.name:
                given[field.name.split(".", 1)[1]] = value
            else:
                data[field.name] = value
        if given:
            model = get_rule(group.rule).options
            assert model is not None  # only an options model gives a rule "<rule>.<field>" inputs
            merged = {**options.get(group.rule, {}), **given}
            try:
                model.model_validate(merged)
            except ValidationError as error:
                problem = error.errors()[0]
                name = f"{group.rule}.{problem['loc'][0]}" if problem["loc"] else group.rule
                label = next((f.label for f in group.fields if f.name == name), group.label)
                said = problem["msg"][:1].lower() + problem["msg"][1:]
                raise CalibrationPolicyError(f"{label} ({name}): {said}.") from None
            options[group.rule] = merged
            if not group.in_policy:
                _add(rules, group.rule)
    data["rules"], data["rule_options"] = rules, {k: v for k, v in options.items() if k in rules}
    return CalibrationUpdatePolicy(**data)


def _add(rules: list[str], name: str) -> None:
    gates = ("min_delta", "min_delta_directional")
    if name == "min_delta_directional" and "min_delta" in rules:
        rules[rules.index("min_delta")] = name
    elif name == "stabilization_window":
        rules.insert(next((i for i, r in enumerate(rules) if r in gates), len(rules)), name)
    else:
        rules.append(name)
