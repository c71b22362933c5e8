"""`safra`: one command line, a subcommand per stage."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from commands import stack
from safra import logs as logsetup
from safra.private_files import use_private_umask
from safra.settings import get_settings

app = typer.Typer(help="Safra: MLOps for agribusiness credit scoring.", no_args_is_help=True)
stack_app = typer.Typer(help="The local stack: real services as local processes.")
app.add_typer(stack_app, name="stack")
console = Console()

#: what --since/--until accept: a date, a time (UTC when naive) or an ISO time with its offset
#: (as `safra drift --json` states its window, which the retraining DAG passes to `safra train`)
TIME_FORMATS = [
    "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z",
    "%Y-%m-%dT%H:%M:%S.%f%z",
]  # fmt: skip


@app.callback()
def main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="third-party output on the console too")
    ] = False,
) -> None:
    """Safra's own lines on the console; the rest (Spark/JVM, Feast, MLflow...) in a log file:
    ``<data dir>/logs/demo.log`` for the demo, ``safra.log`` for the other commands.

    Everything the command and the processes it starts create is private to the user (umask
    077): the data folder holds raw personal data and the services' secrets."""
    use_private_umask()
    command = ctx.invoked_subcommand
    log_file = None
    if command != "serve":  # the API in the foreground keeps its own output on the console
        log_file = get_settings().logs_dir / ("demo.log" if command == "demo" else "safra.log")
    # the demo's console is its progress display: its INFO lines go to the file only
    level = logging.WARNING if command == "demo" else logging.INFO
    console.file, restore = logsetup.configure(verbose, log_file, level)
    ctx.call_on_close(restore)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(1)


@stack_app.command("up")
def stack_up(
    services: Annotated[list[str] | None, typer.Argument(help="services (default: all)")] = None,
    with_: Annotated[
        str, typer.Option("--with", help="optional services too, comma-separated: api, airflow")
    ] = "",
) -> None:
    """Provision (first run) and start the services; idempotent, resumes after a crash."""
    s = get_settings()
    t0 = time.monotonic()
    try:
        with console.status("starting the local stack") as spinner:

            def step(name: str, what: str) -> None:
                if what == "starting":
                    spinner.update(
                        f"{name}: provisioning and starting (log: {s.logs_dir / (name + '.log')})"
                    )
                else:
                    console.print(f"  [green]✓[/] {name:<13} {what}")

            extra = [n.strip() for n in with_.split(",") if n.strip()]
            stack.up(s, services, on_step=step, extra=extra)
    except (stack.StackError, stack.ProvisionError, stack.JavaNotFound) as exc:
        _fail(exc)
    console.print(f"stack up in {time.monotonic() - t0:.1f} s; data in {s.data_dir}")
    _print_status()


