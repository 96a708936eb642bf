"""The outcome of one rule on one build, as gates, the report, the publish log and Dagster checks see it."""

from __future__ import annotations

from dataclasses import dataclass, field

from quality.catalog import Rule


@dataclass
class RuleResult:
    rule: Rule
    failing: int
    samples: list[dict] = field(default_factory=list)  # up to 20 failing rows (ids and a detail)
    locations: list[tuple[float, float]] = field(default_factory=list)  # lon/lat of failures, for the map
    note: str = ""

    @property
    def passed(self) -> bool:
        return self.failing == 0

    @property
    def blocks(self) -> bool:
        return self.rule.blocking and not self.passed

    def summary(self) -> str:
        ids = ", ".join(str(next(iter(s.values()))) for s in self.samples[:5])
        return (f"{self.rule.id} ({self.rule.severity}): {self.failing} failing" + (f"; e.g. {ids}" if ids else "")
                + (f" — {self.note}" if self.note else ""))

    def as_log(self) -> dict:
        return {"rule": self.rule.id, "severity": self.rule.severity, "passed": self.passed,
                "failing": self.failing, "samples": self.samples[:5]}

