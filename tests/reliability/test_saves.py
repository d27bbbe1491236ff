"""A saved model is whole or absent: kill -9 during a save over an existing model never leaves a
mixture, and the files get the permissions the umask asks for."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import torch

import minbert
from minbert import MinbertError
from tests.helpers import classifier

TEXTS = ["wake me up at seven", "play some jazz", "what's the weather"]

SAVER = """
import sys, torch
from tests.helpers import classifier
torch.manual_seed(int(sys.argv[2]))
model = classifier(["a", "b", "c"], hidden_size=16, max_length=16)
print("ready", flush=True)
while True:
    model.save(sys.argv[1])
    print("saved", flush=True)
"""


def start_saver(directory, seed: int) -> subprocess.Popen:
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER, str(directory), str(seed)], stdout=subprocess.PIPE, cwd=os.getcwd()
    )
    assert saver.stdout is not None and saver.stdout.readline().strip() == b"ready"
    return saver


@pytest.mark.slow
def test_kill_during_a_save_over_an_existing_model_leaves_the_old_or_the_new(tmp_path):
    directory = tmp_path / "model"
    torch.manual_seed(1)
    old_model = classifier(["a", "b", "c"], hidden_size=16, max_length=16)
    old_model.save(directory)
    old = [p.probabilities for p in minbert.load(directory).predict(TEXTS)]
    torch.manual_seed(2)
    new = [p.probabilities for p in classifier(["a", "b", "c"], hidden_size=16, max_length=16).predict(TEXTS)]
    assert old != new
    # How long one save takes on this machine now (a loaded CI machine is several times slower than a
    # quiet one), so that the kills below land before, during and after the first save whatever the load.
    timer = start_saver(tmp_path / "timing", 2)
    started = time.perf_counter()
    assert timer.stdout is not None and timer.stdout.readline().strip() == b"saved"
    save_s = time.perf_counter() - started
    timer.kill()
    timer.wait()
    seen = set()
    # A save over an existing model can take longer than the timed one, and the load can change between
    # them: after the planned fractions, wait longer and longer until a kill lands after a finished save.
    planned, longer = (0.1, 0.3, 0.5, 0.7, 0.9, 1.5), (3.0, 6.0, 12.0, 24.0)
    for attempt, fraction in enumerate((*planned, *longer)):
        if attempt >= len(planned) and "new" in seen:
            break
        old_model.save(directory)
        saver = start_saver(directory, 2)
        time.sleep(fraction * save_s)
        os.kill(saver.pid, signal.SIGKILL)
        saver.wait()
        try:
            got = [p.probabilities for p in minbert.load(directory).predict(TEXTS)]
        except MinbertError as e:  # the loader refusing a mixture would be safe, but the swap should prevent it
            pytest.fail(f"attempt {attempt}: the directory does not load after a kill: {e}")
        assert got in (old, new), f"attempt {attempt}: a mixture of two models"
        seen.add("new" if got == new else "old")
    assert "new" in seen  # the kills did not all land before the first save finished


def test_saved_files_follow_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        directory = classifier(["a", "b"], hidden_size=0, max_length=16).save(tmp_path / "model")
    finally:
        os.umask(previous)
    for name in ("heads.safetensors", "encoder/model.safetensors", "minbert.json", "encoder/tokenizer.json"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o644, name
