"""What the template tests share: template.yaml as SAM has it and as CloudFormation sees it after the transform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localrun.aws import translate
from localrun.sam_template import load_template, parameter_values

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
CMK = {"Ref": "EncryptionKey"}


def sam_template() -> dict[str, Any]:
    return load_template(TEMPLATE_PATH)


def transformed(sam: dict[str, Any], **overrides: str) -> dict[str, Any]:
    """The template after the SAM transform, for a Munchkin ID and any other parameter overrides."""
    return translate(sam, parameter_values(sam, {"MarketoMunchkinId": "123-ABC-456", **overrides}), "eu-north-1")


def props(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    result: dict[str, Any] = template["Resources"][logical_id]["Properties"]
    return result
