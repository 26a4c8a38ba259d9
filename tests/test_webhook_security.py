"""The pure halves of webhook trust: signatures, and which addresses are public."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from escalator.domain import webhook_destination as dest
from escalator.domain import webhook_signature as sig

SECRET = b"whsec-0123456789abcdef"
BODY = '{"event":"tier_entry","case":{"title":"Zoë"}}'.encode()


def test_the_signature_is_hmac_sha256_of_the_timestamp_dot_body():
    header = sig.sign(SECRET, 1_700_000_000, BODY)
    expected = hmac.new(SECRET, b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize(
    ("change", "ok"),
    [
        ({}, True),
        ({"now": 1_700_000_000 + 300}, True),  # at the tolerance
        ({"now": 1_700_000_000 + 301}, False),  # a replay, later
        ({"now": 1_700_000_000 - 301}, False),
        ({"secret": b"whsec-another-secret-000"}, False),
        ({"body": BODY + b" "}, False),
        ({"header": "v1=" + "0" * 64}, False),  # no timestamp
        ({"header": "t=1700000000"}, False),  # no signature
        ({"header": ""}, False),
    ],
)
def test_verify(change, ok):
    args = {
        "secret": SECRET,
        "header": sig.sign(SECRET, 1_700_000_000, BODY),
        "body": BODY,
        "now": 1_700_000_000 + 5,
    }
    args.update(change)
    assert sig.verify(args["secret"], args["header"], args["body"], now=args["now"]) is ok


def test_a_timestamp_cannot_be_moved_without_the_secret():
    header = sig.sign(SECRET, 1_700_000_000, BODY)
    moved = header.replace("t=1700000000", "t=1700000900")
    assert not sig.verify(SECRET, moved, BODY, now=1_700_000_900)


def test_a_rotation_can_carry_two_signatures():
    old, new = b"whsec-old-0123456789", b"whsec-new-0123456789"
    header = sig.sign(new, 1_700_000_000, BODY) + ",v1=" + sig.signature(old, 1_700_000_000, BODY)
    assert sig.verify(old, header, BODY, now=1_700_000_000)
    assert sig.verify(new, header, BODY, now=1_700_000_000)


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert dest.refusal("hooks.example.com", [address]) is None


def test_one_private_address_among_public_ones_is_enough_to_refuse():
    reason = dest.refusal("rebind.example", ["93.184.216.34", "10.0.0.5"])
    assert reason == (
        "rebind.example (10.0.0.5) is a private address; webhooks go to public addresses "
        "only (set ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true on the worker to allow it)"
    )


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("fe80::1%eth0", "link-local"),
        ("169.254.169.254", "link-local"),
        ("fd00::1", "unique-local"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("192.0.2.1", "private"),  # documentation range (TEST-NET-1)
        ("100.100.100.200", "non-public"),  # shared address space
    ],
)
def test_non_public_kinds(address, kind):
    parsed = dest.parse_address(address)
    assert parsed is not None and dest.forbidden_kind(parsed) == kind
