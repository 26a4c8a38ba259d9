"""Restart right after a stop: Ctrl-C, then `escalator up` again at once.

The free-port probe of `escalator up` used to bind without SO_REUSEADDR, so the
connections a stopped stack leaves closing on its ports (TIME_WAIT and friends, for
up to a minute after the last mail) made it refuse with "port 1025 is already in
use". It now binds the way the servers themselves do: it still refuses a port that
something LISTENs on, and accepts one with only closing connections left.
"""

from __future__ import annotations

import email
import errno
import json
import socket
import time
from pathlib import Path

import pytest
from support import EscalatorUp, free_port

from escalator.devstack.stack import LOOPBACK, StackOptions, check_ports_free, port_is_free
from escalator.domain.errors import InvalidInput

TCP_STATES = {"01": "ESTABLISHED", "06": "TIME_WAIT", "0A": "LISTEN"}


def bind_without_reuse(port: int) -> bool:
    """The old probe: a plain bind, refused by any socket left on the port."""
    with socket.socket() as probe:
        try:
            probe.bind((LOOPBACK, port))
        except OSError as error:
            assert error.errno == errno.EADDRINUSE, error
            return False
    return True


def local_states(port: int) -> set[str]:
    """TCP states of the sockets whose local port is `port` (Linux /proc/net/tcp)."""
    states = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            states.add(TCP_STATES.get(fields[3], fields[3]))
    return states


def options(**ports: int) -> StackOptions:
    chosen = {"port": free_port(), "ui_port": free_port(), "mail_port": free_port()}
    return StackOptions(**{**chosen, **ports})


def listener(host: str = LOOPBACK, port: int = 0, *, reuse: bool = True) -> socket.socket:
    sock = socket.socket()
    if reuse:  # as asyncio's create_server and Go's net.Listen do
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen()
    return sock


# -- the probe ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "flag"), [("port", "--port"), ("ui_port", "--ui-port"), ("mail_port", "--mail-port")]
)
@pytest.mark.parametrize(
    ("host", "reuse"), [(LOOPBACK, True), (LOOPBACK, False), ("0.0.0.0", True)]
)
def test_a_port_with_a_real_listener_is_refused_in_one_line_naming_the_flag(
    field, flag, host, reuse
):
    with listener(host, reuse=reuse) as taken:
        port = taken.getsockname()[1]
        assert not port_is_free(port)
        with pytest.raises(InvalidInput) as error:
            check_ports_free(options(**{field: port}), with_catcher=True)
    assert str(error.value) == (
        f"port {port} is already in use; choose another with {flag} (or stop what is using it)"
    )


def test_the_mail_port_is_only_checked_when_the_catcher_runs():
    with listener() as taken:
        check_ports_free(options(mail_port=taken.getsockname()[1]), with_catcher=False)


def leave_time_wait(port: int = 0) -> int:
    """Close a connection server-side first, as an SMTP server does after QUIT.

    The side that closes first keeps the connection in TIME_WAIT for a minute, on the
    server's port. Returns the port.
    """
    with listener(port=port) as server:
        port = server.getsockname()[1]
        client = socket.create_connection((LOOPBACK, port))
        accepted, _ = server.accept()
        accepted.close()
        assert client.recv(1) == b""  # the server's FIN
        client.close()
    deadline = time.monotonic() + 5
    while "TIME_WAIT" not in local_states(port) and time.monotonic() < deadline:
        time.sleep(0.01)
    return port


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_a_port_left_in_time_wait_is_free_again():
    port = leave_time_wait()
    assert local_states(port) == {"TIME_WAIT"}, local_states(port)

    assert not bind_without_reuse(port), "the old probe would have refused this port"
    assert port_is_free(port)
    check_ports_free(options(mail_port=port, port=port), with_catcher=True)
    # And a server really can listen there now, as the probe said.
    with listener(port=port):
        assert not port_is_free(port)


# -- end to end: Ctrl-C, then `escalator up` again at once ----------------------------------

RESTART_POLICY = """\
escalation:
  name: restart
  tiers:
    - level: 1
      name: Front-Line Support
      team: support-generalists
      notify: [l1@example.com]
      sla: {first_response: 20s, resolution_target: 5m}
    - level: 2
      name: Specialist Support
      team: support-specialists
      notify: [l2@example.com]
"""


class Up(EscalatorUp):
    """`escalator up` as a subprocess, on fixed ports and a data dir of its own."""

    def start(self) -> Up:
        return self.up()

    def stop(self) -> int:
        """Ctrl-C (SIGINT), and wait for it to exit."""
        return self.down(within=90)

    def mail(self, case_id: str, recipient: str) -> list[str]:
        return [
            text
            for text in super().mail()
            if f"X-Escalator-Case: {case_id}" in text and recipient in text
        ]


def message_id(text: str) -> str:
    return email.message_from_string(text)["Message-ID"]


def wait_for(predicate, *, within: float, what: str):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"not within {within:.0f}s: {what}")


@pytest.mark.integration
def test_up_again_right_after_ctrl_c_on_the_same_ports_and_the_case_carries_on(tmp_path):
    policy = tmp_path / "restart.yaml"
    policy.write_text(RESTART_POLICY, encoding="utf-8")
    up = Up(tmp_path / ".data")
    try:
        up.start()
        started = up.cli(
            "start", "--case-id", "again", "--title", "Outlook fails to sync",
            "--policy", str(policy), "--customer-email", "jane@acme.example",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        # A mail went out, so the catcher's port has connections closing on it.
        wait_for(lambda: up.mail("again", "l1@example.com"), within=30, what="the L1 mail")
    finally:
        assert up.stop() == 0, up.output
    stopped_at = time.monotonic()
    assert "open cases are kept" in up.output
    mail_port = up.mail_port
    # The bug's condition: the catcher closed its side of an SMTP connection first
    # (after QUIT), so the plain bind of the old probe is refused for a minute. Whether
    # the catcher or the mailer closes first is a race, so when the mail just sent did
    # not leave one, the test leaves one itself, the same way.
    if bind_without_reuse(mail_port):
        leave_time_wait(mail_port)
    lingering = local_states(mail_port) if Path("/proc/net/tcp").exists() else set()
    assert not bind_without_reuse(mail_port), f"nothing left on the mail port: {lingering}"

    up.output = ""
    restarted_after = time.monotonic() - stopped_at
    assert restarted_after < 5
    try:
        up.start()  # same ports, same data dir; the port check is the first thing it does
        assert "already in use" not in up.output
        # The open case carries on: its L1 deadline fires and L2 gets the mail.
        wait_for(
            lambda: up.mail("again", "l2@example.com"),
            within=60,
            what="the L2 mail after the restart",
        )
        status = up.cli("status", "again", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["tier_level"] == 2
        ids = [message_id(text) for text in up.mail("again", "@")]
        assert len(ids) == len(set(ids)), ids  # nothing sent twice
    finally:
        assert up.stop() == 0, up.output
    print(
        f"\nrestarted {restarted_after:.1f}s after the stop; mail port {mail_port} then had "
        f"{sorted(lingering)}, which the old probe refused"
    )
