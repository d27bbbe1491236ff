"""`minbert sweep` on a real PostgreSQL server: two worker processes on one study, and a worker killed mid-trial.

The server is started by the test itself (initdb + pg_ctl in a temporary directory, trust auth on a
free loopback port) and stopped afterwards. Skipped, with the reason, where the PostgreSQL server
binaries or the psycopg driver are missing; `.ci/run` installs both.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna")


def server_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A SQLAlchemy URL of an empty database on a fresh PostgreSQL server."""
    pytest.importorskip(
        "psycopg", reason="the PostgreSQL driver psycopg is not installed (pip install 'psycopg[binary]')"
    )
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    root = Path(tempfile.mkdtemp(prefix="minbert-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root and runuser is missing: cannot start PostgreSQL as another user")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = root / "data"
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres", autocommit=True) as c:
            c.execute("CREATE DATABASE minbert")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/minbert"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def sweep_config(tmp_path: Path, data_dir: Path, url: str, study: str, **train: object) -> Path:
    rows = (data_dir / "massive_en_us" / "train.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "train.jsonl").write_text("".join(rows[:300]), encoding="utf-8")
    (tmp_path / "dev.jsonl").write_text("".join(rows[300:400]), encoding="utf-8")
    config = {
        "output_dir": str(tmp_path / study),
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl"), "format": "massive"},
        "model": {"max_length": 32},
        "train": {"freeze": "encoder", "epochs": 4, "batch_size": 32, "progress": False, "seed": 3, "threads": 1}
        | train,
        "sweep": {
            "trials": 3,
            "storage": url,
            "study_name": study,
            "heartbeat_s": 1,
            "params": {"train.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        },
    }
    path = tmp_path / f"{study}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def worker(config: Path, trials: int, index: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minbert",
            "-q",
            "sweep",
            str(config),
            "--trials",
            str(trials),
            "--sweep.worker",
            str(index),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_workers_share_one_study_each_trial_once_and_the_best_model_kept(postgres, tmp_path, data_dir):
    config = sweep_config(tmp_path, data_dir, postgres, "shared")
    workers = [worker(config, 3, 0), worker(config, 3, 1)]
    outcomes = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outcomes
    study = optuna.load_study(study_name="shared", storage=postgres)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # six trials, each recorded once
    assert all(t.state.is_finished() for t in study.trials)
    assert {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
    # every trial's per-epoch dev values are in the shared database: what the median pruner compares
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    assert len({t.params["train.lr"] for t in study.trials}) == 6  # the workers' samplers differ (sweep.worker)
    kept = sorted(p.parent.name for p in (tmp_path / "shared").glob("trial_*/model"))
    assert kept == [f"trial_{study.best_trial.number:03d}"]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_leaves_the_study_consistent(postgres, tmp_path, data_dir):
    # fine-tuning (not a cached probe), so a trial lasts long enough to be killed in the middle
    config = sweep_config(tmp_path, data_dir, postgres, "killed", freeze="none", epochs=6)
    doomed = worker(config, 2, 0)
    log = tmp_path / "killed" / "trial_000" / "train.log"
    deadline = time.time() + 300
    while not (log.is_file() and "epoch 1/6" in log.read_text()):
        assert doomed.poll() is None and time.time() < deadline, "the first trial never got going"
        time.sleep(0.2)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    running = optuna.load_study(study_name="killed", storage=postgres).trials
    assert [t.state.name for t in running] == ["RUNNING"]  # what the kill leaves behind
    time.sleep(3)  # past the grace period (2 heartbeats of 1 s)
    survivor = worker(config, 1, 1)
    out, err = survivor.communicate(timeout=600)
    assert survivor.returncode == 0, err
    trials = optuna.load_study(study_name="killed", storage=postgres).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]  # the stale trial was marked failed
    assert not (tmp_path / "killed" / "trial_000" / "model").exists()  # and no half-written model of it
    assert (tmp_path / "killed" / "trial_001" / "model" / "minbert.json").is_file()
    assert "2 trials" in out
