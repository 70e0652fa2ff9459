"""A chart as the dashboard shows it: labels, named series, and their table and CSV forms."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Series:
    name: str
    values: list[float]


@dataclass(frozen=True)
class Chart:
    """One chart: `kind` is Chart.js's type; every series has one value per label."""

    id: str
    title: str
    kind: str  # "line" | "bar"
    labels: list[str]
    series: list[Series]
    unit: str = ""
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "unit": self.unit,
            "labels": self.labels,
            "series": [{"name": s.name, "values": s.values} for s in self.series],
        }

    def rows(self) -> list[list[Any]]:
        """The table view: one row per label, one column per series."""
        return [[label, *(s.values[i] for s in self.series)] for i, label in enumerate(self.labels)]

    def header(self) -> list[str]:
        return ["label", *(s.name for s in self.series)]

    def totals(self) -> list[float]:
        return [round(sum(s.values), 6) for s in self.series]

    def as_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.header())
        for row in self.rows():
            # A leading =, +, - or @ makes spreadsheets run the cell as a formula.
            writer.writerow([_safe_cell(cell) for cell in row])
        return out.getvalue()


def _safe_cell(cell: Any) -> Any:
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@"):
        return "'" + cell
    return cell
