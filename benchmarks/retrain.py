"""`python -m benchmarks.retrain`: retraining from the last model's weights, and the promotion gate.

The data drifts; is a warm-started model as good as one trained from scratch on the new data,
for a fraction of the training, and does `--promote-if-better` publish it and refuse a worse one?

Writes two synthetic regression tables of `--rows` rows each, `old.csv` and `new.csv` (8 numeric
columns, 3 of them with about 1 % blanks, 2 categorical string columns, a nonlinear target `y`;
what moved between them: `generate`). Then runs `python -m training` four times, each a child
process of its own bounded by `--timeout`, in one work directory:

  parent  cold on old.csv                                      -> m/1
  cold    cold on new.csv, model `cold` (same seed, so the same split of new.csv)
  warm    --model-name m --warm-start m --promote-if-better on new.csv: expected published as
          m/2, m/1 (scored on new.csv's held-out rows) being the champion
  worse   --model-name m --promote-if-better --epochs 1 --learning-rate 1e-5 on new.csv (cold,
          barely trained): expected refused, exit status 3, nothing published, a report written

and holds the warm run to the targets: (i) test R2 at least the cold run's - 0.01; (ii) CPU
seconds of its fit phase at most a third of the cold run's; (iii) the gate promoted `warm` and
refused `worse` (exit 3, m still at versions 1 and 2, a report saying "refused"). The whole run's
CPU seconds are compared too, but not held to a target: a run's fixed costs (start-up and
imports, reading the CSV, statistics, baselines, export, measuring serving cost and feature
importance) are the same for a warm and a cold run, and are why that ratio is higher.
Exit status: 0 every target passed, 1 some target failed, 2 could not run (the data could not be
written, a run crashed, or the parent or the cold run ran out of time).
Arguments after `--` go to every `python -m training` run (after `--log-level warning`, so that
a `--log-level` there wins); `--warm-args` to the warm run only.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.options import CannotRun, add_run_files, positive_int
from benchmarks.process import stop_on_signals
from benchmarks.report import recorded_run
from benchmarks.training import (
    MB,
    METADATA_FILE,
    measure,
    render_columns,
    training_run_record,
)

logger = logging.getLogger("benchmarks.retrain")

REPO = Path(__file__).resolve().parent.parent
TARGET = "y"
NUMERIC = 8
WITH_BLANKS = (1, 4, 6)
"""Numeric columns with about `MISSING` of their cells empty."""
MISSING = 0.01
SEGMENTS = ("retail", "business", "student", "senior", "partner")
"""`partner` is new: the old data never has it."""
SEGMENT_P_OLD = (0.4, 0.3, 0.2, 0.1, 0.0)
SEGMENT_P_NEW = (0.25, 0.3, 0.27, 0.15, 0.03)
SEGMENT_EFFECT_OLD = (0.0, 0.8, -0.6, 1.2, 0.0)
SEGMENT_EFFECT_NEW = (0.0, 0.8, 0.3, 1.2, 1.5)
CHANNELS = ("web", "store", "phone")
CHANNEL_P = (0.5, 0.35, 0.15)
CHANNEL_EFFECT = (0.0, 0.5, -0.8)
NOISE = 0.3
DECIMALS = 4
OLD_FILE, NEW_FILE = "old.csv", "new.csv"
MODEL = "m"
"""The model retrained: parent m/1, then the warm candidate, then the worse one."""
COLD = "cold"
PARENT_ON_NEW = "parent on new"
WARM_FIT_BOUND = 1 / 3
R2_TOLERANCE = 0.01
NOT_PROMOTED = 3
"""`python -m training`'s exit status when the gate refused the candidate."""


# --- the data ------------------------------------------------------------------------------


def columns() -> list[str]:
    """The header, in file order."""
    return [*(f"x{i}" for i in range(NUMERIC)), "segment", "channel", TARGET]


