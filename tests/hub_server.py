"""A local HTTP server that speaks the part of the Hugging Face Hub's file protocol that `huggingface_hub`'s
`hf_hub_download` uses (HEAD and GET of /{repo}/resolve/{revision}/{file}, with the X-Repo-Commit, ETag and
X-Error-Code headers; an empty folder listing for transformers' template lookup), so the Hub path is tested through the real client without the real Hub."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


@dataclass
class Repo:
    revisions: dict[str, dict[str, bytes]]  # revision (branch, tag) -> {path: content}
    gated: bool = False
    truncated: set[str] = field(default_factory=set)  # files sent cut in half (a broken proxy, a dropped link)

    def commit(self, revision: str) -> str:
        return hashlib.sha1(f"{id(self)}:{revision}".encode()).hexdigest()

    def files(self, revision: str) -> dict[str, bytes] | None:
        if revision in self.revisions:
            return self.revisions[revision]
        for name, files in self.revisions.items():  # a revision given as its commit hash
            if self.commit(name) == revision:
                return files
        return None


def folder_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class HubServer:
    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.gets: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                server.answer(self, body=False)

            def do_GET(self) -> None:
                server.answer(self, body=True)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path).lstrip("/")
        if path.startswith("api/models/") and "/tree/" in path:  # a folder listing (transformers asks for one)
            return self.listing(handler, body)
        repo_id, marker, rest = path.partition("/resolve/")
        revision, _, file = rest.partition("/")
        repo = self.repos.get(repo_id)
        if not marker or repo is None:
            return self.error(handler, 404, "RepoNotFound", "Repository not found")
        if repo.gated:
            return self.error(handler, 403, "GatedRepo", "Access to this model is restricted")
        files = repo.files(revision)
        if files is None:
            return self.error(handler, 404, "RevisionNotFound", "Invalid rev id")
        if file not in files:
            return self.error(handler, 404, "EntryNotFound", "Entry not found")
        content = files[file]
        sent = content[: len(content) // 2] if body and file in repo.truncated else content
        handler.send_response(200)
        handler.send_header("X-Repo-Commit", repo.commit(revision if revision in repo.revisions else "main"))
        handler.send_header("ETag", f'"{hashlib.sha256(content).hexdigest()}"')
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(sent)))
        handler.end_headers()
        if body:
            self.gets[f"{repo_id}/{file}"] += 1
            handler.wfile.write(sent)

    @staticmethod
    def listing(handler: BaseHTTPRequestHandler, body: bool) -> None:
        """An empty folder: the only listing asked for here is of folders these repositories do not have."""
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        if body:
            handler.wfile.write(b"[]")

    @staticmethod
    def error(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        data = f'{{"error": "{message}"}}'.encode()
        handler.send_response(status)
        handler.send_header("X-Error-Code", code)
        handler.send_header("X-Error-Message", message)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
