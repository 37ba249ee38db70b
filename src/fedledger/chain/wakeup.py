"""When a node should read the chain again: pushed events, with the poll timer as the fallback.

A node reads the job's state and events from the chain (those reads stay the only source of
truth) and, when there is nothing to do, waits before reading again. Polling every
`poll_seconds` makes every hand-off between nodes (a commit closing the phase, an aggregate
finalising the round) wait up to one poll period per node, and costs each node a full pass of
reads per period. A wake-up source removes the waiting: it tells the loop to read *now*,
because the coordinator emitted an event (or a block was mined). Nothing it delivers is acted
on; a missed, duplicated or late wake-up costs only latency, never correctness, because

- a pushed notification that arrives while the node is busy leaves the event set, so the next
  wait returns at once (at worst one redundant pass, never a missed one);
- while a push channel is live the node still reads every `recheck_seconds` (deadlines expire
  with no event; an event between the node's read and the subscription is caught this way and
  by the wake-up each (re)subscription gives);
- while it is not live (never opened, dropped, the node restarted) the node polls every
  `poll_seconds`, exactly as without push, and the channel is re-opened in the background.

Three sources, by what the node's endpoint offers: `WsWakeup` (`eth_subscribe` over WebSocket:
a thread holds the connection), `FilterWakeup` (an HTTP log filter, `eth_newFilter` /
`eth_getFilterChanges`: still a poll, but one cheap call instead of a pass of reads) and
`PollWakeup` (the timer alone: `events = "poll"`, the in-process chain).
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException
from websockets.sync.client import ClientConnection, connect

__all__ = ["FilterWakeup", "PollWakeup", "PushWakeup", "WsWakeup", "ws_url_for"]

log = logging.getLogger("fedledger.events")

#: longest pause between attempts to re-open a dropped push channel
MAX_RETRY_S = 10.0


def ws_url_for(rpc_url: str) -> str:
    """The WebSocket URL of a JSON-RPC endpoint that serves both on one port (anvil does)."""
    for http, ws in (("https://", "wss://"), ("http://", "ws://")):
        if rpc_url.startswith(http):
            return ws + rpc_url[len(http) :]
    return rpc_url


class PollWakeup:
    """The timer alone: wait `poll_seconds` between passes (what every source falls back to)."""

    def __init__(self, poll_seconds: float, recheck_seconds: float | None = None) -> None:
        self.poll_seconds = poll_seconds
        self.recheck_seconds = max(recheck_seconds or poll_seconds, poll_seconds)
        self.pushed = threading.Event()
        self.closed = threading.Event()
        self.wakeups = 0  # pushed wake-ups delivered (tests and logs)

    @property
    def live(self) -> bool:
        """Whether pushed notifications are arriving now; False: the timer is all there is."""
        return False

    def wait(self) -> bool:
        """Blocks until a push or the timer; True when a push woke it (the timer's period
        follows `live`: `recheck_seconds` while pushes arrive, `poll_seconds` otherwise)."""
        woke = self.pushed.wait(self.recheck_seconds if self.live else self.poll_seconds)
        self.pushed.clear()
        return woke

    def notify(self) -> None:
        """A push arrived: the waiting pass starts now."""
        self.wakeups += 1
        self.pushed.set()

    def close(self) -> None:
        self.closed.set()


class WsWakeup(PollWakeup):
    """`eth_subscribe` over a WebSocket, held by a background thread that re-subscribes when dropped.

    `params` is the subscription, e.g. `["logs", {"address": coordinator}]` or `["newHeads"]`.
    If the endpoint answers the handshake but is not a WebSocket server (a plain HTTP node), the
    thread stops and `rejected` is set: the caller moves to HTTP filters.
    """

    def __init__(
        self,
        url: str,
        params: list[Any],
        poll_seconds: float,
        recheck_seconds: float,
        *,
        ca_bundle: str | None = None,
        open_timeout: float = 5.0,
    ) -> None:
        super().__init__(poll_seconds, recheck_seconds)
        self.url, self.params, self.open_timeout = url, params, open_timeout
        self.ssl = ssl.create_default_context(cafile=ca_bundle) if url.startswith("wss://") else None
        self.rejected = threading.Event()
        self.subscribed = 0  # successful subscriptions, the first included
        self._live = False
        self._ws: ClientConnection | None = None
        self._thread = threading.Thread(target=self._run, name="fedledger-events", daemon=True)
        self._thread.start()

    @property
    def live(self) -> bool:
        return self._live

    def close(self) -> None:
        super().close()
        ws = self._ws
        if ws is not None:
            ws.close()

    def _run(self) -> None:
        delay = min(self.poll_seconds, 1.0)
        while not self.closed.is_set():
            try:
                self._subscribe_and_listen()
                delay = min(self.poll_seconds, 1.0)
            except (InvalidHandshake, InvalidURI) as exc:
                log.info("no WebSocket at %s (%s): reading events through HTTP filters", self.url, exc)
                self.rejected.set()
                return
            except (OSError, TimeoutError, WebSocketException, ValueError, KeyError) as exc:
                # closing it ourselves (the node is exiting) is no drop: a warning then would
                # be a second line beside the one that says why the node stopped
                if self._live and not self.closed.is_set():
                    log.warning(
                        "event subscription at %s dropped (%s); polling every %.1f s until it is back",
                        self.url,
                        type(exc).__name__,
                        self.poll_seconds,
                    )
            finally:
                self._live, self._ws = False, None
            self.closed.wait(delay)
            delay = min(delay * 2, MAX_RETRY_S)

    def _subscribe_and_listen(self) -> None:
        with connect(
            self.url,
            ssl=self.ssl,
            proxy=None,
            open_timeout=self.open_timeout,
            close_timeout=1,
            compression=None,
        ) as ws:
            self._ws = ws
            if self.closed.is_set():
                return
            ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe", "params": self.params}))
            reply = json.loads(ws.recv(timeout=self.open_timeout))
            if "result" not in reply:
                raise ValueError(f"eth_subscribe refused: {reply.get('error')}")
            self._live = True
            self.subscribed += 1
            if self.subscribed > 1:
                log.info("event subscription at %s is back", self.url)
            self.notify()  # whatever happened while it was down (or before it opened): read now
            for message in ws:
                if '"eth_subscription"' in str(message):
                    self.notify()


class FilterWakeup(PollWakeup):
    """An HTTP log filter: `changes()` is one cheap call, polled every `poll_seconds` while the
    node waits; a pass of reads only follows when it reports something (or `recheck_seconds`).

    `new_filter()` makes a filter and returns its id; `changes(id)` returns how many entries
    arrived since the last call. Either raising (the node restarted and forgot the filter, or is
    unreachable) drops back to the plain timer, and the next wait makes a new filter.
    """

    def __init__(
        self,
        new_filter: Callable[[], str],
        changes: Callable[[str], int],
        poll_seconds: float,
        recheck_seconds: float,
        *,
        errors: tuple[type[Exception], ...] = (Exception,),
    ) -> None:
        super().__init__(poll_seconds, recheck_seconds)
        self.new_filter, self.changes, self.errors = new_filter, changes, errors
        self.filter_id: str | None = None

    @property
    def live(self) -> bool:
        return self.filter_id is not None

    def wait(self) -> bool:
        try:
            if self.filter_id is None:
                self.filter_id = self.new_filter()
                return True  # events before the filter existed: read now
            deadline = time.monotonic() + self.recheck_seconds
            while time.monotonic() < deadline and not self.closed.is_set():
                if self.changes(self.filter_id):
                    self.notify()
                    self.pushed.clear()
                    return True
                time.sleep(self.poll_seconds)
            return False
        except self.errors as exc:
            if self.filter_id is not None:
                log.warning(
                    "event filter lost (%s); polling every %.1f s", type(exc).__name__, self.poll_seconds
                )
            self.filter_id = None
            return super().wait()


class PushWakeup(PollWakeup):
    """WebSocket first; HTTP filters (from `filters()`) if the endpoint turns out to have none."""

    def __init__(self, ws: WsWakeup, filters: Callable[[], FilterWakeup]) -> None:
        super().__init__(ws.poll_seconds, ws.recheck_seconds)
        self.ws, self.filters = ws, filters
        self.current: PollWakeup = ws

    @property
    def live(self) -> bool:
        return self.current.live

    def wait(self) -> bool:
        if self.current is self.ws and self.ws.rejected.is_set():
            self.current = self.filters()
        return self.current.wait()

    def close(self) -> None:
        self.ws.close()
        self.current.close()
