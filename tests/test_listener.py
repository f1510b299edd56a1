"""``connection.Listener`` and ``Client``: TCP and Unix sockets, the authkey handshake, and
wire compatibility with the stdlib in both directions."""

from __future__ import annotations

import gc
import importlib
import multiprocessing.connection as stdlib_connection
import os
import stat
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import _connection_targets as targets
from _support import DEADLINE, MODULE_NAME, mp

connection = importlib.import_module(f"{MODULE_NAME}.connection")

pytestmark = pytest.mark.timeout(120)

FAMILIES = ("AF_INET", "AF_UNIX")
KEY = b"shared secret"


class Served:
    """A thread that accepts clients on ``listener`` and runs ``handle`` on each;
    what each accept raised is kept in ``errors``."""

    def __init__(self, listener: Any, clients: int, handle: Callable[[Any], None]) -> None:
        self.listener = listener
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, args=(clients, handle), daemon=True)
        self.thread.start()

    def _serve(self, clients: int, handle: Callable[[Any], None]) -> None:
        for _ in range(clients):
            try:
                conn = self.listener.accept()
            except Exception as exc:
                self.errors.append(exc)
                continue
            with conn:
                handle(conn)

    def join(self) -> None:
        self.thread.join(DEADLINE)
        assert not self.thread.is_alive()


def echo_once(conn: Any) -> None:
    conn.send(conn.recv())


def echo_until_eof(conn: Any) -> None:
    while True:
        try:
            obj = conn.recv()
        except EOFError:
            return
        conn.send(obj)