@stack_app.command("down")
def stack_down(
    services: Annotated[list[str] | None, typer.Argument(help="services (default: all)")] = None,
) -> None:
    """Stop what the stack started, and nothing else."""
    try:
        stopped = stack.down(get_settings(), services)
    except stack.StackError as exc:
        _fail(exc)
    console.print(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def _print_status(as_json: bool = False) -> None:
    states = stack.status(get_settings())
    if as_json:
        console.print_json(json.dumps([vars(st) for st in states]))
        return
    table = Table("service", "state", "port", "pid", "memory", "url")
    for st in states:
        colour = {"running": "green", "starting": "yellow"}.get(st.state, "red")
        mem = f"{st.rss_bytes / 2**20:.0f} MiB" if st.rss_bytes else ""
        table.add_row(
            st.name, f"[{colour}]{st.state}[/]", str(st.port), str(st.pid or ""), mem, st.url
        )
    total = sum(st.rss_bytes for st in states)
    table.caption = f"total memory {total / 2**30:.2f} GiB"
    console.print(table)


@stack_app.command("status")
def stack_status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Each service's state, port, pid and memory."""
    _print_status(as_json)


@stack_app.command("logs")
def stack_logs(name: str, lines: Annotated[int, typer.Option("--lines", "-n")] = 50) -> None:
    """The last lines of one service's log."""
    try:
        console.print(stack.logs(get_settings(), name, lines), markup=False, highlight=False)
    except stack.StackError as exc:
        _fail(exc)


@stack_app.command("smoke")
def stack_smoke() -> None:
    """One real round trip through each service: Kafka, Iceberg (3 engines), MLflow, Redis."""
    from commands.stack.smoke import run_smoke

    def show(check) -> None:
        mark = "[green]✓[/]" if check.ok else "[red]✗[/]"
        console.print(f"  {mark} {check.name:<37} {check.detail} ({check.seconds:.1f} s)")

    console.print("smoke flow over the local stack:")
    checks = run_smoke(get_settings(), on_check=show)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


@app.command("env")
def env_file() -> None:
    """Create .env from .env.example with generated secrets (existing values are kept)."""

    from commands.envfile import write_env_file

    generated = write_env_file(Path(".env"), Path(".env.example"))
    console.print(f".env ready; generated: {', '.join(generated) or 'nothing (all set)'}")


@app.command("produce")
def produce_cmd(
    count: Annotated[int, typer.Option("--count", "-n", help="applications to send")] = 10_000,
    rate: Annotated[
        float | None, typer.Option(help="live mode: messages per second (default: backfill)")
    ] = None,
    scenario: Annotated[
        str, typer.Option(help="baseline | drought | bureau_recalibration | income_overstatement")
    ] = ("baseline"),
    seed: Annotated[int, typer.Option()] = 42,
    start: Annotated[str | None, typer.Option(help="backfill start, ISO date")] = None,
    end: Annotated[str | None, typer.Option(help="backfill end, ISO date")] = None,
    schema_version: Annotated[int, typer.Option(help="application writer schema")] = 2,
    duplicates: Annotated[int, typer.Option(help="re-send this many applications")] = 0,
    poison: Annotated[int, typer.Option(help="send this many undecodable messages")] = 0,
    no_outcomes: Annotated[bool, typer.Option("--no-outcomes")] = False,
    outcomes_until: Annotated[
        str | None, typer.Option(help="outcomes known up to this ISO date (default: --end)")
    ] = None,
) -> None:
    """Simulate credit applications (and their delayed outcomes) and send them to Kafka."""
    from datetime import UTC, datetime

    from rich.progress import MofNCompleteColumn, Progress, TimeElapsedColumn

    from pipelines.producer import ProduceError, produce

    def parse(day: str | None) -> datetime | None:
        return datetime.fromisoformat(day).replace(tzinfo=UTC) if day else None

    s = get_settings()
    try:
        with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar:  # fmt: skip
            # outcomes' number depends on the window: the bar knows the total only without them
            total = count + duplicates + poison if no_outcomes else None
            task = bar.add_task("producing", total=total)
            report = produce(
                s, count, seed, scenario, rate, parse(start), parse(end), schema_version,
                with_outcomes=not no_outcomes, duplicates=duplicates, poison=poison,
                progress=lambda sent: bar.update(task, completed=sent),
                outcomes_until=parse(outcomes_until),
            )  # fmt: skip
    except (ProduceError, ValueError) as exc:
        _fail(exc)
    console.print(
        f"sent {report.applications} applications (v{report.schema_version}) to "
        f"{report.topic_applications}, {report.outcomes} outcomes to {report.topic_outcomes}, "
        f"{report.duplicates} duplicates, {report.poison} poison; {report.delivered} delivered, "
        f"{report.failed} failed, {report.msgs_per_s:,.0f} msgs/s"
        + (" (interrupted)" if report.interrupted else "")
    )


@app.command("ingest")
def ingest_cmd(
    once: Annotated[bool, typer.Option("--once", help="drain what is in Kafka, then exit")] = False,
    trigger_s: Annotated[float | None, typer.Option(help="micro-batch interval (streaming)")] = (
        None
    ),
    topic: Annotated[
        list[str] | None,
        typer.Option(help="source (applications|outcomes|scored_requests)[=topic]; repeatable"),
    ] = None,
    namespace: Annotated[str, typer.Option(help="bronze namespace")] = "bronze",
    max_offsets_per_trigger: Annotated[int, typer.Option()] = 500_000,
) -> None:
    """Spark Structured Streaming from Kafka into the Iceberg bronze tables (exactly once)."""
    from pipelines.checkpoint_lock import CheckpointInUse
    from pipelines.ingest import run_ingest

    s = get_settings()
    console.print(
        f"ingesting from Kafka {s.kafka_bootstrap} into {s.iceberg_catalog}.{namespace}"
        + (" (draining, then exiting)" if once else " (streaming; Ctrl-C stops)")
    )
    try:
        report = run_ingest(s, once=once, trigger_s=trigger_s, topics=topic, namespace=namespace,
                            max_offsets_per_trigger=max_offsets_per_trigger)  # fmt: skip
    except CheckpointInUse as exc:
        _fail(exc)
    for table, rows in sorted(report.rows.items()):
        console.print(f"  {table:<40} +{rows:,} rows")
    console.print(f"{report.total:,} rows in {report.seconds:.1f} s; checkpoints in "
                  f"{s.checkpoints_dir / 'ingest'}")  # fmt: skip


@app.command("transform")
def transform_cmd(
    full_refresh: Annotated[bool, typer.Option("--full-refresh")] = False,
    layer: Annotated[list[str] | None, typer.Option(help="silver and/or gold (default both)")] = (
        None
    ),
) -> None:
    """bronze → silver → quality gate → gold → quality gate (dbt on Trino, Great Expectations)."""
    from pipelines.transform import LAYERS, TransformBusy, TransformFailed, run_transform

    s = get_settings()
    try:
        report = run_transform(s, full_refresh=full_refresh, select_layers=layer or LAYERS,
                               raise_on_failure=False)  # fmt: skip
    except (TransformFailed, TransformBusy, ValueError) as exc:
        _fail(exc)
    table = Table("layer", "model", "rows in", "rows out", "seconds")

    def count(n: int | None) -> str:
        return "" if n is None else f"{n:,}"

    for m in report.models:
        table.add_row(m.layer, m.model, count(m.rows_in), count(m.rows_out), f"{m.seconds:.1f}")
    console.print(table)
    console.print(f"dbt tests run: {report.tests_run}, failed: {len(report.test_failures)}")
    for name, gate in report.gates.items():
        mark = "[green]passed[/]" if gate.passed else "[red]FAILED[/]"
        console.print(f"{name} gate {mark}: report {gate.report_path}")
        for failure in gate.critical_failures:
            console.print(f"  [red]✗[/] {failure}")
        for warning in gate.warnings:
            console.print(f"  [yellow]![/] {warning}")
    for failure in report.test_failures:
        console.print(f"  [red]✗[/] dbt: {failure}")
    for done, snapshots in report.published.items():
        console.print(f"{done} published: " + ", ".join(f"{t}@{i}" for t, i in snapshots.items()))
    for failed, tables in report.quarantined.items():
        for q in tables:
            if q.tag:
                console.print(f"[red]{failed}: {q.table}'s batch quarantined as tag '{q.tag}'[/] "
                              f"(read it FOR VERSION AS OF '{q.tag}'); main rolled back to "
                              f"{q.rolled_back_to or 'empty'}")  # fmt: skip
    if not report.passed:
        console.print(f"[bold red]stopped at {report.stopped_at}:[/] {report.reason}")
        raise typer.Exit(1)
    console.print(f"transform done in {report.seconds:.1f} s")


def _print_erasure(report: Any, as_json: bool) -> None:  # pipelines.erasure.ErasureReport
    summary = report.as_dict()
    if as_json:
        typer.echo(json.dumps(summary, indent=2), file=console.file)
        return
    table = Table("table", "rows", "refs moved", "refs removed", "snapshots expired")
    for t in report.tables:
        table.add_row(t.table, f"{t.rows:,}", ", ".join(t.refs_moved) or "-",
                      ", ".join(t.refs_removed) or "-", str(t.snapshots_expired))  # fmt: skip
    console.print(table)
    if report.action == "forget":
        console.print(f"online store: {report.redis_keys_deleted} Redis keys deleted")
    console.print(f"{report.rows:,} rows; audit record {report.request_id}")


@app.command("forget")
def forget_cmd(
    cpf: Annotated[
        str | None,
        typer.Option(
            help="the person's CPF/CNPJ, punctuated or not; '-' reads it from stdin "
            "(keeps it off the command line and the shell history)"
        ),
    ] = None,
    proponente_id: Annotated[str | None, typer.Option(help="the applicant's id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON report only")] = False,
) -> None:
    """Erase one person from bronze, silver, gold, their snapshots and the online store.

    Exit code 0 when erased, 3 when nobody matches (nothing changed), 1 on error.
    """
    import sys

    from pipelines.erasure import NOT_FOUND_EXIT, ErasureError, forget
    from pipelines.transform import TransformBusy

    if cpf == "-":
        cpf = sys.stdin.readline().strip()
    try:
        report = forget(get_settings(), cpf=cpf, proponente_id=proponente_id)
    except (ErasureError, TransformBusy, ValueError) as exc:
        _fail(exc)
    if not report.found:
        if as_json:
            _print_erasure(report, as_json)
        else:
            console.print("nobody matches: nothing was changed "
                          f"(audit record {report.request_id})")  # fmt: skip
        raise typer.Exit(NOT_FOUND_EXIT)
    _print_erasure(report, as_json)


@app.command("retention")
def retention_cmd(
    days: Annotated[
        int | None, typer.Option(help="age in days (default: SAFRA_RAW_RETENTION_DAYS)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON report only")] = False,
) -> None:
    """Null bronze's raw identity (CPF/CNPJ, name, land registry number, rejected raw bytes)
    of rows older than the retention; expire the snapshots that still hold it."""
    from pipelines.erasure import ErasureError, apply_retention
    from pipelines.transform import TransformBusy

    try:
        report = apply_retention(get_settings(), days)
    except (ErasureError, TransformBusy, ValueError) as exc:
        _fail(exc)
    _print_erasure(report, as_json)


@app.command("quality")
def quality_cmd(
    layer: Annotated[str, typer.Argument(help="bronze | silver | gold")],
    schema_prefix: Annotated[str | None, typer.Option(help="silver/gold schema prefix")] = None,
) -> None:
    """Run one layer's quality gate alone; exit 1 when a critical expectation fails."""
    from quality.gate import run_gate

    s = get_settings()
    prefix = s.schema_prefix if schema_prefix is None else schema_prefix
    result = run_gate(layer, s, prefix, s.bronze_schema)
    for failure in result.critical_failures:
        console.print(f"  [red]✗[/] {failure}")
    for warning in result.warnings:
        console.print(f"  [yellow]![/] {warning}")
    verdict = "[green]passed[/]" if result.passed else "[red]FAILED[/]"
    console.print(f"{layer} gate {verdict}; report {result.report_path}")
    if not result.passed:
        raise typer.Exit(1)


@app.command("drift")
def drift_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON summary only")] = False,
    source: Annotated[
        list[str] | None,
        typer.Option(help="applications | scored_requests (repeatable; default: both)"),
    ] = None,
    last: Annotated[
        int | None, typer.Option(help="newest rows per source (default: SAFRA_DRIFT_SAMPLE_ROWS)")
    ] = None,
    since: Annotated[
        datetime | None,
        typer.Option(help="only rows from this time on (UTC when naive)", formats=TIME_FORMATS),
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="default: SAFRA_MODEL_NAME")] = None,
) -> None:
    """Compare the champion's reference sample with recent data (Evidently); report and log it.

    Exit code 0 whether drift is found or not (read `drift` in the JSON); 1 when the check
    cannot run (no champion yet, no current data, a service down), with the cause.
    """
    import contextlib
    import sys

    from ml.drift import SOURCES, DriftError, check_drift

    # MLflow writes the run's URL to stdout: with --json, stdout carries the JSON alone.
    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            result = check_drift(
                get_settings(), sources=tuple(source or SOURCES), last=last, since=since,
                model_name=model_name,
            )  # fmt: skip
    except DriftError as exc:
        _fail(exc)
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2), file=console.file)
        return
    verdict = "[bold red]DRIFT[/]" if result.drift else "[green]no drift[/]"
    window = summary["window"]
    console.print(
        f"{verdict}: {summary['model_name']} v{summary['model_version']} "
        f"(threshold {summary['threshold']:.2f} of columns); current window: the newest "
        f"{window['newest_rows']:,} rows per source since {window['since'] or 'the beginning'}"
    )
    table = Table(
        "source", "rows (ref/cur)", "drifted share", "drifted columns", "segments", "report"
    )
    for name, s in summary["sources"].items():
        segments = s.get("segments") or {}
        table.add_row(
            name,
            f"{s['rows_reference']:,}/{s['rows_current']:,}",
            f"{s['drifted_share']:.3f}",
            ", ".join(s["drifted_columns"]) or "-",
            f"{len(segments.get('drifted', []))} drifted of {segments.get('judged', 0)} judged "
            f"({len(segments.get('not_judged', []))} too small)",
            s["report_path"],
        )
    console.print(table)
    for name, s in summary["sources"].items():
        for seg in (s.get("segments") or {}).get("drifted", [])[:12]:
            shifts = ", ".join(f"{c['column']} {c['distance']:.2f}" for c in seg["columns"])
            console.print(
                f"  [red]drifted[/] {name} {seg['segment']} "
                f"({seg['rows_reference']:,}/{seg['rows_current']:,} rows): {shifts}"
            )
    for name, why in summary["skipped"].items():
        console.print(f"  [yellow]![/] {name} skipped: {why}")
    console.print(f"MLflow run: {summary['mlflow_run_url']}")


