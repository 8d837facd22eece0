#!/usr/bin/env python3
"""One asyncio process that gives every emulated BMC its own port and a real BMC's latency.

It listens on a block of loopback ports, one per BMC. Each request waits
``latency`` seconds (like a BMC answering in ~0.2 s), then is answered from the
fleet emulator behind it, which learns the BMC from the ``X-Onestack-Bmc-Port``
header. GET answers are cached per (port, path) after the first fetch, so that
a timed run measures the client, not the single-threaded emulator: warm the
cache with an untimed pass first. ``GET /__proxy/latency?ms=N`` (any port) sets
the latency; ``GET /__proxy/stats`` returns request counts.

Usage: latency_proxy.py --first-port 18000 --count 1000 --backend 19000[,19001] --ms 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import parse_qs, urlsplit

STATE = {"latency": 0.2, "requests": 0, "backend": 0, "cache_hits": 0}
CACHE: dict[tuple[int, str], bytes] = {}
DROP = {b"connection", b"keep-alive", b"transfer-encoding", b"date", b"server"}


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return lines[0], head, body


IDLE: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}


async def _backend(port: int, backends: list[int], head: bytes, body: bytes) -> bytes:
    """Forward one request over a pooled keep-alive connection; return the raw response.

    Pooling matters: a new connection per request would run the machine out of
    ephemeral ports (TIME_WAIT) within one 1,000-node pass.
    """
    backend = backends[port % len(backends)]
    pool = IDLE.setdefault(backend, [])
    reader, writer = pool.pop() if pool else await asyncio.open_connection("127.0.0.1", backend)
    lines = [line for line in head.split(b"\r\n") if line and not line.lower().startswith(
        (b"connection:", b"keep-alive:"))]
    lines.append(f"X-Onestack-Bmc-Port: {port}".encode())
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    raw, reusable = await _read_response(reader)
    if reusable:
        pool.append((reader, writer))
    else:
        writer.close()
    STATE["backend"] += 1
    return _keep_alive(raw)


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    length, close = None, head.startswith(b"HTTP/1.0")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        elif name.strip().lower() == b"connection" and b"close" in value.lower():
            close = True
    if length is None:
        return head + await reader.read(), False
    return head + await reader.readexactly(length), not close


def _keep_alive(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    kept = [lines[0].replace(b"HTTP/1.0", b"HTTP/1.1")]
    kept += [h for h in lines[1:] if h.split(b":", 1)[0].strip().lower() not in DROP
             and not h.lower().startswith(b"content-length")]
    kept += [f"Content-Length: {len(body)}".encode(), b"Connection: keep-alive"]
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


def _control(target: str) -> bytes:
    url = urlsplit(target)
    if url.path == "/__proxy/latency":
        STATE["latency"] = int(parse_qs(url.query)["ms"][0]) / 1000
    body = json.dumps({**STATE, "cached": len(CACHE)}).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _answer(port: int, backends: list[int], request: tuple[bytes, bytes, bytes]) -> bytes:
    first, head, body = request
    method, target, _ = first.decode().split(" ", 2)
    if target.startswith("/__proxy/"):
        return _control(target)
    STATE["requests"] += 1
    await asyncio.sleep(STATE["latency"])
    key = (port, target)
    if method == "GET" and key in CACHE:
        STATE["cache_hits"] += 1
        return CACHE[key]
    raw = await _backend(port, backends, head, body)
    if method == "GET" and raw.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        CACHE[key] = raw
    return raw


def _handler(port: int, backends: list[int]):  # type: ignore[no-untyped-def]
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await _read_request(reader)) is not None:
                writer.write(await _answer(port, backends, request))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return handle


async def serve(first_port: int, count: int, backends: list[int]) -> None:
    servers = [await asyncio.start_server(_handler(p, backends), "127.0.0.1", p, backlog=64)
               for p in range(first_port, first_port + count)]
    print(f"READY {len(servers)} ports", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main() -> None:
    parser = argparse.ArgumentParser(description="per-BMC latency proxy")
    parser.add_argument("--first-port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--backend", required=True, help="emulator port(s), comma-separated")
    parser.add_argument("--ms", type=int, default=200)
    args = parser.parse_args()
    STATE["latency"] = args.ms / 1000
    asyncio.run(serve(args.first_port, args.count, [int(p) for p in args.backend.split(",")]))


if __name__ == "__main__":
    main()
