"""A silent network, for real: a TCP forwarder to PostgreSQL on a free loopback port,
and iptables rules that drop every packet to or from chosen ports, as a host that died
or a NAT that forgot the connection would (nothing answers, nothing is refused).

Only connections made through the forwarder are touched: PostgreSQL's own port and
every other test's connections go on as before. Needs root and iptables (.ci/run
installs it).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator

POSTGRES = ("127.0.0.1", 5432)
# Names this process's rules, so that removing them removes exactly those.
RULE_COMMENT = f"logpipe-test-{os.getpid()}"


class Forwarder:
    """Accepts on 127.0.0.1:`port` and copies bytes both ways to PostgreSQL, one pair
    of threads per connection. `upstream_ports()` are the local ports of its own
    connections to PostgreSQL, which PostgreSQL sees as its clients' ports."""

    def __init__(self, target: tuple[str, int] = POSTGRES) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._upstream_ports: list[int] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def upstream_ports(self) -> list[int]:
        with self._lock:
            return list(self._upstream_ports)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
                self._upstream_ports.append(server.getsockname()[1])
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        # One end is gone: the other end learns it, as it would without a forwarder.
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def iptables(*args: str) -> None:
    subprocess.run(["iptables", "-w", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def forwarder() -> Iterator[Forwarder]:
    fwd = Forwarder()
    try:
        yield fwd
    finally:
        fwd.close()


@contextlib.contextmanager
def silenced(ports: Iterable[int]) -> Iterator[Callable[[], None]]:
    """Drop every packet arriving on lo to or from `ports` until the block ends, or
    until the function it yields is called. The rules carry this process's comment
    and are removed whatever happens."""
    rules = [
        ["-i", "lo", "-p", "tcp", f"--{way}", str(port),
         "-m", "comment", "--comment", RULE_COMMENT, "-j", "DROP"]
        for port in ports
        for way in ("dport", "sport")
    ]
    added: list[list[str]] = []

    def lift() -> None:
        failed: list[subprocess.SubprocessError] = []
        while added:
            try:
                iptables("-D", "INPUT", *added.pop())
            except subprocess.SubprocessError as exc:  # remove the others all the same
                failed.append(exc)
        if failed:
            raise failed[0]

    try:
        for rule in rules:
            iptables("-I", "INPUT", *rule)
            added.append(rule)
        yield lift
    finally:
        lift()


def rules_left() -> list[str]:
    """This process's rules still in the INPUT chain (none, once every Silence is over)."""
    listing = subprocess.run(["iptables", "-w", "-S", "INPUT"], check=True,
                             capture_output=True, text=True, timeout=30).stdout
    return [line for line in listing.splitlines() if RULE_COMMENT in line]
