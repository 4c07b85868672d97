"""A userspace TCP proxy that delays each direction by a fixed time (this kernel has no netem).

Models a WAN / ZeroTier link: 25 ms each way = 50 ms round trip. Every chunk
read from one side is written to the other side `delay` seconds later, in
order, so bandwidth is not limited, only latency added. Nagle is off on both
legs so the proxy itself adds no extra stall.

    python bench/delay_proxy.py --delay 0.025 LISTEN_ADDR:PORT=TARGET_ADDR:PORT ...
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                try:
                    writer.write_eof()
                except (OSError, RuntimeError):
                    pass
                return
            writer.write(data)
            try:
                await writer.drain()
            except OSError:
                return

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data or None))
            if not data:
                break
    except OSError:
        await queue.put((loop.time(), None))
    await sender


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def handler(target: tuple[str, int], delay: float):
    async def handle(client_reader, client_writer) -> None:
        _nodelay(client_writer)
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        _nodelay(server_writer)
        await asyncio.gather(_pump(client_reader, server_writer, delay), _pump(server_reader, client_writer, delay))
        for w in (client_writer, server_writer):
            w.close()

    return handle


def _addr(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def main(mappings: list[str], delay: float) -> None:
    servers = []
    for mapping in mappings:
        listen, target = mapping.split("=")
        servers.append(await asyncio.start_server(handler(_addr(target), delay), *_addr(listen), backlog=512))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.025, help="seconds added in EACH direction")
    parser.add_argument("mappings", nargs="+", help="LISTEN_ADDR:PORT=TARGET_ADDR:PORT")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.mappings, args.delay))
    except KeyboardInterrupt:
        sys.exit(0)
