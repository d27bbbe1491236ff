"""A browser for a folder of training runs: `minbert ui RUNS_DIR` (or `minbert serve RUN --runs DIR` at /runs).

    GET  /                    every run under the folder with its key metrics; sortable; tick runs to compare
    GET  /api/runs            the same as JSON
    GET  /run?name=RUN        one run's report.md as a page (results, curves, confusion matrix, reliability ...)
    GET  /card?name=RUN       its model card (model/README.md; the front matter as it is, the rest rendered)
    GET  /file?run=RUN&name=F a PNG of that run (only .png files directly in the run's directory)
    GET  /compare?run=A&run=B the runs' metrics side by side and their dev curves overlaid
    GET  /curves.png?run=A&run=B&metric=M   the overlaid dev curves

A run is a directory holding results.json (what `minbert train` and `minbert refit` write); names are
paths relative to the folder, and nothing outside it is ever read or shown. Pages load nothing from
the internet.
"""

from __future__ import annotations

import html
import io
import json
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import yaml
from fastapi import APIRouter, FastAPI, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from markdown_it import MarkdownIt

from minbert.config import read_untrusted_yaml
from minbert.evaluation.plots import plot_dev_curves

MAX_DEPTH = 6  # experiments/runs/<experiment>/<recipe>/<checkpoint>/seed1 is five deep
MAX_FILE_BYTES = 20_000_000  # a run's report, results, metrics or plot; anything larger is not shown
# The headline numbers of the runs table, the first found of each group.
COLUMNS = {
    "dev": ("overall", "accuracy", "macro_f1", "pearson"),
    "test": ("overall", "accuracy", "macro_f1", "pearson"),
    "test macro-F1": ("macro_f1",),
    "test ECE": ("ece",),
    "OOS AUROC": ("oos_auroc",),
}


@dataclass
class RunRow:
    name: str
    kind: str
    checkpoint: str
    metrics: dict[str, float | None]
    train_seconds: float | None
    examples_per_second: float | None
    finished: str

    @property
    def link(self) -> str:
        return "run?" + urlencode({"name": self.name})


def run_file(root: Path, run: Path, relative: str) -> Path | None:
    """A file of a run, or None unless it is a regular file reached without a symbolic link, inside the runs
    folder and at most MAX_FILE_BYTES: a link out of the folder, a FIFO that would block, or a huge file
    is never read."""
    path, info = run, None
    for part in Path(relative).parts:
        path = path / part
        try:
            info = path.lstat()
        except (OSError, ValueError):
            return None
        if stat.S_ISLNK(info.st_mode):
            return None
    if info is None or not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
        return None
    return path if path.resolve().is_relative_to(root.resolve()) else None


def read_run_file(root: Path, run: Path, relative: str) -> bytes | None:
    """The bytes of `run_file`, opened without following a link (it could have been swapped in since)."""
    path = run_file(root, run, relative)
    if path is None:
        return None
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as handle:
            return handle.read(MAX_FILE_BYTES)
    except OSError:
        return None


def read_run_text(root: Path, run: Path, relative: str) -> str | None:
    data = read_run_file(root, run, relative)
    return data.decode("utf-8", errors="replace") if data is not None else None


def find_runs(root: Path) -> list[RunRow]:
    """Every run directory under `root` (results.json), newest first."""
    found = []
    for results in sorted(root.rglob("results.json")):
        relative = results.parent.relative_to(root)
        if len(relative.parts) > MAX_DEPTH or "model" in relative.parts or "checkpoint" in relative.parts:
            continue
        if results.is_symlink() or not results.resolve().is_relative_to(root.resolve()):
            continue
        found.append(described(root, results.parent))
    return sorted(found, key=lambda row: row.finished, reverse=True)


# Rows already read, keyed by the run's directory and what its results.json and config.yaml were then: a
# listing reads (and parses the YAML of) only the runs that changed since the last one.
_ROWS: dict[Path, tuple[tuple[Any, ...], RunRow]] = {}


