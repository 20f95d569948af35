"""README.md: its table of contents and links resolve, and what it says of the template's alarms holds."""

from __future__ import annotations

import re
from pathlib import Path

from localrun.sam_template import load_template

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_every_internal_link_names_a_heading() -> None:
    in_code = False
    anchors = set()
    for line in README.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(_slug(line.lstrip("#")))
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links and links <= anchors, sorted(links - anchors)


def test_alarms_match_the_template() -> None:
    resources = load_template(ROOT / "template.yaml")["Resources"]
    alarms = sorted(name for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm")
    assert f"{len(alarms)} alarms" in README
    assert f"({len(alarms)} standard)" in README  # the Cost table counts them too
    missing = [name for name in alarms if f"`{name}`" not in README]
    assert not missing, missing
