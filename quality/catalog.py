"""The rule catalog (rules.yaml): every quality rule's id, layer, severity and description, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

CATALOG_PATH = Path(__file__).resolve().parent / "rules.yaml"


@dataclass(frozen=True)
class Rule:
    id: str
    layer: str
    severity: str  # error (blocks publishing) | warn
    kind: str
    description: str

    @property
    def blocking(self) -> bool:
        return self.severity == "error"


@cache
def rules() -> dict[str, Rule]:
    raw = yaml.safe_load(CATALOG_PATH.read_text(encoding="utf-8"))["rules"]
    return {r["id"]: Rule(**r) for r in raw}


def gate_rules() -> list[Rule]:
    """The rules run on a one-map build before publishing."""
    return [r for r in rules().values() if r.layer == "one_map"]
