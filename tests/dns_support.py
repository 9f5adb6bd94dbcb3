"""Name servers for the resolve and domains tests, on loopback ports of their own (the
machine's resolver is never touched):

- Dnsmasq: Debian's dnsmasq as a child process, answering PTR queries from a hosts
  file and NXDOMAIN for every other reverse name, logging each query so that a test
  can count what reached it;
- Responder: a small UDP server on dnspython, for what dnsmasq cannot be told to do:
  answer some addresses, stay silent or SERVFAIL for others;
- silent_server(): a UDP port nobody reads, a name server that never answers.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import dns.flags
import dns.message
import dns.name
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset
from conftest import COMMAND_TIMEOUT, logpipe_cmd, wait_for

DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def ask(nameserver: str, address: str) -> str | None:
    """The PTR name of `address` at nameserver (IP:PORT), or None; a test's own query,
    e.g. a last one: a server that answers in order has seen every query before it."""
    host, port = nameserver.rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(host, int(port))]
    resolver.lifetime = 5
    try:
        return str(resolver.resolve_address(address)[0].target)
    except dns.resolver.NXDOMAIN:
        return None


def settled_counts(server: Dnsmasq | Responder, sentinel: str = "192.0.2.250",
                   ) -> dict[str, int]:
    """The PTR queries `server` has seen (but the sentinel), once it has seen one more
    query of the test's own for `sentinel`: it takes queries in order, so every query
    sent before it is counted by then."""
    before = server.ptr_queries()[sentinel]
    ask(server.nameserver, sentinel)
    wait_for(lambda: server.ptr_queries()[sentinel] > before, timeout=10,
             what=f"the server to see the query for {sentinel}")
    return {a: n for a, n in server.ptr_queries().items() if a != sentinel}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dnsmasq:
    """dnsmasq serving `names` (address -> host name) on 127.0.0.1:port."""

    def __init__(self, directory: Path, names: Mapping[str, str]) -> None:
        self.port = free_udp_port()
        hosts = directory / "hosts"
        hosts.write_text("".join(f"{a} {n}\n" for a, n in names.items()))
        self.log = directory / "dnsmasq.log"
        self.proc = subprocess.Popen(
            [DNSMASQ, "--no-daemon", "--conf-file=/dev/null", f"--port={self.port}",
             "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
             "--no-hosts", "--no-poll", f"--addn-hosts={hosts}",
             # reverse names it has no record of: NXDOMAIN, never asked upstream
             "--local=/in-addr.arpa/", "--local=/ip6.arpa/",
             "--log-queries", "--log-facility=-", "--pid-file=",
             f"--user={pwd.getpwuid(os.getuid()).pw_name}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - the child holds it
        )
        wait_for(lambda: "started" in self.log_text() or self.proc.poll() is not None,
                 timeout=10, what="dnsmasq to start")
        assert self.proc.poll() is None, f"dnsmasq did not start: {self.log_text()}"

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def ptr_queries(self) -> Counter[str]:
        """How many PTR queries reached it, per address."""
        counts: Counter[str] = Counter()
        for line in self.log_text().splitlines():
            if "query[PTR]" in line:
                name = line.split("query[PTR] ", 1)[1].split()[0]
                counts[dns.reversename.to_address(dns.name.from_text(name))] += 1
        return counts

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@contextlib.contextmanager
def dnsmasq(directory: Path, names: Mapping[str, str]) -> Iterator[Dnsmasq]:
    server = Dnsmasq(directory, names)
    try:
        yield server
    finally:
        server.stop()


class Responder:
    """A UDP name server on 127.0.0.1: PTR records for `names`, no answer at all for
    the addresses in `silent`, SERVFAIL for those in `servfail`, NXDOMAIN otherwise."""

    def __init__(self, names: Mapping[str, str], silent: frozenset[str] = frozenset(),
                 servfail: frozenset[str] = frozenset()) -> None:
        self.names, self.silent, self.servfail = dict(names), silent, servfail
        self.queries: Counter[str] = Counter()
        self.arrivals: list[float] = []  # time.monotonic() of each query's arrival
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:  # closed: stop
                return
            if not data:  # shut down: stop
                return
            self.arrivals.append(time.monotonic())
            query = dns.message.from_wire(data)
            question = query.question[0]
            address = dns.reversename.to_address(question.name)
            self.queries[address] += 1
            if address in self.silent:
                continue
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            if address in self.servfail:
                reply.set_rcode(dns.rcode.SERVFAIL)
            elif address in self.names and question.rdtype == dns.rdatatype.PTR:
                reply.answer.append(dns.rrset.from_text(
                    question.name, 300, "IN", "PTR", self.names[address] + "."))
            else:
                reply.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(reply.to_wire(), peer)

    def ptr_queries(self) -> Counter[str]:
        """How many queries reached it, per address."""
        return Counter(self.queries)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread's recvfrom
        self.thread.join(timeout=10)
        self.sock.close()


@contextlib.contextmanager
def responder(names: Mapping[str, str], silent: frozenset[str] = frozenset(),
              servfail: frozenset[str] = frozenset()) -> Iterator[Responder]:
    server = Responder(names, silent, servfail)
    try:
        yield server
    finally:
        server.close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """IP:PORT of a UDP socket that receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# -- client rows, loaded with the real `logpipe load` -----------------------------------


def load_clients(dsn: str, directory: Path,
                 requests: Sequence[tuple[str, str, str]], vhost: str = "www.example.com",
                 ) -> None:
    """Load one vhost_combined line per (remote_host, user agent, time as Apache logs it:
    '08/Oct/2024:10:00:00 +0000') with `logpipe load` (a bot's agent is classified)."""
    log = directory / f"clients-{uuid.uuid4().hex[:8]}.log"
    log.write_text("".join(
        f'{vhost}:443 {host} - - [{when}] "GET /page HTTP/1.1" 200 100 "-" "{agent}"\n'
        for host, agent, when in requests))
    proc = subprocess.run(logpipe_cmd("load", "--dsn", dsn, "--format", "vhost_combined",
                                      str(log)),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr


def run_resolve(dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`logpipe resolve` over the test logs' days (October 2024)."""
    proc = subprocess.run(logpipe_cmd("resolve", "--dsn", dsn, "--since", "2024-10-01", *args),
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc
