"""`minbert predict` at a terminal with no texts says what it waits for instead of waiting in silence."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.helpers import classifier


def test_predict_at_a_terminal_says_it_reads_standard_input(tmp_path):
    classifier(["alarm", "music"], max_length=16).save(tmp_path / "model")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "minbert", "predict", str(tmp_path / "model")],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.write(controller, b"wake me up at seven\n\x04")  # a line, then Ctrl-D
    out, err = process.communicate(timeout=120)
    os.close(controller)
    os.close(terminal)
    assert "reading texts from standard input, one per line; end with Ctrl-D" in err
    assert process.returncode == 0 and '"label"' in out


def test_predict_from_a_pipe_prints_no_hint(tmp_path):
    classifier(["alarm", "music"], max_length=16).save(tmp_path / "model")
    done = subprocess.run(
        [sys.executable, "-m", "minbert", "predict", str(tmp_path / "model")],
        input="play some jazz\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "reading texts" not in done.stderr
