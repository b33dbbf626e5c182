"""An embedded MQTT broker (amqtt, MQTT 3.1.1) for the demo and the tests.

    python -m uma_demo.broker --port 1884 [--state-file instance/mqtt_broker.db]

    with EmbeddedBroker(port=free_port()) as broker:  # background thread, for tests
        ...broker.url...

Stands in for Mosquitto on one laptop. Without a state file it keeps everything in memory: a
stop loses retained messages and sessions, as a Mosquitto without persistence would. With
one, persistent sessions, what they are owed and retained messages survive a restart (see
broker_persistence.py). Anonymous access, loopback by default: a demo broker, never an
exposed one.
"""

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Coroutine
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import BrokerError

from . import broker_persistence

broker_persistence.install()  # redelivery (broker_redelivery.py) and the state file's journal

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
START_TIMEOUT = 10.0

# Listed explicitly: without a `plugins` section amqtt falls back to entry-point discovery,
# which is deprecated (a DeprecationWarning) and would also load its $SYS plugin. Anonymous
# access, except that named clients keep their offline messages (see broker_auth.py).
BASE_PLUGINS: dict[str, dict[str, Any]] = {
    "uma_demo.broker_auth.NamedSessionsAuthPlugin": {"allow_anonymous": True},
}


def broker_config(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    plugins: dict[str, dict] | None = None,
    state_file: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """amqtt's configuration for one plain-TCP listener; `plugins` adds to BASE_PLUGINS;
    `state_file` keeps sessions across restarts (broker_persistence.py)."""
    journal = {}
    if state_file is not None:
        journal = {"uma_demo.broker_persistence.SessionJournal": {"file": os.fspath(state_file)}}
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {**BASE_PLUGINS, **journal, **(plugins or {})},
    }


