"""Which addresses a webhook may be sent to: public ones only, unless allowed.

A webhook URL comes from a policy file and, through any Temporal client, from a
case's input: without this check the worker would POST case data to whatever it can
reach, its own loopback services, the cloud metadata endpoint (169.254.169.254) or
the private network (server-side request forgery). ESCALATOR_WEBHOOK_ALLOW_PRIVATE=true
lifts the rule for a receiver on the local network. Pure: the caller resolves the host.
"""

from __future__ import annotations

import ipaddress

ALLOW_ENV_VAR = "ESCALATOR_WEBHOOK_ALLOW_PRIVATE"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_address(text: str) -> IPAddress | None:
    """An address as getaddrinfo gives it (IPv6 maybe with a `%scope`), or None."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # ::ffff:127.0.0.1 is loopback too
    return address


def forbidden_kind(address: IPAddress) -> str | None:
    """Why `address` is no public destination ("loopback", "private", ...), or None."""
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        # IPv6 unique-local fc00::/7 is is_private too; named for the message.
        (
            "unique-local",
            isinstance(address, ipaddress.IPv6Address)
            and address in ipaddress.IPv6Network("fc00::/7"),
        ),
        ("reserved", address.is_reserved),  # before private, which includes 240.0.0.0/4
        ("private", address.is_private),
        # Shared address space (100.64.0.0/10), 6to4 relays and the like: not public.
        ("non-public", not address.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def refusal(host: str, addresses: list[str]) -> str | None:
    """The one-line reason to refuse sending to `host`, which resolved to `addresses`,
    or None when every address is public. One bad address is enough: a name that
    resolves to public and private addresses is refused (DNS rebinding)."""
    for text in addresses:
        address = parse_address(text)
        kind = "unparseable" if address is None else forbidden_kind(address)
        if kind is not None:
            shown = host if host == text else f"{host} ({text})"
            return (
                f"{shown} is a {kind} address; webhooks go to public addresses only "
                f"(set {ALLOW_ENV_VAR}=true on the worker to allow it)"
            )
    return None