def described(root: Path, run: Path) -> RunRow:
    key = (root, *(_signature(run / name) for name in ("results.json", "config.yaml")))
    cached = _ROWS.get(run)
    if cached is not None and cached[0] == key:
        return cached[1]
    row = describe(root, run)
    _ROWS[run] = (key, row)
    return row


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def describe(root: Path, run: Path) -> RunRow:
    """A run's row; a run whose files cannot be read or do not have the shape minbert writes is one row marked
    unreadable, with the reason, so one bad run never breaks the list."""
    name = run.relative_to(root).as_posix() or "."
    try:
        text = read_run_text(root, run, "results.json")
        if text is None:
            raise ValueError("results.json is not a regular file of at most 20 MB inside the folder")
        written = json.loads(text)
        config_text = read_run_text(root, run, "config.yaml")
        config = read_untrusted_yaml(config_text) if config_text else {}
        if not isinstance(written, dict) or not isinstance(config or {}, dict):
            raise ValueError("results.json or config.yaml is not a mapping")
        results, summary = _mapping(written.get("results")), _mapping(written.get("summary"))
        metrics: dict[str, float | None] = {}
        for column, keys in COLUMNS.items():
            split = _mapping(results.get("dev" if column == "dev" else "test"))
            metrics[column] = next((_number(split[k]) for k in keys if _number(split.get(k)) is not None), None)
        model = _mapping((config or {}).get("model"))
        kind = str((config or {}).get("task", "?")) + (" (refit)" if "refitted_from" in summary else "")
        return RunRow(
            name=name,
            kind=kind,
            checkpoint=str(model.get("checkpoint", "?")),
            metrics=metrics,
            train_seconds=_number(summary.get("train_seconds")),
            examples_per_second=_number(summary.get("train_examples_per_second")),
            finished=_modified(run / "results.json"),
        )
    except (OSError, ValueError, yaml.YAMLError, RecursionError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        return RunRow(name, f"unreadable: {reason}", "?", dict.fromkeys(COLUMNS), None, None, "")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _modified(path: Path) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")


def resolve_run(root: Path, name: str) -> Path:
    """The run directory called `name` under root, or 404; names that lead outside root (through `..` or a
    symbolic link), or that no filesystem can hold (a NUL byte), are refused the same way."""
    try:
        run = (root / name).resolve()
        found = run.is_relative_to(root.resolve()) and run_file(root, run, "results.json") is not None
    except (OSError, ValueError):
        found = False
    if not found:
        raise HTTPException(404, f"no run {name!r} in this folder; see the list of runs")
    return run


def markdown() -> MarkdownIt:
    """CommonMark with tables; raw HTML in the text is escaped, not passed through."""
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def render_report(root: Path, run: Path, name: str) -> str:
    """report.md as HTML (raw HTML in it is escaped), its images pointed at this server's /file route."""
    md = markdown()

    def image(renderer: Any, tokens: Any, index: int, options: Any, env: Any) -> str:
        token = tokens[index]
        source = str(token.attrGet("src") or "")
        if "/" not in source and ":" not in source:  # a picture beside report.md
            token.attrSet("src", "file?" + urlencode({"run": name, "name": source}))
        return str(renderer.image(tokens, index, options, env))

    md.add_render_rule("image", image)
    text = read_run_text(root, run, "report.md")
    return md.render(text if text is not None else "# No report.md in this run")


STYLE = """
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.85rem; }
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.2rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.55rem; text-align: left; }
th { background: #f3f3f3; cursor: pointer; user-select: none; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } a { color: #0550ae; } .muted { color: #666; } button { font-size: 1rem; padding: 0.3rem 0.8rem; }
"""

SORT_SCRIPT = """
document.querySelectorAll("th[data-col]").forEach(th => th.onclick = () => {
  const table = th.closest("table"), body = table.tBodies[0], col = +th.dataset.col;
  const down = th.dataset.dir !== "down"; th.dataset.dir = down ? "down" : "up";
  const key = r => { const t = r.cells[col].textContent.trim(), n = parseFloat(t.replace(/,/g, "")); return isNaN(n) ? t : n; };
  [...body.rows].sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * (down ? -1 : 1); })
    .forEach(r => body.append(r));
});
function compare() {
  const names = [...document.querySelectorAll("input.pick:checked")].map(b => "run=" + encodeURIComponent(b.value));
  if (names.length) location.href = "compare?" + names.join("&");
}
"""


def page(title: str, body: str, script: str = "") -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{body}<script>{script}</script></body></html>"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "<td class=n></td>"
    if isinstance(value, float):
        return f"<td class=n>{value:.4f}</td>" if abs(value) <= 1 else f"<td class=n>{value:,.1f}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def runs_page(rows: list[RunRow], folder: str) -> str:
    headers = ["", "run", "task", "checkpoint", *COLUMNS, "train s", "train ex/s", "finished"]
    head = "".join(f"<th data-col={i}>{html.escape(h)}</th>" if h else "<th></th>" for i, h in enumerate(headers))
    lines = []
    for row in rows:
        cells = [
            f'<td><input type=checkbox class=pick value="{html.escape(row.name)}"></td>',
            f'<td><a href="{html.escape(row.link)}">{html.escape(row.name)}</a></td>',
            _cell(row.kind),
            _cell(row.checkpoint),
            *(_cell(row.metrics[c]) for c in COLUMNS),
            _cell(row.train_seconds),
            _cell(row.examples_per_second),
            _cell(row.finished),
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    body = (
        f"<h1>minbert runs</h1><p class=muted>{len(rows)} runs in {html.escape(folder)}; click a column to sort, "
        "tick runs and compare them.</p><p><button onclick=compare()>Compare the ticked runs</button></p>"
        f"<table id=runs><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )
    return page("minbert runs", body, SORT_SCRIPT)


def flat_results(root: Path, run: Path) -> dict[str, float]:
    try:
        results = _mapping(_mapping(json.loads(read_run_text(root, run, "results.json") or "{}")).get("results"))
    except ValueError:
        return {}
    return {
        f"{split} {k}": v
        for split, values in results.items()
        for k, v in _mapping(values).items()
        if isinstance(v, float | int) and not isinstance(v, bool)
    }


def metrics_of(root: Path, run: Path) -> list[dict[str, Any]]:
    """metrics.jsonl's records; a line that is not a JSON object is left out (a run still writing, or damaged)."""
    records = []
    for line in (read_run_text(root, run, "metrics.jsonl") or "").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def dev_metric_names(records: list[dict[str, Any]]) -> list[str]:
    dev = [r for r in records if r.get("event") == "dev"]
    return (
        [k for k, v in dev[0].items() if k not in ("event", "step", "epoch", "seconds") and isinstance(v, float | int)]
        if dev
        else []
    )


def compare_page(root: Path, names: list[str], metric: str | None) -> str:
    runs = {name: resolve_run(root, name) for name in names}
    flat = {name: flat_results(root, run) for name, run in runs.items()}
    keys = sorted({k for values in flat.values() for k in values}, key=lambda k: (not k.startswith("test"), k))
    head = "<th>metric</th>" + "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td>" + "".join(_cell(flat[n].get(k)) for n in names) + "</tr>" for k in keys
    )
    common = set.intersection(*(set(dev_metric_names(metrics_of(root, r))) for r in runs.values()))
    choices = [m for m in ("overall", "accuracy", "macro_f1", "pearson", "loss") if m in common] + sorted(
        common - {"overall", "accuracy", "macro_f1", "pearson", "loss"}
    )
    metric = metric if metric in common else (choices[0] if choices else None)
    query = [("run", n) for n in names]
    links = " · ".join(
        f'<a href="compare?{html.escape(urlencode([*query, ("metric", m)]))}">{html.escape(m)}</a>' for m in choices
    )
    curves = (
        f"<h2>Dev {html.escape(metric)} by epoch</h2><p class=muted>other metrics: {links}</p>"
        f'<img alt="dev curves" src="curves.png?{html.escape(urlencode([*query, ("metric", metric)]))}">'
        if metric
        else "<p class=muted>these runs have no dev metric in common</p>"
    )
    body = (
        '<p><a href=".">all runs</a></p><h1>Comparing ' + str(len(names)) + " runs</h1>"
        f"{curves}<h2>Results</h2><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )
    return page("minbert: compare runs", body, SORT_SCRIPT)


def runs_router(root: str | Path) -> APIRouter:
    """The pages above for the runs under `root` (a directory, checked now so a typo fails before serving). The
    handlers are plain functions, so FastAPI runs their file reads in its thread pool, never on the event loop
    that answers /health and /predict."""
    folder = Path(root)
    if not folder.is_dir():
        from minbert.errors import MinbertError

        raise MinbertError(f"{folder}: not a directory of runs; give the folder your runs' output_dirs are in")
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse)
    def runs() -> str:
        return runs_page(find_runs(folder), folder.name or str(folder))

    @router.get("/api/runs")
    def runs_json() -> list[dict[str, Any]]:
        return [asdict(row) for row in find_runs(folder)]

    @router.get("/run", response_class=HTMLResponse)
    def run(name: str) -> str:
        directory = resolve_run(folder, name)
        query = html.escape(urlencode({"name": name}))
        body = (
            f'<p><a href=".">all runs</a> · <a href="card?{query}">model card</a> · '
            f'<a href="compare?run={quote(name)}">dev curves</a></p>'
        )
        return page(f"minbert run {name}", body + render_report(folder, directory, name))

    @router.get("/card", response_class=HTMLResponse)
    def card(name: str) -> str:
        text = read_run_text(folder, resolve_run(folder, name), "model/README.md")
        text = text if text is not None else "# No model card (minbert card RUN writes one)"
        front, body = "", text
        if text.startswith("---\n") and "\n---\n" in text[4:]:
            front, body = text[4:].split("\n---\n", 1)
        query = html.escape(urlencode({"name": name}))
        links = f'<p><a href=".">all runs</a> · <a href="run?{query}">report</a></p>'
        shown = f"<pre>{html.escape(front)}</pre>" if front else ""
        return page(f"minbert model card {name}", links + shown + markdown().render(body))

    @router.get("/file")
    def file(run: str, name: str) -> Response:
        directory = resolve_run(folder, run)
        data = None
        if "/" not in name and "\\" not in name and name.endswith(".png"):
            data = read_run_file(folder, directory, name)
        if data is None:
            raise HTTPException(404, f"no picture {name!r} in run {run!r}")
        return Response(data, media_type="image/png")

    @router.get("/compare", response_class=HTMLResponse)
    def compare(run: Annotated[list[str], Query()], metric: str | None = None) -> str:
        return compare_page(folder, run, metric)

    @router.get("/curves.png")
    def curves(metric: str, run: Annotated[list[str], Query()]) -> Response:
        records = {name: metrics_of(folder, resolve_run(folder, name)) for name in run}
        buffer = io.BytesIO()
        plot_dev_curves(records, metric, buffer)
        return Response(buffer.getvalue(), media_type="image/png")

    return router


UI_MAX_BODY_BYTES = 64 * 1024  # the pages are read with GET; nothing sends a body
UI_BODY_TIMEOUT_S = 30.0


def create_ui_app(root: str | Path, api_key: str | None = None) -> FastAPI:
    """`minbert ui`: the runs pages at /, and /health. With `api_key`, every page but /health asks for it
    (a browser shows its login prompt: any user name, the key as password)."""
    from minbert import __version__
    from minbert.serving.guards import Guards, Lifecycle

    app = FastAPI(title="minbert runs", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(runs_router(root))
    app.state.lifecycle, app.state.api_key = Lifecycle(), api_key
    app.add_middleware(
        Guards,
        lifecycle=app.state.lifecycle,
        max_body_bytes=UI_MAX_BODY_BYTES,
        body_timeout_s=UI_BODY_TIMEOUT_S,
        api_key=api_key,
        open_paths=frozenset({"/health"}),
    )
    app.state.lifecycle.ready = True
    app.state.announce = f"runs of {Path(root).name or root}"

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