def wait_until_accepting(host: str, port: int, timeout: float = START_TIMEOUT) -> None:
    """Return once an MQTT broker on host:port answers a CONNECT; TimeoutError after `timeout`.

    A real MQTT handshake, not just a TCP connect: a bare connection that sends nothing makes
    amqtt log an error, and an open port is not yet a broker.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if _mqtt_ping(host, port):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no MQTT broker answers on {host}:{port}")
        time.sleep(0.05)


def _mqtt_ping(host: str, port: int) -> bool:
    """CONNECT → CONNACK "accepted" → DISCONNECT, by hand (MQTT 3.1.1 §3.1, §3.2, §3.14)."""
    client_id = f"uma-demo-probe-{os.getpid()}-{time.monotonic_ns() % 10**9}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"  # protocol 3.1.1, clean session, keepalive 10
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    with socket.create_connection((host, port), timeout=2.0) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        connack = b""
        while len(connack) < 4:
            chunk = sock.recv(4 - len(connack))
            if not chunk:
                return False
            connack += chunk
        sock.sendall(b"\xe0\x00")
    return connack == b"\x20\x02\x00\x00"


class EmbeddedBroker:
    """An amqtt broker on its own event loop in a daemon thread; start/stop/start again.

    Each start() builds a fresh amqtt Broker (amqtt's own restart support clears state
    anyway), so stop() + start() on the same port is a broker restart as clients see it:
    everything is lost, unless a `state_file` keeps the sessions.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        plugins: dict | None = None,
        state_file: str | os.PathLike | None = None,
    ):
        self.host, self.port = host, port
        self.plugins = plugins
        self.state_file = state_file
        self.broker: DemoBroker | None = None  # the running amqtt Broker, for plugin lookups
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, timeout: float = START_TIMEOUT) -> "EmbeddedBroker":
        """Start listening; returns once the listener is bound (raises if it cannot be)."""
        if self.running:
            raise RuntimeError("broker already running")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name=f"amqtt-{self.port}", daemon=True)
        thread.start()
        try:
            # The Broker must be built on its loop's thread: amqtt creates asyncio objects in
            # __init__, and they belong to the loop that is current there.
            self.broker = asyncio.run_coroutine_threadsafe(self._create(), loop).result(timeout)
            asyncio.run_coroutine_threadsafe(self.broker.start(), loop).result(timeout)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self.broker = None
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self, timeout: float = START_TIMEOUT) -> None:
        """Close every client connection and the listener, and end the thread."""
        if not self.running:
            return
        loop, thread, broker = self._loop, self._thread, self.broker
        try:
            asyncio.run_coroutine_threadsafe(broker.close(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            loop.close()
            self._loop = self._thread = None

    def restart(self) -> "EmbeddedBroker":
        self.stop()
        return self.start()

    async def _create(self) -> "DemoBroker":
        return DemoBroker(broker_config(self.host, self.port, self.plugins, self.state_file))

    def __enter__(self) -> "EmbeddedBroker":
        return self.start() if not self.running else self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class DemoBroker(Broker):
    """amqtt's Broker with a shutdown that holds up under load: use close(), not shutdown().

    amqtt 0.12 quirks this works around:

    - shutdown() closes the listeners last, so a client that reconnects at once (as the
      simulator does) can get into a broker that is half shut down; and a connection whose
      session fails to start is never closed. So: stop accepting first, and close every
      connection we saw accepted.
    - on Python 3.11, asyncio.wait_for() swallows a cancellation that coincides with the
      awaited read completing (CPython gh-86296, fixed in 3.12). amqtt's per-client reader
      loop then keeps reading and shutdown() waits for it forever. So: repeat the cancel.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._client_writers: set[asyncio.StreamWriter] = set()

    def stream_connected(  # type: ignore[override]
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> Coroutine[Any, Any, None]:
        # Deliberately not async: asyncio calls this at accept time, so the connection is on
        # record even if its task is cancelled before it ever runs.
        self._client_writers.add(writer)
        return self._serve_client(reader, writer, listener_name)

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self._client_writers.discard(writer)
            # amqtt returns without closing the connection when a session fails to start
            # (a client that hangs up before CONNECT, one arriving during shutdown); the
            # socket would then linger until garbage collection.
            if not writer.transport.is_closing():
                writer.transport.close()

    async def close(self) -> None:
        # `_servers` is amqtt's table of listeners (private: there is no public way to pause).
        for server in getattr(self, "_servers", {}).values():
            if server.instance is not None:
                server.instance.close()
        closing = asyncio.ensure_future(self.shutdown())
        while not closing.done():
            await asyncio.wait({closing}, timeout=0.2)
            for task in asyncio.all_tasks():
                if task is not closing and not task.done() and task.cancelling():
                    task.cancel()
        closing.result()
        # What amqtt did not clean up (a client caught mid-handshake): cut its connection and
        # let its task see that; then cancel and reap whatever is left, as asyncio.run() does.
        for _ in range(3):
            for writer in list(self._client_writers):
                writer.transport.abort()
            await asyncio.sleep(0.01)
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)
        for writer in list(self._client_writers):
            writer.transport.abort()


async def serve(host: str, port: int, state_file: str | None = None) -> None:
    """Run a broker until SIGINT or SIGTERM."""
    broker = DemoBroker(broker_config(host, port, state_file=state_file))
    await broker.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    # One line on stdout that a launcher (make demo) can wait for.
    print(f"MQTT broker (amqtt) listening on mqtt://{host}:{port}", flush=True)
    try:
        await stopping.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await broker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m uma_demo.broker", description="Run the demo's embedded MQTT broker."
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="(default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="(default: %(default)s)")
    parser.add_argument(
        "--state-file",
        help="SQLite file that keeps sessions, what they are owed and retained messages across "
        "restarts (default: none, all in memory)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="amqtt's INFO logs too")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(args.host, args.port, args.state_file))
    except (BrokerError, OSError) as exc:  # typically: the port is taken
        print(f"uma_demo.broker: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
