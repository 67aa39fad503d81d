"""A one-line-request, one-line-answer server on a local Unix socket (0600), on a daemon thread:
what the scripted portal and the scripted power-cut rig served beside a token have in common."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Protocol


class LineService(Protocol):
    def handle(self, line: str) -> str: ...


class LineServer:
    """Serve `service.handle` on `path` until `close()`; only the socket's owner may connect."""

    def __init__(self, path: Path, service: LineService, name: str, log: logging.Logger, max_line: int) -> None:
        self.path = path
        self._max_line = max_line  # a longer request is refused, never buffered without bound
        self.service = service
        self._name = name
        self._log = log
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()  # a stale socket of an earlier emulator
        self._sock.bind(str(path))
        os.chmod(path, 0o600)  # it acts on this token: its owner only
        self._sock.listen(4)
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)

    def start(self) -> LineServer:
        self._thread.start()
        return self

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            with conn, conn.makefile("rwb") as stream:
                for raw in stream:
                    answer = self._answer(raw)
                    self._log.info("%s: %s -> %s", self._name, raw.decode("utf-8", "replace").split(" ")[0].strip(), answer)
                    stream.write(answer.encode() + b"\n")
                    stream.flush()

    def _answer(self, raw: bytes) -> str:
        if len(raw) > self._max_line:
            return "error: request too long"
        try:
            return self.service.handle(raw.decode("utf-8", "replace"))
        except Exception as exc:  # the server must outlive one bad request
            self._log.exception("%s request failed", self._name)
            return f"error: {exc}"