@app.command("performance")
def performance_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON summary only")] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option("--as-of", help="judge as of this time (UTC when naive; default now)"),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option(help="applications | scored_requests (repeatable; default: both)"),
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="default: SAFRA_MODEL_NAME")] = None,
) -> None:
    """The champion's realized performance on matured outcomes (AUC, KS, Brier, calibration by
    score band and segment); logged to MLflow.

    Exit code 0 whether it alarms or not, and when no outcome has matured yet (it says so; read
    `alarm` and `matured` in the JSON); 1 when the check cannot run (no champion, a service
    down), with the cause.
    """
    import contextlib
    import sys

    from ml.performance_check import SOURCES, PerformanceError, check_performance

    quiet = contextlib.redirect_stdout(sys.stderr) if as_json else contextlib.nullcontext()
    try:
        with quiet:
            result = check_performance(
                get_settings(), as_of=as_of, sources=tuple(source or SOURCES),
                model_name=model_name,
            )  # fmt: skip
    except PerformanceError as exc:
        _fail(exc)
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2), file=console.file)
        return
    verdict = (
        "[bold red]ALARM[/]" if result.alarm
        else "[green]no alarm[/]" if result.matured
        else "[yellow]nothing to judge[/]"
    )  # fmt: skip
    console.print(
        f"{verdict}: {summary['model_name']} v{summary['model_version']}, matured window "
        f"{result.window_start:%Y-%m-%d} .. {result.window_end:%Y-%m-%d} (as of "
        f"{result.as_of:%Y-%m-%d %H:%M} UTC)"
    )
    table = Table("source", "matured rows", "AUC", "KS", "Brier", "realized", "predicted", "alarm")
    for name, r in result.sources.items():
        m = r.metrics
        table.add_row(
            name, f"{r.rows['labelled']:,}",
            *(f"{m[k]:.3f}" if r.matured and m[k] == m[k] else "-"
              for k in ("roc_auc", "ks", "brier", "observed_rate", "mean_prob")),
            "[red]yes[/]" if r.alarm else "no",
        )  # fmt: skip
    console.print(table)
    for name, r in result.sources.items():
        if not r.matured:
            console.print(f"  [yellow]![/] {name}: {r.message}")
    for reason in result.reasons:
        console.print(f"  [red]✗[/] {reason}")
    for name, why in summary["skipped"].items():
        console.print(f"  [yellow]![/] {name} skipped: {why}")
    if not result.matured:
        console.print(result.message)
    console.print(f"MLflow run: {summary['mlflow_run_url']}")


