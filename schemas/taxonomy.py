"""FERV39k taxonomy loaded from ``taxonomy.yaml``: expressions, descriptors, scenarios, scenes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

TAXONOMY_FILE = Path(__file__).with_name("taxonomy.yaml")


@dataclass(frozen=True)
class Expression:
    name: str
    id: int
    dfew_id: int
    definition: str
    descriptors: tuple[str, ...]


@dataclass(frozen=True)
class Scene:
    name: str
    display: str
    scenario: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    code: str
    name: str
    scenes: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    version: str
    expressions: tuple[Expression, ...]
    scenarios: tuple[Scenario, ...]
    scenes: tuple[Scene, ...]
    pass_label: str
    reference: dict[str, Any]

    @property
    def expression_names(self) -> list[str]:
        """Expressions in id order (alphabetical)."""
        return [e.name for e in sorted(self.expressions, key=lambda e: e.id)]

    @property
    def dfew_order(self) -> list[str]:
        return [e.name for e in sorted(self.expressions, key=lambda e: e.dfew_id)]

    @property
    def scene_names(self) -> list[str]:
        return [s.name for s in self.scenes]

    def expression(self, name: str) -> Expression:
        for e in self.expressions:
            if e.name == name:
                return e
        raise KeyError(f"unknown expression {name!r}; expected one of {self.expression_names}")

    def scene(self, name: str) -> Scene:
        for s in self.scenes:
            if s.name == name:
                return s
        raise KeyError(f"unknown scene {name!r}; expected one of {self.scene_names}")

    def descriptor_to_expression(self) -> dict[str, str]:
        """Every descriptor word (and PASS) mapped to its expression (PASS to itself)."""
        mapping = {d: e.name for e in self.expressions for d in e.descriptors}
        mapping[self.pass_label] = self.pass_label
        return mapping

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "scenarios": [
                {"code": sc.code, "name": sc.name, "scenes": list(sc.scenes)} for sc in self.scenarios
            ],
            "scenes": [
                {"name": s.name, "display": s.display, "scenario": s.scenario, "keywords": list(s.keywords)}
                for s in self.scenes
            ],
            "expressions": [
                {"name": e.name, "id": e.id, "dfew_id": e.dfew_id, "definition": e.definition,
                 "descriptors": list(e.descriptors)}
                for e in sorted(self.expressions, key=lambda e: e.id)
            ],
            "descriptors": [
                {"name": d, "expression": e.name}
                for e in sorted(self.expressions, key=lambda e: e.id) for d in e.descriptors
            ],
            "pass_label": self.pass_label,
            "reference": self.reference,
        }


def _parse(raw: dict[str, Any]) -> Taxonomy:
    descriptors = raw["descriptors"]
    expressions = tuple(
        Expression(e["name"], int(e["id"]), int(e["dfew_id"]), e["definition"], tuple(descriptors[e["name"]]))
        for e in raw["expressions"]
    )
    scenarios, scenes = [], []
    for sc in raw["scenarios"]:
        names = []
        for s in sc["scenes"]:
            scenes.append(Scene(s["name"], s["display"], sc["code"], tuple(s["keywords"])))
            names.append(s["name"])
        scenarios.append(Scenario(sc["code"], sc["name"], tuple(names)))
    return Taxonomy(str(raw["version"]), expressions, tuple(scenarios), tuple(scenes), raw["pass_label"],
                    raw["reference"])


@cache
def load_taxonomy(path: Path = TAXONOMY_FILE) -> Taxonomy:
    """Load (once) and return the taxonomy."""
    with open(path, encoding="utf-8") as fh:
        return _parse(yaml.safe_load(fh))


TAXONOMY = load_taxonomy()
