"""A dataset run's summary, rebuilt from its records: predictions.jsonl, summary.json, per_class.csv, charts.

Rebuilt from every record in the folder (not from one call's videos), so a kill at any moment loses nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from pathlib import Path

from i3d.files import atomic_path
from i3d.inputs.dataset_items import Dataset
from i3d.tasks.batch.charts import draw_charts
from i3d.tasks.batch.metrics import accuracy
from i3d.tasks.batch.records import read_record, write_json


def summarise(dataset: Dataset, out: Path, categories: tuple[str, ...], labels: dict[str, int | None],
              settings: dict) -> dict:
    """Rebuild predictions.jsonl, summary.json and per_class.csv from the records in ``out``; returns the summary."""
    records = [r for r in (read_record(out, item.key, len(categories)) for item in dataset.items) if r is not None]
    ok = [r for r in records if r["status"] == "ok"]
    scored = [r for r in ok if r.get("label_index") is not None]
    counts = accuracy([r["label_index"] for r in scored], [[p["index"] for p in r["top"]] for r in scored])
    confused = Counter((categories[r["label_index"]], r["top"][0]["label"]) for r in scored
                       if r["top"][0]["index"] != r["label_index"])
    unmapped = sorted(label for label, index in labels.items() if index is None)
    summary = {
        "videos": len(dataset.items) + len(dataset.missing), "evaluated": len(records), "ok": len(ok),
        "failed": len(records) - len(ok), "missing": len(dataset.missing),
        "not_run": len(dataset.items) - len(records),
        "labelled": len(scored),
        "top1": counts.top1,
        "top5": counts.top5,
        "mean_class_accuracy": counts.mean_class_accuracy,
        "classes": len(counts.per_class),
        "unmapped_labels": unmapped,
        "unmapped_videos": sum(1 for r in ok if r.get("label") is not None and r.get("label_index") is None),
        "missing_videos": [str(item.path) for item in dataset.missing],
        "failed_videos": [{"path": r["path"], "error": r["error"]} for r in records if r["status"] != "ok"],
        "most_confused": [{"label": a, "predicted": b, "videos": n} for (a, b), n in confused.most_common(10)],
        "settings": settings,
    }
    with atomic_path(out / "predictions.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    write_json(out / "summary.json", summary)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["class_index", "class", "videos", "top1", "top5"])
    for index, (n, top1, top5) in counts.per_class.items():
        writer.writerow([index, categories[index], n, f"{top1 / n:.4f}", f"{top5 / n:.4f}"])
    with atomic_path(out / "per_class.csv") as tmp:
        tmp.write_text(buffer.getvalue())
    draw_charts(out, [r["label_index"] for r in scored], [r["top"][0]["index"] for r in scored], categories,
                counts.rows(categories))
    return summary