def _print_json(report: object) -> None:
    typer.echo(json.dumps(report.as_dict(), indent=2, default=str), file=console.file)  # type: ignore[attr-defined]


@app.command("features")
def features_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON report only")] = False,
) -> None:
    """Register the Feast repo (feast apply) and materialize new gold rows into Redis."""
    from ml.feature_store import run_features

    try:
        report = run_features(get_settings())
    except (ValueError, FileNotFoundError, ConnectionError) as exc:
        _fail(exc)
    if as_json:
        _print_json(report)
        return
    console.print(
        f"feast apply: project {report.project}, {len(report.entities)} entities, views "
        f"{', '.join(report.feature_views)}, services {', '.join(report.feature_services)} "
        f"({report.apply_seconds:.1f} s; registry {report.registry})"
    )
    table = Table("feature view", "from", "to", "gold rows", "keys written")
    for v in report.materialized:
        table.add_row(v.name, v.start[:16], v.end[:16], f"{v.rows:,}", f"{v.keys:,}")
    console.print(table)
    console.print(f"materialized into Redis in {report.materialize_seconds:.1f} s")


@app.command("train")
def train_cmd(
    since: Annotated[
        datetime | None,
        typer.Option(help="only applications from this time on (UTC)", formats=TIME_FORMATS),
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="only applications before this", formats=TIME_FORMATS)
    ] = None,
    valid_days: Annotated[
        float | None, typer.Option(help="validate on the last N days (default: latest 20 %)")
    ] = None,
    valid_fraction: Annotated[float, typer.Option(help="share of latest rows validating")] = 0.2,
    n_jobs: Annotated[int, typer.Option(help="threads per fit")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON report only")] = False,
) -> None:
    """Feast point-in-time training set → candidates → MLflow run → version @challenger."""
    from ml.train import run_train
    from pipelines.simulator.hidden_model import best_achievable_auc_by_origin

    try:
        report = run_train(
            get_settings(), since, until, valid_fraction, valid_days, n_jobs,
            ceiling=best_achievable_auc_by_origin,
        )  # fmt: skip
    except (ValueError, FileNotFoundError, ConnectionError) as exc:
        _fail(exc)
    if as_json:
        _print_json(report)
        return
    m = report.metrics
    console.print(
        f"trained on {report.train_rows:,} rows, validated on {report.valid_rows:,} "
        f"(from {report.valid_from}); training set in {report.training_set_seconds:.1f} s, "
        f"fit in {report.train_seconds:.1f} s"
    )
    console.print(
        f"winner {report.winner} (candidates' ROC-AUC: "
        + ", ".join(f"{k} {v:.4f}" for k, v in report.candidate_aucs.items())
        + ")"
    )
    console.print(
        f"valid ROC-AUC {m['roc_auc']:.4f}, PR-AUC {m['pr_auc']:.4f}, F1 at the business "
        f"threshold {m['f1_at_threshold']:.4f}, Brier {m['brier']:.4f}, KS {m['ks']:.4f}"
    )
    if report.best_achievable_auc is not None and report.auc_fraction_of_best is not None:
        console.print(
            f"best achievable AUC {report.best_achievable_auc:.4f} (scenarios "
            f"{', '.join(report.scenarios) or 'baseline'}): this model reaches "
            f"{report.auc_fraction_of_best:.1%} of it"
        )
    console.print(f"run {report.run_id}: {report.run_url}")
    console.print(
        f"registered {report.model_name} v{report.version} as @challenger: {report.model_url}"
    )


