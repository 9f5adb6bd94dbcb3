"""How long `logpipe resolve`'s lookups take for N addresses against a name server on a
loopback port that answers each query after a delay (as a distant server would):
one at a time, against concurrent lookups, and paced by --rate.

    python3 bench/resolve_bench.py [--addresses 300] [--delay-ms 20]

Prints one table: seconds per run and lookups per second. No database: it times the
lookups (logpipe.names.lookup.look_up_all) alone.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from collections import Counter

import dns.message
import dns.rcode
import dns.reversename
import dns.rrset

from logpipe.names.lookup import Found, Settings, look_up_all


class SlowServer:
    """Answers every PTR query with a name, `delay` seconds after it arrives."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            name = query.question[0].name
            reply.answer.append(dns.rrset.from_text(name, 300, "IN", "PTR", "host.example.com."))
            timer = threading.Timer(self.delay, self.sock.sendto, (reply.to_wire(), peer))
            timer.daemon = True
            timer.start()


def timed(settings: Settings, addresses: list[str]) -> float:
    found: list[Found] = []

    async def keep(batch: list[Found]) -> None:
        found.extend(batch)

    started = time.monotonic()
    asyncio.run(look_up_all([(a, a) for a in addresses], settings, keep))
    took = time.monotonic() - started
    outcomes = Counter(f.outcome for f in found)
    assert outcomes == {"name": len(addresses)}, outcomes
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--addresses", type=int, default=300)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    server = SlowServer(args.delay_ms / 1000)
    addresses = [f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
                 for i in range(args.addresses)]
    ns = ("127.0.0.1", server.port)
    runs = [
        ("one at a time (concurrency 1, no rate bound)", Settings(ns, 2.0, 1e6, 1)),
        ("concurrency 20, no rate bound", Settings(ns, 2.0, 1e6, 20)),
        ("concurrency 20, --rate 50 (the defaults)", Settings(ns, 2.0, 50.0, 20)),
        ("concurrency 20, --rate 200", Settings(ns, 2.0, 200.0, 20)),
    ]
    print(f"{args.addresses} PTR lookups, server answers after {args.delay_ms:g} ms\n")
    print(f"| {'how':<46} | seconds | lookups/s |")
    print(f"|{'-' * 48}|--------:|----------:|")
    for label, settings in runs:
        took = timed(settings, addresses)
        print(f"| {label:<46} | {took:7.2f} | {args.addresses / took:9.0f} |")


if __name__ == "__main__":
    main()
