"""What a health probe found: each dependency's state."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class HealthReport:
    """Each dependency's state: "UP", or "DOWN: <why>"."""

    checks: dict[str, str] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        return all(state == "UP" for state in self.checks.values())

    @property
    def down(self) -> list[str]:
        return sorted(name for name, state in self.checks.items() if state != "UP")

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"status": "UP" if self.up else "DOWN", "checks": self.checks}
        if not self.up:
            body["down"] = self.down
        return body