def _print_decision(decision) -> None:  # ml.alias_history.PromotionDecision
    colour = "green" if decision.promoted else "yellow"
    prefix = "[dry run] " if decision.dry_run else ""
    console.print(
        f"{prefix}[bold {colour}]{decision.action}[/]: {decision.model_name} challenger "
        f"v{decision.challenger_version}, champion v{decision.champion_version_before} → "
        f"v{decision.champion_version_after}"
    )
    if decision.challenger_metrics:
        table = Table("metric", "challenger", "champion")
        for key in ("f1_at_threshold", "roc_auc", "pr_auc", "brier", "ks", "calibration_gap"):
            ch = decision.challenger_metrics.get(key)
            cp = decision.champion_metrics.get(key)
            table.add_row(key, "" if ch is None else f"{ch:.4f}", "" if cp is None else f"{cp:.4f}")
        console.print(table)
        c = decision.comparison
        if c:
            console.print(
                f"paired on {c['rows']:,} holdout rows ({c['positives']:,} defaults) from "
                f"{decision.holdout_from}; {c['resamples']:,} resamples, seed {c['seed']}; "
                f"smallest detectable F1 gain {c['smallest_detectable_f1_gain']:.4f}"
            )
            for key in ("f1_gain", "auc_gain", "brier_gain"):
                i = c[key]
                console.print(f"  {key}: {i['estimate']:+.4f} [{i['low']:+.4f}, {i['high']:+.4f}]")
        else:
            console.print(f"holdout: {decision.holdout_rows:,} rows from {decision.holdout_from}")
    for reason in decision.reasons:
        console.print(f"  - {reason}")
    if decision.rule:
        console.print(f"[dim]rule: {decision.rule}[/]")
    if decision.log_run_id:
        console.print(f"record: run {decision.log_run_id} of MLflow experiment safra-promotions")


