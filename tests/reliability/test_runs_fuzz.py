"""Property-based fuzzing of the runs browser (Hypothesis): any files in a runs folder (results, config,
metrics, report, model card, under any run name) and any query, on every page. Each answer is 200 or 404
(422 where FastAPI refuses a malformed query itself), never a 500, and comes within seconds."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minbert.serving.runs import create_ui_app

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW_S = 10.0

json_value = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# the shapes minbert writes, with anything in their leaves, and anything at all
results = st.one_of(
    st.builds(lambda d, t: {"results": {"dev": d, "test": t}}, json_value, json_value),
    st.builds(lambda r, s: {"results": r, "summary": s}, json_value, json_value),
    json_value,
).map(json.dumps) | st.text(max_size=60)
metric_line = st.one_of(
    st.builds(
        lambda step, epoch, metrics: json.dumps({"event": "dev", "step": step, "epoch": epoch, **metrics}),
        json_value,
        json_value,
        st.dictionaries(st.sampled_from(["accuracy", "loss", "$\\frac{$", "f1"]), json_value, max_size=3),
    ),
    st.text(max_size=40).filter(lambda line: "\n" not in line and "\r" not in line),
)
config = st.one_of(
    st.builds(lambda task, model: f"task: {task}\nmodel: {model}\n", st.text(max_size=10), st.text(max_size=20)),
    st.text(max_size=80),
)
report = st.one_of(
    st.builds(lambda alt, src: f"# Run\n\n![{alt}]({src})\n", st.text(max_size=10), st.text(max_size=30)),
    st.text(max_size=120),
)
name = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=12
).filter(lambda text: text not in {".", ".."} and len(text.encode()) < 200)
run = st.fixed_dictionaries(
    {"name": name},
    optional={
        "results.json": results,
        "config.yaml": config,
        "metrics.jsonl": st.lists(metric_line, max_size=4).map("\n".join),
        "report.md": report,
        "model/README.md": st.text(max_size=80).map(lambda text: "---\n" + text),
    },
)
query_text = st.one_of(st.text(max_size=15), st.sampled_from(["../", "%00", "\x00", "a/../../etc", "accuracy"]))


def write_runs(folder: Path, runs: list[dict[str, str]]) -> list[str]:
    names = []
    for spec in runs:
        directory = folder / spec["name"]
        if directory.exists():
            continue
        (directory / "model").mkdir(parents=True)
        (directory / "results.json").write_text("{}")  # a run is a folder with results.json
        for file, content in spec.items():
            if file != "name":
                (directory / file).write_text(content, encoding="utf-8", errors="surrogateescape")
        names.append(spec["name"])
    return names


@pytest.mark.filterwarnings("ignore:Glyph")  # a fuzzed metric name in a character the font lacks
@FUZZ
@given(runs=st.lists(run, min_size=1, max_size=3), extra=st.lists(query_text, max_size=2), metric=query_text)
def test_any_runs_folder_and_query_answer_200_or_404_never_500(runs, extra, metric):
    with tempfile.TemporaryDirectory() as folder:
        names = write_runs(Path(folder), runs)
        client = TestClient(create_ui_app(folder), raise_server_exceptions=False)
        pages = [("/", {}), ("/api/runs", {})]
        for chosen in [*names, *extra]:
            pages += [(path, {"name": chosen}) for path in ("/run", "/card")]
            pages += [("/file", {"run": chosen, "name": "learning_curves.png"})]
        pages += [("/compare", {"run": [*names, *extra], "metric": metric})]
        pages += [("/curves.png", {"run": [*names, *extra], "metric": metric})]
        for path, params in pages:
            start = time.monotonic()
            reply = client.get(path, params=params)
            assert reply.status_code in (200, 404, 422), (path, params, reply.status_code, reply.text[-500:])
            assert time.monotonic() - start < SLOW_S, (path, params)
