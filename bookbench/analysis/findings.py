"""Index findings from a run folder: size, scans during the load, unused and redundant indexes, write cost and
HOT updates; the evidence for judging each index of a set on measurements rather than on its name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import run_files
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.manifest import Manifest


def _scans(path: Path) -> dict[str, int]:
    if not path.exists():
        return {}
    return {r["index"]: int(r["idx_scan"] or 0) for r in run_files.read_rows(path)}


def scans_during_load(run_dir: Path, manifest: Manifest) -> dict[str, int]:
    """idx_scan after the last scenario minus before the first (checks and warm-up excluded)."""
    folder = RunFolder(run_dir)
    before = _scans(folder.index_stats("before"))
    last = [n for n, e in manifest.scenarios.items() if e.counts]
    after = _scans(folder.index_stats(last[-1])) if last else {}
    return {name: after[name] - before.get(name, 0) for name in after}


def _redundancy(idx: dict[str, Any], everything: list[dict[str, Any]]) -> str | None:
    """Why an index adds nothing a reader would miss: it repeats another index's keys, or is its left prefix."""
    keys = list(idx["keys"])
    if not keys or len(keys) != idx.get("key_count", len(keys)):
        return None  # an expression key: its columns are not comparable by name, so claim nothing
    for other in everything:
        if other["name"] == idx["name"] or other["tbl"] != idx["tbl"]:
            continue
        other_keys = list(other["keys"])
        same_scope = idx["predicate"] is None or idx["predicate"] == other["predicate"]
        if not same_scope or (other["predicate"] is not None and idx["predicate"] is None):
            continue
        kind = "primary key" if other["is_primary"] else ("constraint" if other["is_constraint"] else "index")
        if other_keys == keys:
            if not other["is_constraint"] and other["name"] > idx["name"]:
                continue  # of two identical indexes, flag only one
            return f"duplicates {kind} {other['name']} ({', '.join(keys)})"
        if other_keys[: len(keys)] == keys:
            return f"left prefix of {kind} {other['name']} ({', '.join(other_keys)})"
    return None


def _queries_using(name: str, queries: dict[str, Any]) -> list[str]:
    return sorted(q for q, s in queries.items() if name in s.get("indexes", []) or
                  name in s.get("prepared", {}).get("indexes", []))


def index_findings(run_dir: Path) -> dict[str, Any]:
    manifest = manifest_file.read(run_dir)
    everything = manifest.index_set.all_indexes or []
    scans = scans_during_load(run_dir, manifest)
    queries = manifest.queries or {}
    rows = []
    for idx in everything:
        if idx["is_constraint"]:
            continue
        used = scans.get(idx["name"])
        redundant = _redundancy(idx, everything)
        serves = _queries_using(idx["name"], queries)
        if redundant:
            judgement = "redundant"
        elif used == 0:
            judgement = "unused during the load"
        elif serves:
            judgement = "earns its keep"
        else:
            judgement = "used, but by no measured statement's plan"
        rows.append({"name": idx["name"], "table": idx["tbl"], "keys": idx["keys"], "predicate": idx["predicate"],
                     "size_bytes": idx["size_bytes"], "scans_during_load": used, "redundant": redundant,
                     "serves": serves, "judgement": judgement})
    stats = manifest.table_stats or {}
    before, after = stats.get("before", {}), stats.get("after", {})
    updates = after.get("n_tup_upd", 0) - before.get("n_tup_upd", 0)
    hot = after.get("n_tup_hot_upd", 0) - before.get("n_tup_hot_upd", 0)
    return {
        "index_set": manifest.index_set.name, "indexes": rows,
        "total_bytes": sum(r["size_bytes"] for r in rows),
        "write_cost": manifest.write_cost,
        "hot": {"updates": updates, "hot_updates": hot, "hot_ratio": hot / updates if updates else None},
        "queries": {q: {"indexes": s["indexes"], "seq_scans": s["seq_scans"], "execution_ms": s["execution_ms"],
                        "generic": s["prepared"]["generic"], "prepared_indexes": s["prepared"]["indexes"]}
                    for q, s in queries.items()},
    }