_MLFLOW_FAILURES = (ValueError, FileNotFoundError, ConnectionError, RuntimeError)


def _decide(run: Callable[[], Any], as_json: bool) -> None:
    """Run a promotion or rollback; print its record (exit 1, naming the cause, when it could
    not be made)."""
    try:
        decision = run()
    except _MLFLOW_FAILURES as exc:
        _fail(exc)
    if as_json:
        _print_json(decision)
    else:
        _print_decision(decision)


@app.command("promote")
def promote_cmd(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="decide, move and record nothing")] = (
        False
    ),
    allow_withdrawn: Annotated[
        str | None,
        typer.Option("--allow-withdrawn", help="REASON to promote a version a rollback withdrew"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON decision only")] = False,
) -> None:
    """Challenger vs champion on the same holdout, paired; promote only if the gain is real and
    the guardrails hold. One at a time; a move left half-done by a killed run is completed or
    reverted first.

    Exit code 0 when the decision was made, promoted or refused (read `action`/`promoted`);
    1 when it could not be made (no challenger, no holdout, a service down, another promotion).
    """
    from ml.promote import run_promote

    _decide(lambda: run_promote(get_settings(), dry_run=dry_run, allow_withdrawn=allow_withdrawn),
            as_json)  # fmt: skip


@app.command("rollback")
def rollback_cmd(
    reason: Annotated[
        str | None, typer.Option("--reason", help="why the champion is withdrawn (recorded)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON record only")] = False,
) -> None:
    """@champion back to @previous-champion in one call; the withdrawn version is retired (tagged,
    cleared from @challenger, refused by `promote`), all on record (exit 1 when none)."""
    from ml.promote import run_rollback

    _decide(lambda: run_rollback(get_settings(), reason), as_json)


@app.command("promotions")
def promotions_cmd(
    audit: Annotated[
        bool,
        typer.Option(
            "--audit/--no-audit",
            help="first record alias changes made outside Safra (judging a new champion)",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON only")] = False,
) -> None:
    """The champion timeline: version, since when, how it got there, the evidence, who — and
    every record of the alias history (MLflow experiment safra-promotions)."""
    from ml.promote import run_promotions

    try:
        report = run_promotions(get_settings(), audit=audit)
    except _MLFLOW_FAILURES as exc:
        _fail(exc)
    if as_json:
        _print_json(report)
        return
    for note in report.audit:
        console.print(f"[yellow]audit[/]: {note}")
    console.print(
        f"{report.model_name}: "
        + ", ".join(f"@{a} v{v}" if v else f"@{a} none" for a, v in report.aliases.items())
    )
    table = Table("version", "since", "how", "guardrails", "who", "evidence")
    for row in report.timeline:
        table.add_row(
            str(row["version"]), str(row["since"])[:19], str(row["how"]),
            str(row["guardrails"] or ""), str(row["who"]), str(row["evidence"])[:120],
        )  # fmt: skip
    console.print(table)
    console.print(f"{len(report.records)} records in the MLflow experiment safra-promotions")


@app.command("serve")
def serve_cmd(
    port: Annotated[int | None, typer.Option(help="default: SAFRA_SERVING_PORT")] = None,
) -> None:
    """The scoring API in the foreground (BentoML): serves @champion and follows it."""
    from serving.server import serve_foreground

    try:
        serve_foreground(get_settings(), port)
    except ValueError as exc:
        _fail(exc)


@app.command("demo")
def demo_cmd(
    scenario: Annotated[
        str,
        typer.Option(help="drift scenario: drought | bureau_recalibration | income_overstatement"),
    ] = ("bureau_recalibration"),
    scale: Annotated[
        str, typer.Option(help="full (make demo) or ci (the e2e test's size)")
    ] = "full",
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON too")] = False,
    seed: Annotated[
        int | None, typer.Option(help="fixed seeds (default: new applicants at every run)")
    ] = None,
) -> None:
    """The whole loop: history → lakehouse → features → champion → API → drift → Airflow's
    drift_monitor run → the model_retraining run its drift event starts (retrain, promote), the
    API switching versions under load. Ends with figures, the runs and where to look."""
    from commands.demo import SCALES, Demo

    if scale not in SCALES:
        _fail(ValueError(f"unknown scale {scale!r}; known: {', '.join(SCALES)}"))
    s = get_settings()
    began = time.monotonic()
    log_path = s.logs_dir / "demo.log"
    console.print(f"Safra demo ({scale}, drift scenario {scenario}); details in {log_path}")

    def on_stage(name: str, state: str, detail: str) -> None:
        elapsed = time.monotonic() - began
        if state == "start":
            console.print(f"[dim]{elapsed:6.0f} s[/] [bold]▶ {name}[/]")
        elif state == "progress":
            console.print(f"[dim]{elapsed:6.0f} s     {escape(detail)}[/]", highlight=False)
        else:
            console.print(f"[dim]{elapsed:6.0f} s[/]   [green]✓[/] {detail}")

    try:
        summary = Demo(s, SCALES[scale], scenario, on_stage=on_stage, seed=seed).run()
    except Exception as exc:  # noqa: BLE001 - any stage: one message naming it, then exit 1
        console.print(f"[bold red]demo stopped:[/] {type(exc).__name__}: {exc}")
        console.print(f"service logs: {s.logs_dir}; `safra stack status` shows the stack")
        raise typer.Exit(1) from exc
    table = Table(title=f"Safra demo: {summary.scenario}", show_header=False)
    for label, line in summary.headlines():
        table.add_row(label, line)
    console.print(table)
    for name, url in summary.urls.items():
        console.print(f"  {name:<22} {url}")
    if as_json:
        print(summary.as_json(), file=console.file)
