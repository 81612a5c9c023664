"""The suite's output: ratios to the engine, one-line progress rows and the Markdown table."""

from __future__ import annotations

import numpy as np


def add_ratios(rows, keys, reference=("engine",)):
    """ratio_to_engine = time / time of the first reference backend with the same kind and config."""
    for row in rows:
        ref = next(
            (
                r
                for name in reference
                for r in rows
                if r.get("backend") == name
                and r.get("kind") == row.get("kind")
                and all(r.get(k) == row.get(k) for k in keys)
                and r.get("median")
            ),
            None,
        )
        if ref is not None and row.get("median"):
            # min over repeats: the least disturbed run, as other jobs share the cores
            row["ratio_to_engine"] = (row.get("min") or row["median"]) / (ref.get("min") or ref["median"])


def fmt_row(row) -> str:
    t = row.get("median")
    shown = f"{t * 1e3:10.2f} ms" if isinstance(t, float) and row["section"] != "memory" else f"{t}"
    extra = {
        k: row[k]
        for k in (
            "point",
            "hvps",
            "hvps_to_1e-6",
            "relative_error",
            "lambda2_over_lambda1",
            "effective_bandwidth_GBs",
            "page_faults",
        )
        if k in row
    }
    cfg = {k: row[k] for k in ("qubits", "patches", "layers", "batch") if k in row}
    return f"[{row['section']}] {row['kind']:<18} {row['backend']:<22} {cfg} {shown} {row['status']} {extra}"


def markdown(rows, meta) -> str:
    lines = [
        f"Machine: {meta['machine']}; torch {meta['torch']}, threads={meta['threads']}, float64/complex128; "
        f"copy bandwidth {meta['copy_bandwidth_GBs']:.1f} GB/s. Times in ms; ratios use the min over repeats.",
        "",
    ]
    if meta.get("note"):
        lines[-1:-1] = ["", meta["note"]]
    lines += [
        "| section | kind | backend | q | N | L | B | median (ms) | min (ms) | x engine | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t = r.get("median")
        if r["section"] == "memory":
            shown = (f"{t:.1f} MiB" if isinstance(t, float) and np.isfinite(t) else "-") + " | "
        else:
            shown = f"{t * 1e3:.2f}" if isinstance(t, float) else "-"
            low = r.get("min")
            shown += f" | {low * 1e3:.2f}" if isinstance(low, float) else " | -"
        ratio = f"{r['ratio_to_engine']:.1f}" if "ratio_to_engine" in r else ""
        notes = [] if r["status"] == "ok" else [r["status"]]
        for key, label in (
            ("point", "at"),
            ("hvps", "HVPs"),
            ("hvps_to_1e-6", "HVPs to 1e-6"),
            ("relative_error", "rel.err"),
            ("lambda2_over_lambda1", "λ2/λ1"),
            ("effective_bandwidth_GBs", "GB/s"),
            ("fraction_of_copy_bandwidth", "of copy bw"),
        ):
            if key in r:
                val = r[key]
                notes.append(f"{label} {val:.3g}" if isinstance(val, float) else f"{label} {val}")
        lines.append(
            f"| {r['section']} | {r['kind']} | {r['backend']} | {r.get('qubits', '')} | "
            f"{r.get('patches', '')} | {r.get('layers', '')} | {r.get('batch', '')} | {shown} | {ratio} | "
            f"{'; '.join(notes)} |"
        )
    return "\n".join(lines) + "\n"
