"""Reading template.yaml and resolving CloudFormation intrinsics against a deployed (local) stack.

template.yaml is the single source of truth for code locations, handlers, environment, timeouts and
event sources; the local runtime reads all of them from here rather than from a second list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(ValueError):
    """template.yaml lacks something the local runtime needs, or uses an intrinsic it cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns !Ref / !GetAtt / !Sub ... into their long form (own class: no global side effects)."""


def _intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if tag_suffix == "GetAtt" and isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node).split(".", 1)
    elif isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template(path: str | Path) -> dict[str, Any]:
    """template.yaml as a dict, short-form intrinsics expanded."""
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError(f"{path}: not a CloudFormation/SAM template")
    return data


def sam_function(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """A function's properties with the template's Globals.Function applied (as the SAM transform does)."""
    resource = template["Resources"].get(logical_id)
    if not resource or resource.get("Type") != "AWS::Serverless::Function":
        raise TemplateError(f"{logical_id} is not an AWS::Serverless::Function in the template")
    merged = dict(template.get("Globals", {}).get("Function", {}))
    props = resource.get("Properties", {})
    for key, value in props.items():
        if key == "Environment":
            variables = {**merged.get("Environment", {}).get("Variables", {}), **value.get("Variables", {})}
            merged["Environment"] = {"Variables": variables}
        else:
            merged[key] = value
    return merged


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, str] | None) -> dict[str, str]:
    """Parameters with defaults filled in; a missing required one is an error, as in CloudFormation."""
    values: dict[str, str] = {}
    overrides = dict(overrides or {})
    for name, spec in template.get("Parameters", {}).items():
        if name in overrides:
            values[name] = str(overrides.pop(name))
        elif "Default" in spec:
            values[name] = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no default: pass a value for it")
    if overrides:
        raise TemplateError(f"unknown parameters: {', '.join(sorted(overrides))}")
    return values


NO_VALUE = object()  # Ref AWS::NoValue: the property or list item is left out


class Resolver:
    """Resolves Ref / Fn::GetAtt / Fn::Sub / Fn::Join / Fn::Select / Fn::Split / Fn::If against known
    values; ``conditions`` is the template's Conditions section (Fn::Equals / Not / And / Or / Condition)."""

    def __init__(self, refs: Mapping[str, str], get_att: Callable[[str, str], str],
                 conditions: Mapping[str, Any] | None = None) -> None:
        self._refs = refs
        self._get_att = get_att
        self._conditions = dict(conditions or {})

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [r for r in (self(v) for v in value) if r is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            handler = self._functions().get(key)
            if handler is not None:
                return handler(arg)
        return {k: r for k, r in ((k, self(v)) for k, v in value.items()) if r is not NO_VALUE}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            raise TemplateError(f"unknown condition {name}")
        return self._truth(self._conditions[name])

    def _truth(self, expr: Any) -> bool:
        (key, arg), = expr.items()
        if key == "Fn::Equals":
            return bool(self(arg[0]) == self(arg[1]))
        if key == "Fn::Not":
            return not self._truth(arg[0])
        if key == "Fn::And":
            return all(self._truth(a) for a in arg)
        if key == "Fn::Or":
            return any(self._truth(a) for a in arg)
        if key == "Condition":
            return self.condition(arg)
        raise TemplateError(f"unsupported condition function {key}")

    def _functions(self) -> dict[str, Callable[[Any], Any]]:
        return {"Ref": self._ref, "Fn::GetAtt": self._att, "Fn::Sub": self._sub, "Fn::Join": self._join,
                "Fn::Select": self._select, "Fn::Split": self._split, "Fn::If": self._if}

    def _if(self, arg: Any) -> Any:
        return self(arg[1] if self.condition(arg[0]) else arg[2])

    def _ref(self, name: Any) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name not in self._refs:
            raise TemplateError(f"cannot resolve Ref {name}")
        return self._refs[name]

    def _att(self, arg: Any) -> str:
        logical_id, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
        return self._get_att(logical_id, self(attribute))

    def _sub(self, arg: Any) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self(v) for k, v in arg[1].items()})

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(local[name])
            if "." in name:
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute)
            return self._ref(name)

        return _SUB_VAR.sub(one, text).replace("${!", "${")

    def _join(self, arg: Any) -> str:
        return str(arg[0]).join(str(v) for v in self(arg[1]))

    def _select(self, arg: Any) -> Any:
        return self(arg[1])[int(self(arg[0]))]

    def _split(self, arg: Any) -> list[str]:
        return str(self(arg[1])).split(arg[0])
