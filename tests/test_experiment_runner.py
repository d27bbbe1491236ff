"""The experiment runner's wall clock sums a run's sittings, including one that was killed."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "experiments"))

from runner import WallClock  # noqa: E402


def sit_until_killed(path: str) -> None:
    from pathlib import Path

    with WallClock(Path(path), every=0.05):
        time.sleep(60)


def test_wall_clock_counts_a_killed_sitting_and_the_finished_one(tmp_path):
    ledger = tmp_path / "run" / "wall_s.json"
    killed = multiprocessing.get_context("spawn").Process(target=sit_until_killed, args=(str(ledger),))
    killed.start()
    deadline = time.time() + 60
    while time.time() < deadline and not (ledger.is_file() and json.loads(ledger.read_text())[-1] >= 0.5):
        time.sleep(0.05)
    killed.kill()
    killed.join()
    first = json.loads(ledger.read_text())
    assert len(first) == 1 and first[0] >= 0.5

    with WallClock(ledger, every=0.05) as clock:
        time.sleep(0.3)
    sittings = json.loads(ledger.read_text())
    assert len(sittings) == 2 and sittings[0] == first[0] and sittings[1] >= 0.3
    assert abs(clock.total() - sum(sittings)) < 0.05
