"""The printed table and ratios, and the JSON record of a run."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.catalog import SERVICES
from benchmarks.options import CannotRun, run_files
from benchmarks.summary import Target


def _num(value: float | None, digits: int = 0, valid: bool = True) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}" + ("" if valid else "!")


def _ms(value: float | None, valid: bool = True) -> str:
    if value is None:
        return "-"
    text = f"{value:.2f}" if value < 100 else f"{value:,.0f}"
    return text + ("" if valid else "!")


def _render(header: list[str], rows: list[list[str]]) -> str:
    """Left-aligned first column, right-aligned others, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def figures_table(
    summaries: dict[str, Any],
    concurrencies: list[int],
    batch_rows: int,
    batch_c: int,
    seconds: int,
) -> str:
    """One row per server: readiness, memory, single-row and batch throughput and latency; a
    server also measured over gRPC gets a second row, `<name> gRPC`."""
    header = ["server", "ready s", "RSS MB"]
    for c in concurrencies:
        header += [f"c{c} req/s", f"c{c} p50 ms", f"c{c} p99 ms"]
    header += [f"{batch_rows}r c{batch_c} req/s", "rows/s", f"{batch_rows}r p50 ms", "notes"]
    rows = []
    for name, s in summaries.items():
        rows.append(
            [
                name,
                _num(s["ready_s"], 2),
                _num(s["rss_mb"], 0),
                *_load_cells(s, concurrencies),
                _notes(s, seconds),
            ]
        )
        if s.get("grpc"):
            cells = _load_cells(s["grpc"], concurrencies)
            rows.append([f"{name} gRPC", "", "", *cells, _grpc_notes(s["grpc"], seconds)])
    return _render(header, rows)


def _load_cells(s: dict[str, Any], concurrencies: list[int]) -> list[str]:
    """Requests/s, p50 and p99 of each single-row load; requests/s, rows/s, p50 of the large."""
    cells = []
    for c in concurrencies:
        m = s["single"].get(str(c)) or {}
        ok = m.get("valid", True)
        cells += [
            _num(m.get("requests_per_s"), 0, ok),
            _ms(m.get("latency_p50_ms"), ok),
            _ms(m.get("latency_p99_ms"), ok),
        ]
    b = s["batch"] or {}
    ok = b.get("valid", True)
    return [
        *cells,
        _num(b.get("requests_per_s"), 1, ok),
        _num(b.get("rows_per_s"), 0, ok),
        _ms(b.get("latency_p50_ms"), ok),
    ]


def _window_notes(loads: list[dict[str, Any] | None], seconds: int) -> list[str]:
    windows = [m["longest_window_s"] for m in loads if m]
    if windows and max(windows) > seconds + 1:
        return [f"slow: windows up to {max(windows):.0f} s"]
    return []


def _error_notes(loads: list[dict[str, Any] | None]) -> list[str]:
    errors = sum((m or {}).get("non_2xx", 0) + (m or {}).get("socket_errors", 0) for m in loads)
    return [f"{errors} errors"] if errors else []


def _grpc_notes(g: dict[str, Any], seconds: int) -> str:
    """The gRPC row's: what it sends, bad answers, windows, errors, and the most CPU the load
    generator used (near 1, it was the limit, not the server)."""
    loads = [*g["single"].values(), g["batch"]]
    notes = ["v2 ModelInfer, raw FP32", *_window_notes(loads, seconds)]
    if not g["checks_ok"]:
        notes.append("bad answers")
    notes += _error_notes(loads)
    shares = [m["client_cpu_share"] for m in loads if m and m.get("client_cpu_share") is not None]
    if shares:
        notes.append(f"load generator up to {max(shares):.2f} CPU")
    return ", ".join(notes)


