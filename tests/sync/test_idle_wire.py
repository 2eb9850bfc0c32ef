"""IDLE at the wire: responses that arrive together with the server's `+`, or in pieces.

A real Dovecot sends `+ idling` and an EXISTS in one packet when mail lands between
the IDLE command and its answer (seen under load: `reports fetch` then spun at 90 %
CPU and never stored the report). A scripted server on loopback sends exactly those
packets, which a real server only does by chance.
"""

from __future__ import annotations

import select
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from mailctl.sync.imapwire import Connection


class Scripted:
    """Greets with IDLE in its capabilities; answers the IDLE command with `packets`."""

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = packets
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.later = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(b"* OK [CAPABILITY IMAP4rev1 IDLE] scripted\r\n")
            line = conn.makefile("rb").readline()
            assert line.split()[1].upper() == b"IDLE", line
            conn.sendall(self.packets[0])
            for packet in self.packets[1:]:
                self.later.wait(10)
                conn.sendall(packet)
            self.later.clear()
            self.later.wait(10)


@pytest.fixture
def scripted() -> Iterator[Callable[[list[bytes]], Scripted]]:
    servers: list[Scripted] = []

    def make(packets: list[bytes]) -> Scripted:
        s = Scripted(packets)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.later.set()
        s.listener.close()


def test_exists_in_the_same_packet_as_the_plus_is_news_at_once(
        scripted: Callable[[list[bytes]], Scripted]) -> None:
    server = scripted([b"+ idling\r\n* 3 EXISTS\r\n"])
    conn = Connection("127.0.0.1", server.port, timeout=5)
    conn.idle_start()
    assert conn.new_mail
    assert not conn.buffered()  # nothing left that select() could not see


def test_a_response_in_pieces_waits_for_select_then_is_read(
        scripted: Callable[[list[bytes]], Scripted]) -> None:
    server = scripted([b"+ idling\r\n* 4 EX", b"ISTS\r\n"])
    conn = Connection("127.0.0.1", server.port, timeout=5)
    conn.idle_start()
    assert not conn.new_mail
    # half a line is not "buffered": a loop that saw it as such would never select()
    assert not conn.buffered()
    assert not select.select([conn.sock], [], [], 0.2)[0]
    server.later.set()
    assert select.select([conn.sock], [], [], 5)[0]
    assert conn.idle_read()
