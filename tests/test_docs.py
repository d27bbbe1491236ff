"""Every shell and Python block of the README and docs/ runs as written, so the documentation cannot drift
from the code. Each page runs top to bottom in a scratch folder laid out like a checkout (`configs/`,
`.venv`, and `../shared/data` holding a tiny slice of each benchmark set), with the files a reader is
assumed to have (`my/*.csv`, `texts.txt`, `atis/*.csv`) made here. A block that cannot run here (a GPU,
several machines, the 430 MB download, the suite itself) carries `<!-- docs-test: not run: REASON -->` on
the line above it; the test counts those, and any other block that fails, fails the test."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

PAGES = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
BLOCK = re.compile(r"(?:<!-- docs-test: not run: (?P<reason>[^>]+?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
SHELL = {"bash", "sh", "shell", "console"}
SERVERS = {"serve": "/health", "ui": "/health"}  # commands that run until stopped -> the page that shows they are up
COMMAND_TIMEOUT_S = 600
# the intents kept from MASSIVE: the ones the docs' example texts name, and a few more
MASSIVE_INTENTS = {"alarm_set", "play_music", "weather_query", "iot_hue_lightoff", "calendar_set", "audio_volume_mute"}


@dataclass
class Block:
    page: Path
    lang: str
    body: str
    reason: str | None  # why it is not run here; None: it runs

    @property
    def runnable(self) -> bool:
        return self.lang in SHELL | {"python"}


def blocks(page: Path) -> list[Block]:
    found = [Block(page, m["lang"], m["body"], m["reason"]) for m in BLOCK.finditer(page.read_text(encoding="utf-8"))]
    return [block for block in found if block.runnable]


def commands(script: str) -> list[str]:
    """A shell block's commands, one per logical line (backslash continuations joined, comment lines dropped)."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def tiny_data(source: Path, target: Path) -> None:
    """A slice of each benchmark folder the docs read, keeping its file names and formats: MASSIVE's rows of
    a few intents (so dev and test labels occur in training), the first rows of the other sets."""
    for name in ("massive_en_us", "cs224n_multitask", "stsb", "uci_sentiment"):
        (target / name).mkdir(parents=True)
        for file in (source / name).iterdir():
            lines = file.read_text(encoding="utf-8").splitlines(keepends=True)
            if file.suffix == ".jsonl":
                per_intent = 16 if file.stem == "train" else 5
                kept: dict[str, int] = {}
                rows = []
                for line in lines:
                    intent = json.loads(line)["label_text"]
                    if intent in MASSIVE_INTENTS and kept.get(intent, 0) < per_intent:
                        kept[intent] = kept.get(intent, 0) + 1
                        rows.append(line)
                lines = rows
            elif file.suffix in {".csv", ".txt"}:
                lines = lines[: 81 if "train" in file.name or file.parent.name == "uci_sentiment" else 41]
            (target / name / file.name).write_text("".join(lines), encoding="utf-8")
    (target / "hwu64").symlink_to(source / "hwu64")  # the Python quickstart's real 10-shot data


def readers_files(folder: Path) -> None:
    """The files a reader of the docs brings: an intent CSV, plain texts, ATIS-style multi-intent rows."""
    intents = {"alarm": ["wake me up at seven", "set an alarm for six", "alarm at noon please", "wake me at five"],
               "music": ["play some jazz", "put on the radio", "play my workout songs", "some music please"]}  # fmt: skip
    my = folder / "my"
    my.mkdir()
    rows = [f"{text},{intent}\n" for intent, texts in intents.items() for text in texts]
    for split in ("train", "dev", "test"):
        (my / f"{split}.csv").write_text("text,intent\n" + "".join(rows * (3 if split == "train" else 1)))
    (folder / "texts.txt").write_text("wake me up at seven\nplay some jazz\n")
    atis = folder / "atis"
    atis.mkdir()
    flights = ["flights from boston to denver", "show me flights to dallas", "list flights to atlanta"]
    fares = ["how much is a ticket to denver", "cheapest fare to boston", "what does a flight to dallas cost"]
    both = ["fares and flight times from boston", "flights and fares to denver"]
    train = [*(f"{t},atis_flight\n" for t in flights), *(f"{t},atis_airfare\n" for t in fares)] * 4
    train += [f"{t},atis_airfare#atis_flight\n" for t in both] * 4
    (atis / "train.csv").write_text("text,intent\n" + "".join(train))
    (atis / "dev.csv").write_text("text,intent\n" + "".join(train[:8]))
    # ATIS's test set has intents its training set lacks (here atis_day_name), and an empty row
    test = [*train[:6], "what day is the flight on,atis_day_name\n", ",atis_flight\n"]
    (atis / "test.csv").write_text("text,intent\n" + "".join(test))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_server(words: list[str], cwd: Path, env: dict[str, str], path: str) -> None:
    """Start a server command on a free port, wait until `path` answers 200, stop it."""
    port = free_port()
    if "--port" in words:
        at = words.index("--port")
        words = words[:at] + words[at + 2 :]
    command = [*words, "--port", str(port)]
    server = subprocess.Popen(command, cwd=cwd, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, f"{command!r} exited: {server.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                    assert reply.status == 200
                    return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"{command!r}: {path} did not answer within 120 s")
    finally:
        server.terminate()
        server.wait(timeout=30)