def generate(rng: np.random.Generator, rows: int, *, drifted: bool) -> Any:
    """`rows` rows as a pyarrow table: x0..x7, `segment`, `channel` and the target `y`.

    y = a * 2 sin(1.5 x0) + 0.5 x1^2 + b * x2 x3 + log x4 + tanh(2 x6) + 0.03 (x5 - 50)
        + 0.4 x7 + segment offset + channel offset x (1 + 0.5 [x2 > 0]) + 0.3 noise,
    computed before the blanks (x1, x4, x6: about 1 % each) are made.

    `drifted` is the new data, a retraining scenario rather than another problem. Its features
    moved: x0's and x3's means shifted by half a standard deviation (0 -> 0.5), x1's spread
    x1.3, the segments' shares changed (retail 40 -> 25 %, student 20 -> 27 %, senior 10 ->
    15 %) and a segment the old data never had, `partner`, is 3 % of rows. Its relationship
    moved moderately: a 1 -> 1.25 (the sine +25 %), b 1 -> 0.75 (the product -25 %), and
    student's offset -0.6 -> +0.3 (`partner`'s is 1.5). The channels did not move.
    """
    import pyarrow as pa

    x = np.empty((rows, NUMERIC))
    shift = 0.5 if drifted else 0.0
    x[:, 0] = rng.normal(shift, 1.0, rows)
    x[:, 1] = rng.normal(0.0, 1.3 if drifted else 1.0, rows)
    x[:, 2] = rng.uniform(-2.0, 2.0, rows)
    x[:, 3] = rng.normal(shift, 1.0, rows)
    x[:, 4] = rng.lognormal(0.0, 0.5, rows)
    x[:, 5] = rng.normal(50.0, 10.0, rows)
    x[:, 6] = rng.standard_normal(rows)
    x[:, 7] = rng.exponential(1.0, rows)
    shares = SEGMENT_P_NEW if drifted else SEGMENT_P_OLD
    segment = rng.choice(len(SEGMENTS), size=rows, p=shares)
    channel = rng.choice(len(CHANNELS), size=rows, p=CHANNEL_P)
    offsets = np.asarray(SEGMENT_EFFECT_NEW if drifted else SEGMENT_EFFECT_OLD)
    y = (
        (1.25 if drifted else 1.0) * 2.0 * np.sin(1.5 * x[:, 0])
        + 0.5 * x[:, 1] ** 2
        + (0.75 if drifted else 1.0) * x[:, 2] * x[:, 3]
        + np.log(x[:, 4])
        + np.tanh(2.0 * x[:, 6])
        + 0.03 * (x[:, 5] - 50.0)
        + 0.4 * x[:, 7]
        + offsets[segment]
        + np.asarray(CHANNEL_EFFECT)[channel] * (1.0 + 0.5 * (x[:, 2] > 0))
        + NOISE * rng.standard_normal(rows)
    )
    blank = rng.random((rows, len(WITH_BLANKS))) < MISSING
    masks = {column: blank[:, k] for k, column in enumerate(WITH_BLANKS)}
    arrays = [pa.array(np.round(x[:, i], DECIMALS), mask=masks.get(i)) for i in range(NUMERIC)]
    arrays.append(pa.array(np.asarray(SEGMENTS, dtype=object)[segment], type=pa.string()))
    arrays.append(pa.array(np.asarray(CHANNELS, dtype=object)[channel], type=pa.string()))
    arrays.append(pa.array(np.round(y, DECIMALS)))
    return pa.Table.from_arrays(arrays, names=columns())


