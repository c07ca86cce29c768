"""The machine-readable report: the figure set itself, with the catalogue's definitions beside each figure."""

from __future__ import annotations

import json

from safehold.transparency.figures import FigureSet
from safehold.transparency.formats import ReportContext


class JsonFormat:
    name = "json"
    title = "Figures as JSON (every figure, its definition and its rows)"
    media_type = "application/json"
    extension = "json"

    def render(self, figures: FigureSet, context: ReportContext) -> bytes:
        doc = figures.record()
        for key, f in doc["figures"].items():
            spec = figures[key].spec
            f.update(title=spec.title, counts=spec.counts, unit=spec.unit, records=spec.records)
        doc["provider"], doc["service"] = context.provider, context.service
        doc["generated_at"] = context.generated_at.isoformat()
        doc["small_cells"] = f"counts from 1 to {context.min_cell - 1} are shown as <{context.min_cell}"
        return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