@pytest.fixture(params=FAMILIES)
def family(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def listener(family: str) -> Iterator[Any]:
    with connection.Listener(family=family) as listening:
        yield listening


def test_listener_and_client(listener: Any, family: str) -> None:
    served = Served(listener, 1, echo_once)
    with connection.Client(listener.address) as client:
        client.send({"hello": family})
        assert client.recv() == {"hello": family}
    served.join()
    assert served.errors == []
    assert listener.last_accepted is not None or family == "AF_UNIX"


def test_listener_address(family: str) -> None:
    with connection.Listener(family=family) as listening:
        if family == "AF_INET":
            host, port = listening.address
            assert host == "127.0.0.1"
            assert port > 0
        else:
            assert isinstance(listening.address, str)
            assert os.path.exists(listening.address)
        assert listening.last_accepted is None
        assert connection.address_type(listening.address) == family


def test_listener_at_a_given_address(tmp_path: Any) -> None:
    path = str(tmp_path / "sock")
    with connection.Listener(path) as listening:
        assert listening.address == path
        served = Served(listening, 1, echo_once)
        with connection.Client(path) as client:
            client.send("by path")
            assert client.recv() == "by path"
        served.join()
    # Closing the listener removes its socket file.
    assert not os.path.exists(path)


@pytest.mark.ferroproc_only
def test_unix_listener_socket_is_owner_only(tmp_path: Any) -> None:
    with connection.Listener(family="AF_UNIX") as listening:
        assert stat.S_IMODE(os.stat(listening.address).st_mode) == 0o600


def test_closed_listener() -> None:
    listening = connection.Listener(family="AF_INET")
    listening.close()
    listening.close()
    with pytest.raises(OSError, match="listener is closed"):
        listening.accept()


def test_authkey_accepted(listener: Any, family: str) -> None:
    keyed = connection.Listener(family=family, authkey=KEY)
    with keyed:
        served = Served(keyed, 1, echo_once)
        with connection.Client(keyed.address, authkey=KEY) as client:
            client.send([1, 2, 3])
            assert client.recv() == [1, 2, 3]
        served.join()
        assert served.errors == []


def test_wrong_authkey_fails_both_sides_and_the_listener_goes_on(family: str) -> None:
    with connection.Listener(family=family, authkey=KEY) as keyed:
        served = Served(keyed, 2, echo_once)
        with pytest.raises(mp.AuthenticationError):
            connection.Client(keyed.address, authkey=b"wrong key")
        with connection.Client(keyed.address, authkey=KEY) as client:
            client.send("after a bad client")
            assert client.recv() == "after a bad client"
        served.join()
        assert len(served.errors) == 1
        assert isinstance(served.errors[0], mp.AuthenticationError)


# The stdlib checks the key after binding its socket, and leaves it to the collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_authkey_must_be_bytes(family: str) -> None:
    with pytest.raises(TypeError, match="authkey should be a byte string"):
        connection.Listener(family=family, authkey="text")  # type: ignore[arg-type]
    gc.collect()
    with connection.Listener(family=family) as listening, pytest.raises(TypeError):
        connection.Client(listening.address, authkey="text")  # type: ignore[arg-type]


def test_challenge_over_a_pipe() -> None:
    a, b = mp.Pipe()
    with a, b:
        answer = threading.Thread(target=connection.answer_challenge, args=(b, KEY))
        answer.start()
        connection.deliver_challenge(a, KEY)
        answer.join()
        with pytest.raises(ValueError, match="Authkey must be bytes"):
            connection.deliver_challenge(a, "text")


def test_challenge_with_a_wrong_key_over_a_pipe() -> None:
    a, b = mp.Pipe()
    with a, b:
        raised: list[BaseException] = []

        def answer() -> None:
            try:
                connection.answer_challenge(b, b"other key")
            except BaseException as exc:
                raised.append(exc)

        thread = threading.Thread(target=answer)
        thread.start()
        with pytest.raises(mp.AuthenticationError, match="digest received was wrong"):
            connection.deliver_challenge(a, KEY)
        thread.join()
        assert len(raised) == 1
        assert isinstance(raised[0], mp.AuthenticationError)
        assert "digest sent was rejected" in str(raised[0])


def test_address_helpers() -> None:
    assert connection.address_type(("localhost", 0)) == "AF_INET"
    assert connection.address_type("/tmp/x") == "AF_UNIX"
    assert connection.address_type("\0abstract") == "AF_UNIX"
    assert connection.address_type(r"\\.\pipe\x") == "AF_PIPE"
    with pytest.raises(TypeError, match="unrecognized"):
        connection.address_type(42)
    with pytest.raises(ValueError, match="unrecognized"):
        connection.address_type(b"not abstract")
    assert connection.arbitrary_address("AF_INET") == ("localhost", 0)
    first = connection.arbitrary_address("AF_UNIX")
    assert isinstance(first, str)
    assert first != connection.arbitrary_address("AF_UNIX")
    with pytest.raises(ValueError, match="unrecognized family"):
        connection.arbitrary_address("AF_NOPE")


def test_socket_listener_and_client_directly(family: str) -> None:
    raw = connection.SocketListener(connection.arbitrary_address(family), family)
    try:
        thread = threading.Thread(target=lambda: echo_once(raw.accept()))
        thread.start()
        client = connection.SocketClient(raw._address)
        with client:
            client.send("raw")
            assert client.recv() == "raw"
        thread.join()
    finally:
        raw.close()


@pytest.mark.parametrize("authkey", [None, KEY])
def test_client_in_a_child(ctx: Any, authkey: bytes | None) -> None:
    with connection.Listener(family="AF_UNIX", authkey=authkey) as listening:
        p = ctx.Process(target=targets.client_roundtrip, args=(listening.address, authkey))
        p.start()
        with listening.accept() as conn:
            conn.send(21)
            assert conn.recv() == 42
        p.join(DEADLINE)
        assert p.exitcode == 0


def test_listener_in_a_child(ctx: Any, family: str) -> None:
    parent_end, child_end = ctx.Pipe()
    p = ctx.Process(target=targets.serve_once, args=(child_end, family, KEY))
    p.start()
    address = parent_end.recv()
    with connection.Client(address, authkey=KEY) as client:
        client.send("through the child")
        assert client.recv() == "through the child"
    p.join(DEADLINE)
    assert p.exitcode == 0
    parent_end.close()
    child_end.close()


# --- wire compatibility with the stdlib ----------------------------------------------


@pytest.mark.parametrize("authkey", [None, KEY])
def test_stdlib_client_talks_to_our_listener(family: str, authkey: bytes | None) -> None:
    with connection.Listener(family=family, authkey=authkey) as ours:
        served = Served(ours, 1, echo_until_eof)
        with stdlib_connection.Client(ours.address, authkey=authkey) as theirs:
            for obj in ("small", b"x" * 100_000, list(range(10))):
                theirs.send(obj)
                assert theirs.recv() == obj
        served.join()
        assert served.errors == []


@pytest.mark.parametrize("authkey", [None, KEY])
def test_our_client_talks_to_a_stdlib_listener(family: str, authkey: bytes | None) -> None:
    with stdlib_connection.Listener(family=family, authkey=authkey) as theirs:
        served = Served(theirs, 1, echo_until_eof)
        with connection.Client(theirs.address, authkey=authkey) as ours:
            for obj in ("small", b"x" * 100_000, list(range(10))):
                ours.send(obj)
                assert ours.recv() == obj
        served.join()
        assert served.errors == []


def test_wrong_authkey_between_stdlib_and_us(family: str) -> None:
    with connection.Listener(family=family, authkey=KEY) as ours:
        served = Served(ours, 1, echo_once)
        with pytest.raises(stdlib_connection.AuthenticationError):
            stdlib_connection.Client(ours.address, authkey=b"wrong")
        served.join()
        assert len(served.errors) == 1
        assert isinstance(served.errors[0], mp.AuthenticationError)
    with stdlib_connection.Listener(family=family, authkey=KEY) as theirs:
        served = Served(theirs, 1, echo_once)
        with pytest.raises(mp.AuthenticationError):
            connection.Client(theirs.address, authkey=b"wrong")
        served.join()
        assert len(served.errors) == 1


def test_bytes_frames_are_the_stdlibs(family: str) -> None:
    # A long run of sizes around the header's edges and the stdlib's own 16 KiB split.
    sizes = [0, 1, 7, 8, 16383, 16384, 16385, 65536, 1 << 20]
    with stdlib_connection.Listener(family=family) as theirs:

        def echo_sizes(conn: Any) -> None:
            for _ in sizes:
                conn.send_bytes(conn.recv_bytes())

        served = Served(theirs, 1, echo_sizes)
        with connection.Client(theirs.address) as ours:
            for size in sizes:
                payload = os.urandom(size)
                ours.send_bytes(payload)
                assert ours.recv_bytes() == payload
        served.join()
