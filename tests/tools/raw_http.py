"""HTTP over a raw socket, for the request-head limit tests of the portal and the upload service.

An HTTP client refuses to send what these tests need (150 headers, a 200 MB header, a head that never ends),
so they write the request bytes themselves and read only the status line of the answer."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


def address(url: str) -> tuple[str, int]:
    """(host, port) of ``http://host:port``."""
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def status_line(sock: socket.socket) -> str:
    """The first line the server answered ('' when it reset the connection without one)."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data.split(b"\r\n", 1)[0].decode("latin-1")


def request_with_headers(url: str, path: str, headers: list[tuple[str, str]]) -> str:
    """The status line of ``GET path`` sent with ``headers``."""
    with socket.create_connection(address(url), timeout=10) as sock:
        head = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
        sock.sendall((head + "\r\n").encode("ascii"))
        return status_line(sock)


@dataclass(frozen=True)
class HugeHeader:
    """How the server met a huge header: its answer, and whether (and when) it cut the connection first."""

    answer: str                   # the status line ('' when there was none)
    seconds: float                # from connecting to the answer
    cut_after_s: float | None     # the server closed the connection while the header was being sent


def send_huge_header(url: str, path: str, megabytes: int) -> HugeHeader:
    """``GET path`` with one header of ``megabytes`` MiB, sent as fast as the server takes it."""
    started = time.monotonic()
    cut_after_s = None
    with socket.create_connection(address(url), timeout=30) as sock:
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".encode())
            chunk = b"a" * (1 << 20)
            for _ in range(megabytes):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            cut_after_s = time.monotonic() - started
        answer = status_line(sock)
    return HugeHeader(answer, time.monotonic() - started, cut_after_s)