def _notes(s: dict[str, Any], seconds: int) -> str:
    loads = [*s["single"].values(), s["batch"]]
    notes = [f"runtime {r}" for r in s["runtimes"]]
    notes += _window_notes(loads, seconds)
    if s["failed_rounds"]:
        notes.append(f"{s['failed_rounds']}/{s['rounds']} rounds failed")
    if not s["checks_ok"]:
        notes.append("bad answers")
    notes += _error_notes(loads)
    log = s.get("payload_log")
    if log:
        dropped = "unread" if log["dropped"] is None else f"{log['dropped']:,}"
        read = "" if log["complete"] else f" ({log['rounds_read']}/{s['rounds']} rounds read)"
        notes.append(f"dropped {dropped}{read}")
    return ", ".join(notes)


def _sig(value: float | None, valid: bool = True) -> str:
    """Three significant digits, never in exponent notation (CPU-s per 1,000 rows span 1e-4..1)."""
    if value is None:
        return "-"
    digits = max(0, 2 - math.floor(math.log10(abs(value)))) if value else 0
    return f"{value:,.{digits}f}" + ("" if valid else "!")


def cost_table(
    summaries: dict[str, Any], concurrencies: list[int], batch_rows: int, batch_c: int
) -> str:
    """One row per server (and per server's gRPC loads): CPU-seconds per 1,000 rows on each
    load, as the service says on /metrics (self; services only) and from /proc over the rows
    the load generator got answered (os), and self / os."""
    labels = [*(f"c{c}" for c in concurrencies), f"{batch_rows}r c{batch_c}"]
    header = ["server"]
    for label in labels:
        header += [f"{label} CPU-s/1k (self)", f"{label} CPU-s/1k (os)", f"{label} self/os"]
    header.append("notes")
    rows = []
    for name, s in summaries.items():
        rows.append(_cost_row(name, s, concurrencies))
        if s.get("grpc"):
            rows.append(_cost_row(f"{name} gRPC", s["grpc"], concurrencies))
    return _render(header, rows)


def _cost_row(name: str, s: dict[str, Any], concurrencies: list[int]) -> list[str]:
    row, notes = [name], set()
    for load in [*(s["single"].get(str(c)) for c in concurrencies), s["batch"]]:
        m = load or {}
        cost, ok = m.get("cost") or {}, m.get("valid", True)
        row += [
            _sig(cost.get("self_per_1000"), ok),
            _sig(cost.get("os_per_1000"), ok),
            _sig(cost.get("self_over_os")),
        ]
        if cost.get("self_covers_run") is False:
            notes.add("self spans more than the run")
        if cost.get("self_errors"):
            notes.add("/metrics unread")
    return [*row, ", ".join(sorted(notes))]


def grpc_table(name: str, ratios: list[dict[str, Any]]) -> str:
    """`name` over gRPC against itself over REST (`summary.grpc_ratios`): the medians, their
    ratio, each round's ratio, and the target where there is one."""
    header = [f"{name}: gRPC / REST", "REST", "gRPC", "gRPC / REST", "per round", "target"]
    rows = [
        [
            r["load"],
            _num(r["rest"]),
            _num(r["grpc"]),
            _ratio(r["ratio"]) + ("" if r["valid"] else "!"),
            ", ".join(f"{v:.3g}" for v in r["per_round"]) or "-",
            r["target"] or "-",
            r["verdict"] or "-",
        ]
        for r in ratios
    ]
    return _render([*header, "verdict"], rows)


def paired_table(paired: dict[str, Any]) -> str:
    """The side-by-side windows (`benchmarks.paired`): each server's median requests/s, and
    each comparison's median ratio with every cycle's."""
    c = paired["connections"]
    header = [f"side by side, 1 row c{c}", "req/s (median)", "over", "ratio", "per cycle"]
    found = paired.get("comparisons") or {}
    rows = []
    for name, windows in paired["windows"].items():
        rates = [w["requests_per_s"] for w in windows]
        comparison = found.get(name)
        rows.append(
            [
                name,
                _num(statistics.median(rates) if rates else None),
                comparison["reference"] if comparison else "-",
                _ratio(comparison["ratio"]) + ("" if comparison["valid"] else "!")
                if comparison
                else "-",
                ", ".join(f"{v:.3g}" for v in comparison["per_cycle"]) if comparison else "-",
            ]
        )
    table = _render(header, rows)
    note = (
        f"{paired['cycles']} windows of {paired['seconds']} s per server, the servers running "
        "at once and measured in turn, the order reversed every cycle"
    )
    if paired.get("error"):
        note += f"; stopped early: {paired['error']}"
    return f"{table}\n{note}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _bound(t: Target) -> str:
    if t.op == "within" and t.upper is not None:
        return f"{t.bound:.3g}..{t.upper:.3g}"
    return f"{t.op if t.op in ('>=', '==') else '<'} {t.bound:.3g}"


