"""The wake-up sources' fallback logic (`chain/wakeup.py`), against fakes: a fake filter
endpoint and a fake `eth_subscribe` WebSocket server that can drop its connections."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from fedledger.chain.wakeup import FilterWakeup, PollWakeup, PushWakeup, WsWakeup, ws_url_for
from fedledger.errors import ChainError


def eventually(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_ws_url_for_http_endpoints() -> None:
    assert ws_url_for("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert ws_url_for("https://rpc.example/x") == "wss://rpc.example/x"


def test_poll_timer_waits_poll_seconds() -> None:
    w = PollWakeup(0.05)
    t0 = time.monotonic()
    assert w.wait() is False
    assert 0.04 < time.monotonic() - t0 < 1.0


class FakeFilters:
    """eth_newFilter / eth_getFilterChanges, with a switch that makes the node forget filters."""

    def __init__(self) -> None:
        self.made = 0
        self.pending = 0
        self.down = False

    def new_filter(self) -> str:
        if self.down:
            raise ChainError("unreachable")
        self.made += 1
        return f"0x{self.made}"

    def changes(self, filter_id: str) -> int:
        if self.down or filter_id != f"0x{self.made}":
            raise ChainError("filter not found")
        n, self.pending = self.pending, 0
        return n


def test_filter_wakes_on_changes_and_falls_back_to_the_timer_when_lost() -> None:
    fake = FakeFilters()
    w = FilterWakeup(fake.new_filter, fake.changes, 0.01, 0.2, errors=(ChainError,))
    assert w.wait() is True and w.live  # the filter is made: read once for what came before
    t0 = time.monotonic()
    assert w.wait() is False  # nothing for recheck_seconds: the node reads anyway
    assert time.monotonic() - t0 >= 0.2
    fake.pending = 2
    t0 = time.monotonic()
    assert w.wait() is True and time.monotonic() - t0 < 0.15
    fake.down = True  # the node restarted (forgot the filter) or is unreachable
    assert w.wait() is False and not w.live  # plain timer
    assert w.wait() is False and not w.live  # still down: still the timer
    fake.down = False
    assert w.wait() is True and w.live and fake.made == 2  # a new filter


class FakeSubscriptions:
    """A WebSocket server answering eth_subscribe, that can push a notification or drop everyone."""

    def __init__(self) -> None:
        self.conns: list[ServerConnection] = []
        self.lock = threading.Lock()
        self.server: Server = serve(self.handle, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, ws: ServerConnection) -> None:
        for message in ws:
            req = json.loads(message)
            assert req["method"] == "eth_subscribe" and req["params"][0] == "logs"
            # listed before the reply: once the client is live, a push must reach it
            with self.lock:
                self.conns.append(ws)
            ws.send(json.dumps({"jsonrpc": "2.0", "id": req["id"], "result": "0xabc"}))

    def push(self) -> None:
        note = {"jsonrpc": "2.0", "method": "eth_subscription", "params": {"subscription": "0xabc"}}
        with self.lock:
            for ws in self.conns:
                ws.send(json.dumps(note))

    def drop(self) -> None:
        with self.lock:
            for ws in self.conns:
                ws.close()
            self.conns.clear()

    def abort(self) -> None:
        """Ends every connection with no close frame, as anvil did to a node that was exiting."""
        with self.lock:
            for ws in self.conns:
                ws.socket.shutdown(socket.SHUT_RDWR)
            self.conns.clear()


@pytest.fixture
def subs() -> Iterator[FakeSubscriptions]:
    s = FakeSubscriptions()
    yield s
    s.server.shutdown()


def test_ws_wakes_at_once_falls_back_when_dropped_and_resubscribes(subs: FakeSubscriptions) -> None:
    w = WsWakeup(f"ws://127.0.0.1:{subs.port}", ["logs", {"address": "0x0"}], 0.05, 5.0)
    try:
        eventually(lambda: w.live)
        assert w.wait() is True  # the subscription's own wake-up: read what came before it
        subs.push()
        t0 = time.monotonic()
        assert w.wait() is True and time.monotonic() - t0 < 2.5  # not the 5 s recheck (loose: a loaded host)
        subs.drop()
        eventually(lambda: not w.live)
        w.pushed.clear()
        t0 = time.monotonic()
        woke = w.wait()
        assert time.monotonic() - t0 < 2.5  # polling: poll_seconds, not the 5 s recheck
        # woken only if the background re-subscription already came back (its own wake-up):
        # a race the host's load decides (seen in CI)
        assert woke is False or w.subscribed == 2
        eventually(lambda: w.live and w.subscribed == 2)  # re-subscribed in the background
        subs.push()
        assert w.wait() is True
    finally:
        w.close()


def test_no_websocket_server_moves_push_to_http_filters() -> None:
    import http.server

    class Plain(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # a JSON-RPC node that only speaks HTTP
            self.send_response(405)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Plain)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    fake = FakeFilters()
    try:
        ws = WsWakeup(f"ws://127.0.0.1:{httpd.server_address[1]}", ["logs", {}], 0.01, 0.1)
        push = PushWakeup(ws, lambda: FilterWakeup(fake.new_filter, fake.changes, 0.01, 0.1))
        eventually(ws.rejected.is_set)
        assert push.wait() is True and isinstance(push.current, FilterWakeup) and push.live
        push.close()
    finally:
        httpd.shutdown()


def test_closing_a_live_subscription_is_not_reported_as_a_drop(
    subs: FakeSubscriptions, caplog: pytest.LogCaptureFixture
) -> None:
    """A node that exits with one line (a refused join, say) closes its subscription: no warning."""
    w = WsWakeup(f"ws://127.0.0.1:{subs.port}", ["logs", {"address": "0x0"}], 0.05, 5.0)
    eventually(lambda: w.live)
    with caplog.at_level(logging.INFO, logger="fedledger.events"):
        w.closed.set()  # what close() does first; the endpoint then cuts the socket
        subs.abort()
        w._thread.join(5)
    w.close()
    assert not w._thread.is_alive()
    ours = [r for r in caplog.records if r.name == "fedledger.events" and r.levelno >= logging.WARNING]
    assert not ours, caplog.text
