"""The free-port probe of `escalator up` tells a real listener from TIME_WAIT."""

from __future__ import annotations

import socket
import time

import pytest

from escalator.devstack.stack import StackOptions, check_ports_free, port_is_free
from escalator.domain.errors import InvalidInput


def _time_wait_port() -> int:
    """A port whose last connection was closed by the server side: TIME_WAIT."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server closes first, so its side waits in TIME_WAIT
    time.sleep(0.05)
    client.close()
    server.close()
    return port


def _free() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_port_left_in_time_wait_is_free():
    port = _time_wait_port()
    # A bind without SO_REUSEADDR fails here: the bug a restart after Ctrl-C hit.
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))
    assert port_is_free(port)


def test_a_port_with_a_listener_is_refused_naming_the_flag():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not port_is_free(port)
        options = StackOptions(port=_free(), ui_port=_free(), mail_port=port)
        with pytest.raises(InvalidInput) as refused:
            check_ports_free(options, with_catcher=True)
    assert str(refused.value) == (
        f"port {port} is already in use; choose another with --mail-port (or stop what is using it)"
    )