def prepare_data(work: Path, rows: int, seed: int) -> dict[str, Any]:
    """old.csv and new.csv in `work`, from `seed` (each from a stream of its own)."""
    import pyarrow.csv as pacsv

    started = time.monotonic()
    files: dict[str, Any] = {}
    for stream, (name, drifted) in enumerate(((OLD_FILE, False), (NEW_FILE, True))):
        path = work / name
        table = generate(np.random.default_rng([seed, stream]), rows, drifted=drifted)
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="none"))
        files[name.removesuffix(".csv")] = {"path": str(path), "bytes": path.stat().st_size}
    generation_s = round(time.monotonic() - started, 1)
    logger.info(
        "generated %s and %s, %d rows each, in %.1f s", OLD_FILE, NEW_FILE, rows, generation_s
    )
    return {"rows": rows, "seed": seed, "columns": columns(), "generation_s": generation_s, **files}


# --- the runs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    name: str
    description: str
    data: str
    """OLD_FILE or NEW_FILE."""
    model: str
    flags: tuple[str, ...] = ()
    """This run's own flags, after those every run gets."""
    gate: bool = False
    """Whether it goes through the promotion gate."""


RUNS = (
    Run("parent", f"cold on {OLD_FILE} -> {MODEL}/1", OLD_FILE, MODEL),
    Run("cold", f"cold on {NEW_FILE}, the comparison point", NEW_FILE, COLD),
    Run(
        "warm",
        f"warm from {MODEL}/1 on {NEW_FILE}, through the gate",
        NEW_FILE,
        MODEL,
        ("--warm-start", MODEL, "--promote-if-better"),
        gate=True,
    ),
    Run(
        "worse",
        f"cold, 1 epoch at learning rate 1e-5 on {NEW_FILE}, through the gate",
        NEW_FILE,
        MODEL,
        ("--promote-if-better", "--epochs", "1", "--learning-rate", "1e-5"),
        gate=True,
    ),
)


def training_argv(run: Run, work: Path, extra: list[str], warm_args: list[str]) -> list[str]:
    """`python -m training` for `run`: data, target, model; `--log-level warning`; the
    arguments after `--`; then the run's own flags (and `--warm-args` for the warm run)."""
    argv = [sys.executable, "-m", "training", "--data", str(work / run.data), "--target", TARGET]
    argv += ["--model-dir", str(work / "models"), "--model-name", run.model]
    argv += ["--log-level", "warning", *extra, *run.flags]
    return argv + (warm_args if run.name == "warm" else [])


def versions(work: Path, model: str) -> list[int]:
    """The published versions of `model`, in order."""
    root = work / "models" / model
    found = [p for p in root.glob("*") if p.name.isdigit() and (p / METADATA_FILE).is_file()]
    return sorted(int(p.name) for p in found)


def reports(work: Path) -> set[Path]:
    """The promotion gate's reports on new.csv for model `m` (written beside the data)."""
    return set(work.glob(f"{NEW_FILE}.promotion-{MODEL}-*.json"))


def bundle_figures(where: Path) -> dict[str, Any]:
    """What a published bundle says about itself: test R2, the run's cost, the epochs, and
    its promotion and parent records."""
    meta = json.loads((where / METADATA_FILE).read_text(encoding="utf-8"))
    cost = meta["cost"]["training"]
    training = meta["training"]
    phases = cost["phases"]
    return {
        "version_dir": str(where),
        "r2": float(meta["test"]["metrics"]["r2"]),
        "cpu_s": float(cost["cpu_seconds"]),
        "fit_cpu_s": float(phases["fit"]["cpu_seconds"]),
        "fit_wall_s": float(phases["fit"]["wall_seconds"]),
        "wall_s": float(cost["wall_seconds"]),
        "peak_rss_mb": float(cost["peak_rss_mb"]),
        "phases": phases,
        "epochs_run": int(training["epochs_run"]),
        "best_epoch": training.get("best_epoch"),
        "epochs": training.get("epochs"),
        "patience": training.get("patience"),
        "batch_size": training.get("batch_size"),
        "learning_rate": training.get("learning_rate"),
        "by_rule": training.get("by_rule"),
        "rows": meta.get("rows"),
        "promotion": meta.get("promotion"),
        "parent": meta.get("parent"),
    }