def run_shell(block: Block, folder: Path, env: dict[str, str]) -> None:
    for command in commands(block.body):
        words = shlex.split(command, comments=True)
        server = next((SERVERS[w] for w in words[1:2] if words[0] == "minbert" and w in SERVERS), None)
        if server:
            run_server(words, folder, env, server)
        else:
            run_command(command, folder, env, block.page.name)


def run_command(command: str, folder: Path, env: dict[str, str], page: str) -> None:
    done = subprocess.run(
        ["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )
    assert done.returncode == 0, f"{page}: {command!r} exited {done.returncode}:\n{done.stderr[-3000:]}"


def prerequisites(page: Path) -> list[str]:
    """The runs a page uses without training them (`runs/NAME` of `configs/NAME.yaml`): its reader trained
    them on another page, so they are trained here first, the way that page does."""
    text = page.read_text(encoding="utf-8")
    used = sorted(set(re.findall(r"\bruns/(\w+)", text)))
    return [
        f"minbert train configs/{name}.yaml"
        for name in used
        if (REPO / "configs" / f"{name}.yaml").is_file() and f"minbert train configs/{name}.yaml" not in text
    ]


@pytest.fixture(scope="module")
def shared_data(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("checkout")
    tiny_data(data_dir, root / "shared" / "data")
    return root


@pytest.mark.slowest
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_block_of_the_page_runs_or_says_why_not(page, shared_data, tmp_path, monkeypatch, capsys):
    folder = shared_data / f"{page.stem}-{tmp_path.name}"
    folder.mkdir()
    (folder / "configs").symlink_to(REPO / "configs")
    (folder / ".venv").symlink_to(Path(sys.prefix))
    readers_files(folder)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    monkeypatch.chdir(folder)
    for command in prerequisites(page):
        run_command(command, folder, env, page.name)
    namespace: dict = {}
    ran = marked = 0
    for block in blocks(page):
        if block.reason:
            marked += 1
            continue
        if block.lang == "python":
            exec(compile(block.body, f"{page.name} python block", "exec"), namespace)
        else:
            run_shell(block, folder, env)
        ran += 1
    if page.name == "README.md":  # the Python quickstart trained on the real 10-shot HWU64 split
        accuracy, label = capsys.readouterr().out.split()[-2:]
        assert float(accuracy) > 0.75 and label == "alarm_set"
        assert (folder / "intent-model" / "minbert.json").is_file()
    print(f"{page.name}: {ran} blocks run, {marked} marked not run")
    assert ran + marked == len(blocks(page))


def test_the_docs_mark_only_what_cannot_run_here():
    """The blocks left out, counted, each with its reason: the rest of the docs is executed above."""
    marked = [(block.page.name, block.reason) for page in PAGES for block in blocks(page) if block.reason]
    total = sum(len(blocks(page)) for page in PAGES)
    assert total >= 15 and len(marked) <= 6, marked
    assert all(len(reason) > 10 for _, reason in marked)


def test_the_documentation_site_builds_strictly_with_generated_references(tmp_path):
    """`mkdocs build --strict`: a broken link or a page missing from the site fails; the config and format
    references are generated from the code."""
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(REPO / "src")},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    config_page = (site / "reference" / "config" / "index.html").read_text()
    for field in ("train.lr", "data.shots_per_class", "data.unseen_labels", "oos.method", "head.kind"):
        assert field in config_page
    assert "goemotions" in (site / "reference" / "formats" / "index.html").read_text()
