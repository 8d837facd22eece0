"""A metadata service for one connection on stdin/stdout (QEMU's slirp guestfwd cmd:).

Usage: python3 metadata_inetd.py ROOT — answers ``GET /path`` with the file ROOT/path,
404 otherwise, as nova's metadata API would for the few paths the test image reads.
"""

from __future__ import annotations

import sys
from pathlib import Path


def answer(root: Path, request_line: str) -> bytes:
    """The HTTP response to one request line."""
    parts = request_line.split()
    target = (root / parts[1].lstrip("/")).resolve() if len(parts) >= 2 else root
    if parts[:1] != ["GET"] or root.resolve() not in target.parents or not target.is_file():
        return b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    body = target.read_bytes()
    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    return head.encode() + body


def main() -> None:
    request_line = sys.stdin.buffer.readline().decode(errors="replace")
    while sys.stdin.buffer.readline().strip():
        pass  # headers
    sys.stdout.buffer.write(answer(Path(sys.argv[1]), request_line))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