def published_dir(stdout_tail: list[str]) -> Path | None:
    """The version directory a run printed as its last line, if it is a bundle."""
    for line in reversed(stdout_tail):
        if line.strip():
            path = Path(line.strip())
            return path if (path / METADATA_FILE).is_file() else None
    return None


def _outcome(run: Run, measured: dict[str, Any], timeout: int) -> dict[str, Any]:
    """`figures` of the bundle a run published, or the `error` it failed with; nothing for a
    refusal by the gate (exit 3 of a run through it)."""
    status = measured["exit_status"]
    if measured["timed_out"]:
        return {"error": f"did not finish within --timeout {timeout} s"}
    if status == NOT_PROMOTED and run.gate:
        return {}
    if status != 0:
        return {"error": f"exited with status {status}"}
    where = published_dir(measured["stdout_tail"])
    if where is None:
        return {"error": "exited 0 but printed no bundle directory"}
    try:
        return {"figures": bundle_figures(where)}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"cannot read {where / METADATA_FILE}: {exc}"}


def _gate(work: Path, before: set[Path]) -> dict[str, Any]:
    """What a run through the gate left: the reports it wrote (and the last one's content) and
    the model's versions after it."""
    new = sorted(reports(work) - before)
    gate: dict[str, Any] = {"reports": [str(p) for p in new]}
    gate["versions_after"] = versions(work, MODEL)
    if new:
        try:
            gate["report"] = json.loads(new[-1].read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            gate["report_error"] = str(exc)
    return gate


def run_one(
    run: Run, work: Path, extra: list[str], warm_args: list[str], timeout: int
) -> dict[str, Any]:
    """Run one training process to its end or the timeout; its record, with `figures` when it
    published a bundle, `gate` for a run through the promotion gate, `error` if it failed."""
    argv = training_argv(run, work, extra, warm_args)
    before = reports(work)
    record: dict[str, Any] = {"description": run.description}
    record["run"] = measured = measure(argv, work, run.name, timeout)
    record |= _outcome(run, measured, timeout)
    if run.gate and not measured["timed_out"]:
        record["gate"] = _gate(work, before)
    if "error" in record:
        logger.error("%s: %s", run.name, record["error"])
        for line in measured["stderr_tail"][-10:]:
            logger.error("  %s | %s", run.name, line)
    elif "figures" in record:
        f = record["figures"]
        logger.info(
            "%s: R2 %.4f, %.1f CPU-s (fit %.1f), %.1f s wall, %d epochs -> %s",
            run.name,
            f["r2"],
            f["cpu_s"],
            f["fit_cpu_s"],
            f["wall_s"],
            f["epochs_run"],
            f["version_dir"],
        )
    else:
        logger.info("%s: exit status %s, nothing published", run.name, measured["exit_status"])
    return record


# --- the tables and the targets --------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):,.{digits}f}"


def _cost_row(label: str, f: dict[str, Any], r2: float | None, notes: list[str]) -> list[str]:
    return [
        label,
        _num(r2, 4),
        _num(f.get("cpu_s")),
        _num(f.get("fit_cpu_s")),
        _num(f.get("wall_s")),
        _num(f.get("peak_rss_mb"), 0),
        "-" if f.get("epochs_run") is None else str(f["epochs_run"]),
        "; ".join(notes),
    ]


def _run_notes(f: dict[str, Any]) -> list[str]:
    notes = []
    if f.get("epochs") is not None:
        notes.append(f"best epoch {f['best_epoch']} of at most {f['epochs']}")
    if f.get("learning_rate") is not None:
        notes.append(f"lr {float(f['learning_rate']):.2g}, patience {f.get('patience')}")
    return notes


def models_table(results: dict[str, dict[str, Any]]) -> str:
    """The parent scored on the new data, the cold and the warm run: test R2 and cost."""
    header = ["model", "test R2 (new)", "CPU-s run", "CPU-s fit", "wall s", "peak RSS MB"]
    header += ["epochs", "notes"]
    rows = []
    parent = results.get("parent", {}).get("figures") or {}
    warm = results.get("warm") or {}
    # The bundle's promotion record, or the gate's report when nothing was published.
    promotion = (warm.get("figures") or {}).get("promotion") or (
        (warm.get("gate") or {}).get("report") or {}
    )
    champion = promotion.get("champion") if promotion.get("champion_version") == 1 else None
    if parent:
        notes = [
            "R2: the champion's score in warm's gate",
            f"costs: its training on {OLD_FILE} (test R2 there {parent['r2']:.4f})",
        ]
        rows.append(_cost_row(f"{PARENT_ON_NEW} ({MODEL}/1)", parent, champion, notes))
    for name in ("cold", "warm"):
        r = results.get(name)
        if r is None:
            continue
        f = r.get("figures") or {}
        notes = [f"FAILED: {r['error']}"] if "error" in r else []
        if not f and "gate" in r and "error" not in r:
            notes.append("not published (refused)")
        label = name
        if f:
            where = Path(f["version_dir"])
            label += f" ({where.parent.name}/{where.name})"
        rows.append(_cost_row(label, f, f.get("r2"), notes + _run_notes(f)))
    return render_columns(header, rows)


def gate_table(results: dict[str, dict[str, Any]]) -> str:
    """What the gate decided for the warm and the worse candidate, with both scores."""
    header = ["gate run", "exit", "decision", "candidate R2", "champion R2", "champion"]
    header += ["margin", "rows", f"{MODEL} versions after", "report"]
    rows = []
    for name in ("warm", "worse"):
        r = results.get(name)
        if r is None:
            continue
        gate = r.get("gate") or {}
        report = gate.get("report") or {}
        status = r["run"]["exit_status"]
        rows.append(
            [
                name,
                "timeout" if status is None else str(status),
                str(report.get("decision", "-")),
                _num(report.get("candidate"), 4),
                _num(report.get("champion"), 4),
                "-" if report.get("champion_version") is None else f"v{report['champion_version']}",
                _num(report.get("margin"), 3),
                _num(report.get("rows"), 0),
                ",".join(map(str, gate.get("versions_after") or [])) or "-",
                Path(gate["reports"][-1]).name if gate.get("reports") else "-",
            ]
        )
    return render_columns(header, rows)


@dataclass(frozen=True)
class Target:
    """One target, its value against its bound, and the verdict."""

    label: str
    value: str
    bound: str
    verdict: Literal["PASS", "FAIL", "info"]
    why: str = ""


def _figures(results: dict[str, dict[str, Any]], name: str) -> dict[str, Any] | None:
    return (results.get(name) or {}).get("figures")


def targets(results: dict[str, dict[str, Any]]) -> list[Target]:
    """(i) warm test R2 against cold's, (ii) warm fit-phase CPU-s against cold's, the whole
    run's CPU-s (information only), (iii) the gate's two decisions."""
    warm, cold = _figures(results, "warm"), _figures(results, "cold")
    found: list[Target] = []
    r2_label = f"(i) test R2, warm - cold (>= -{R2_TOLERANCE:g})"
    fit_label = "(ii) fit-phase CPU-s, warm / cold"
    run_label = "whole-run CPU-s, warm / cold (not a target)"
    if warm is None or cold is None:
        why = "no warm bundle" if warm is None else "no cold bundle"
        found += [
            Target(r2_label, "-", f">= {-R2_TOLERANCE:g}", "FAIL", why),
            Target(fit_label, "-", f"<= {WARM_FIT_BOUND:.3f}", "FAIL", why),
            Target(run_label, "-", "-", "info", why),
        ]
    else:
        gap = warm["r2"] - cold["r2"]
        found.append(
            Target(
                r2_label,
                f"{gap:+.4f}",
                f">= {-R2_TOLERANCE:g}",
                "PASS" if gap >= -R2_TOLERANCE else "FAIL",
                f"{warm['r2']:.4f} vs {cold['r2']:.4f}",
            )
        )
        fit = warm["fit_cpu_s"] / cold["fit_cpu_s"]
        found.append(
            Target(
                fit_label,
                f"{fit:.3f}",
                f"<= {WARM_FIT_BOUND:.3f}",
                "PASS" if fit <= WARM_FIT_BOUND else "FAIL",
                f"{warm['fit_cpu_s']:.1f} vs {cold['fit_cpu_s']:.1f} CPU-s",
            )
        )
        whole = warm["cpu_s"] / cold["cpu_s"]
        found.append(
            Target(
                run_label,
                f"{whole:.3f}",
                "-",
                "info",
                f"{warm['cpu_s']:.1f} vs {cold['cpu_s']:.1f}",
            )
        )
    found.append(_gate_target(results))
    return found


def _gate_target(results: dict[str, dict[str, Any]]) -> Target:
    """(iii): warm promoted (exit 0, published as m/2 with a promotion record), worse refused
    (exit 3, nothing published, a report with decision "refused")."""
    label, bound = "(iii) gate: warm promoted, worse refused", "promoted, refused"
    problems = []
    warm, worse = results.get("warm") or {}, results.get("worse") or {}
    warm_gate = (warm.get("gate") or {}).get("report") or {}
    worse_gate = worse.get("gate") or {}
    f = warm.get("figures") or {}
    if (warm.get("run") or {}).get("exit_status") != 0:
        problems.append(f"warm exit {(warm.get('run') or {}).get('exit_status')}")
    if not f or Path(f["version_dir"]).name != "2" or not f.get("promotion"):
        problems.append(f"warm not published as {MODEL}/2 with a promotion record")
    if warm_gate.get("decision") != "promoted":
        problems.append(f"warm report says {warm_gate.get('decision')}")
    if (worse.get("run") or {}).get("exit_status") != NOT_PROMOTED:
        problems.append(f"worse exit {(worse.get('run') or {}).get('exit_status')}, not 3")
    if worse_gate.get("versions_after") != [1, 2]:
        problems.append(f"{MODEL} versions after worse: {worse_gate.get('versions_after')}")
    if (worse_gate.get("report") or {}).get("decision") != "refused":
        problems.append("worse: no report saying refused")
    decisions = [
        str(((r.get("gate") or {}).get("report") or {}).get("decision", "-")) for r in (warm, worse)
    ]
    value = ", ".join(decisions)
    return Target(label, value, bound, "FAIL" if problems else "PASS", "; ".join(problems))


def targets_table(found: list[Target]) -> str:
    header = ["target", "value", "bound", "verdict", "detail"]
    rows = [[t.label, t.value, t.bound, t.verdict, t.why] for t in found]
    return render_columns(header, rows)


def _phase_cpu(figures: dict[str, Any], phase: str) -> float:
    return float((figures["phases"].get(phase) or {}).get("cpu_seconds", 0.0))


def fixed_costs_note(results: dict[str, dict[str, Any]]) -> str:
    """Why the whole-run ratio is higher than the fit phase's: CPU-s outside the fit phase,
    with the evaluation phase (the baselines), which varies most from run to run."""
    warm, cold = _figures(results, "warm"), _figures(results, "cold")
    text = (
        "The whole-run CPU-s ratio is higher than the fit phase's because a run's fixed costs "
        "(start-up and imports, reading the CSV, statistics, baselines, export, measuring "
        "serving cost and feature importance) are the same for a warm and a cold run"
    )
    if warm is None or cold is None:
        return text + "."
    outside = {n: f["cpu_s"] - f["fit_cpu_s"] for n, f in (("warm", warm), ("cold", cold))}
    return (
        f"{text}: outside the fit phase, warm {outside['warm']:.1f} CPU-s (of which "
        f"{_phase_cpu(warm, 'promotion_gate'):.1f} scoring the champion for the gate, "
        f"{_phase_cpu(warm, 'evaluation'):.1f} evaluation and baselines) and cold "
        f"{outside['cold']:.1f} CPU-s ({_phase_cpu(cold, 'evaluation'):.1f} evaluation and "
        "baselines, which vary most from run to run on a busy machine)."
    )


def status_of(results: dict[str, dict[str, Any]], found: list[Target]) -> int:
    """2 if a run failed (the warm run or a refusal by the gate merely counting against the
    targets), else 1 if a target failed, else 0."""
    for name, r in results.items():
        if "error" not in r:
            continue
        if name == "warm" and r["run"]["timed_out"]:
            continue  # its targets fail
        return 2
    return 1 if any(t.verdict == "FAIL" for t in found) else 0


def run(args: argparse.Namespace, extra: list[str], work: Path, record: dict[str, Any]) -> int:
    """Generate the data, run the four trainings, report into `record`; the status."""
    models = work / "models"
    if models.exists():
        logger.info("removing %s from an earlier run", models)
        shutil.rmtree(models)
    for old in reports(work):
        old.unlink()
    try:
        record["data"] = data = prepare_data(work, args.rows, args.seed)
    except OSError as exc:
        raise CannotRun(f"cannot write the data: {exc}") from exc
    record["runs"] = results = {}
    warm_args = shlex.split(args.warm_args)
    for spec in RUNS:
        results[spec.name] = run_one(spec, work, extra, warm_args, args.timeout)
        if spec.name == "parent" and "figures" not in results[spec.name]:
            raise CannotRun("the parent run failed; nothing to retrain from")
    found = targets(results)
    record["targets"] = [asdict(t) for t in found]
    print(
        f"{args.rows:,} rows in each of {OLD_FILE} ({data['old']['bytes'] / MB:,.1f} MB) and "
        f"{NEW_FILE} ({data['new']['bytes'] / MB:,.1f} MB); MB are MiB; CPU-s and wall s are "
        "each run's own, from its metadata.json"
    )
    if extra or warm_args:
        print(
            f"arguments after --: {shlex.join(extra) or '-'}; --warm-args: {args.warm_args or '-'}"
        )
    print(models_table(results))
    print()
    print(gate_table(results))
    print()
    print(targets_table(found))
    print()
    print(fixed_costs_note(results))
    return status_of(results, found)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the arguments after `--` that go to every `python -m training` run."""
    argv = list(argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    p = argparse.ArgumentParser(
        prog="scripts/benchmark.sh retrain",
        description=(__doc__ or "").split("\n")[0],
        epilog="Arguments after `--` are passed to every `python -m training` run.",
    )
    p.add_argument(
        "--rows", type=positive_int, default=1_000_000, help="rows of each data set (1,000,000)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the data (0)")
    p.add_argument(
        "--warm-args",
        default="",
        metavar="ARGS",
        help='more arguments for the warm run only, last, e.g. "--epochs 2"',
    )
    add_run_files(
        p,
        workdir="keep the data, bundles, gate reports and logs here (the next run replaces them)",
        timeout=900,
        killed="seconds after which a training run is killed, per run",
    )
    return p.parse_args(argv), extra


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 passed, 1 a target failed, 2 could not run."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop_on_signals()
    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    clock = time.monotonic()
    record = training_run_record(args, extra, started, {"timeout_s": args.timeout})
    return recorded_run(
        args,
        record,
        lambda work: run(args, extra, work, record),
        title="retraining benchmark",
        prefix="retrain",
        started=started,
        clock=clock,
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        logging.getLogger("benchmarks.retrain").warning("interrupted; training stopped")
        sys.exit(130)