def targets_table(targets: list[Target]) -> str:
    """Each ratio for both services, the target, and the LiteRT service's verdict; then the
    targets of other contenders (the service's defaults, the request log), one value each."""
    header = ["ratio", *SERVICES, "target", f"verdict ({SERVICES[0]})"]
    rows = [
        [
            t.label,
            *(_ratio(t.values.get(s)) for s in SERVICES),
            _bound(t),
            t.verdict,
        ]
        for t in targets
        if t.subject == SERVICES[0]
    ]
    table = _render(header, rows)
    others = [t for t in targets if t.subject != SERVICES[0]]
    if not others:
        return table
    rows = [
        [t.label, t.subject, _value(t, t.values.get(t.subject)), _bound(t), t.verdict]
        for t in others
    ]
    return table + "\n\n" + _render(["figure", "server", "value", "target", "verdict"], rows)


def _value(t: Target, value: float | None) -> str:
    """A count (op "==") as an integer, a ratio to three significant digits."""
    if value is None or t.op != "==":
        return _ratio(value)
    return f"{value:,.0f}"


def write_json(
    record: dict[str, Any],
    directory: Path,
    stamp: str,
    prefix: str = "benchmark",
    latest_name: str = "latest.json",
) -> list[Path]:
    """`<latest_name>` and `<prefix>-<UTC stamp>.json` in `directory`, same content."""
    directory.mkdir(parents=True, exist_ok=True)
    stamped = directory / f"{prefix}-{stamp}.json"
    stamped.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    latest = directory / latest_name
    shutil.copyfile(stamped, latest)
    return [latest, stamped]


def arguments_record(args: argparse.Namespace) -> dict[str, Any]:
    """The command line's values as JSON takes them (paths as text), for a run's record."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def recorded_run(
    args: argparse.Namespace,
    record: dict[str, Any],
    body: Callable[[Path], int],
    *,
    title: str,
    prefix: str,
    started: datetime,
    clock: float,
) -> int:
    """`body(work)` in the run's files (`run_files`) for its exit status, or 2 when it cannot
    run (`CannotRun`, logged and recorded); then `finish_record`."""
    try:
        with run_files(args, f"tabserve-{prefix}-") as work:
            status = body(work)
    except CannotRun as exc:
        logging.getLogger(f"benchmarks.{prefix}").critical("could not run the %s: %s", title, exc)
        record["error"] = str(exc)
        status = 2
    return finish_record(
        record, args.results, started=started, clock=clock, status=status, prefix=prefix
    )


def finish_record(
    record: dict[str, Any],
    directory: Path,
    *,
    started: datetime,
    clock: float,
    status: int,
    prefix: str,
) -> int:
    """Close a run's record (end time, elapsed, exit status), write it as `<prefix>-latest.json`
    and a stamped copy, log where, and return `status`."""
    record["finished_at"] = datetime.now(UTC).isoformat()
    record["elapsed_s"] = round(time.monotonic() - clock, 1)
    record["exit_status"] = status
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    paths = write_json(record, directory, stamp, prefix=prefix, latest_name=f"{prefix}-latest.json")
    logging.getLogger(f"benchmarks.{prefix}").info(
        "wrote %s", ", ".join(os.path.relpath(p) for p in paths)
    )
    return status
