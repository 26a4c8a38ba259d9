"""Encrypted payloads: customer names, emails and free text never reach Temporal in clear.

Every payload (workflow input, signal and update arguments, query and activity
results, memo and the Web UI summary/details) is AES-256-GCM encrypted by the
client or worker before it leaves the process; the server and its database only
hold ciphertext. Search attributes are never encrypted (see search_attributes.py).

Keys come from ESCALATOR_ENCRYPTION_KEY, one or more comma-separated `id:base64key`
entries. The first entry encrypts; every entry decrypts, so a key is rotated by
putting a new entry first and keeping the old one until no history needs it:

    ESCALATOR_ENCRYPTION_KEY="k2026:<new key>,k2025:<old key>"

The payload format is the one of temporalio samples-python `encryption/codec.py`:
metadata `encoding: binary/encrypted` and `encryption-key-id: <id>`, data = a fresh
12-byte nonce + the AES-GCM ciphertext of the original serialized Payload proto.

ESCALATOR_REQUIRE_ENCRYPTION=true makes decoding refuse every payload that is not
encrypted, so someone with access to the namespace but not the keys cannot slip a
plaintext case, signal or update past the codec. A refused payload is not an error
(that would fail the workflow task, retried for ever): it decodes to the marker of
escalator/domain/payload_refusal.py, which the workflow's own decoding refuses at once.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

from escalator.domain import payload_refusal
from escalator.domain.errors import EscalatorError, InvalidInput

ENV_VAR = "ESCALATOR_ENCRYPTION_KEY"
REQUIRE_ENV_VAR = "ESCALATOR_REQUIRE_ENCRYPTION"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})
ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIX = "generate one with `escalator keygen`"


class CodecError(EscalatorError):
    """An encrypted payload could not be decrypted."""


class UnknownEncryptionKey(CodecError):
    """The payload names a key id that ESCALATOR_ENCRYPTION_KEY does not hold."""


class DecryptionFailed(CodecError):
    """The ciphertext was altered, truncated, or the key under its id is not the one used."""


def _invalid(problem: str) -> InvalidInput:
    # Messages name the variable and the entry's position, never its text: an entry
    # that does not parse may well be key material typed in the wrong place.
    return InvalidInput(f"{ENV_VAR}: {problem}; {_FIX}")


def _decode_key(text: str) -> bytes | None:
    """Standard or urlsafe base64, padding optional; None if it is not base64."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


class KeyRing:
    """Named AES-256 keys: the first encrypts, all decrypt. Holds no key in its repr."""

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise _invalid("no keys given")
        ciphers: dict[str, AESGCM] = {}
        for position, (key_id, key) in enumerate(keys, start=1):
            if not KEY_ID_PATTERN.fullmatch(key_id):
                raise _invalid(
                    f"entry {position} has an invalid key id (use 1-64 letters, digits, '.', "
                    "'_' or '-')"
                )
            if len(key) != KEY_BYTES:
                raise _invalid(f"entry {position} is a {len(key)}-byte key, not {KEY_BYTES} bytes")
            if key_id in ciphers:
                raise _invalid(f"entry {position} repeats the key id of an earlier entry")
            ciphers[key_id] = AESGCM(key)
        self._ciphers = ciphers
        self._current = keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """`id:base64key[,id:base64key...]`; raises InvalidInput (one line, no key material)."""
        if not text.strip():
            raise _invalid("is empty")
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(text.split(","), start=1):
            key_id, sep, encoded = entry.strip().partition(":")
            if not sep or not key_id or not encoded.strip():
                raise _invalid(f"entry {position} is not id:base64-key")
            if not KEY_ID_PATTERN.fullmatch(key_id):
                raise _invalid(
                    f"entry {position} has an invalid key id (use 1-64 letters, digits, '.', "
                    "'_' or '-')"
                )
            key = _decode_key(encoded)
            if key is None:
                raise _invalid(f"entry {position} has a key that is not base64")
            keys.append((key_id, key))
        return cls(keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KeyRing | None:
        """The key ring in ESCALATOR_ENCRYPTION_KEY, or None when it is unset or empty."""
        text = environ.get(ENV_VAR, "")
        return cls.parse(text) if text.strip() else None

    @property
    def current_id(self) -> str:
        """The id of the key that encrypts (the first entry)."""
        return self._current

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every id that decrypts, in the order given."""
        return tuple(self._ciphers)

    def cipher(self, key_id: str) -> AESGCM | None:
        return self._ciphers.get(key_id)

    def __repr__(self) -> str:
        return f"KeyRing(encrypts={self._current!r}, decrypts={list(self._ciphers)!r})"


def generate_key_entry(key_id: str) -> str:
    """`id:base64` for a new random 32-byte key, ready for ESCALATOR_ENCRYPTION_KEY."""
    if not KEY_ID_PATTERN.fullmatch(key_id):
        raise InvalidInput(
            f"key id {key_id[:64]!r} is not valid: use 1-64 letters, digits, '.', '_' or '-'"
        )
    key = base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")
    return f"{key_id}:{key}"


def _shown(key_id: bytes) -> str:
    """A key id from payload metadata (untrusted) as a short one-line string."""
    return repr(key_id.decode("utf-8", "replace")[:64])


def refused_payload() -> Payload:
    """What a plaintext payload decodes to when encryption is required: the marker of
    escalator/domain/payload_refusal.py, with nothing of the original in it."""
    return Payload(
        metadata={
            "encoding": b"json/plain",
            payload_refusal.METADATA_KEY: b"plaintext",
        },
        data=json.dumps(payload_refusal.marker(), separators=(",", ":")).encode(),
    )


def require_encryption(environ: Mapping[str, str] = os.environ) -> bool:
    """ESCALATOR_REQUIRE_ENCRYPTION as a flag; InvalidInput (one line) if not a boolean."""
    raw = environ.get(REQUIRE_ENV_VAR, "")
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise InvalidInput(f"{REQUIRE_ENV_VAR}={raw[:40]!r}: must be true or false (or unset)")


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole serialized payloads, with a fresh random nonce for each.

    With `require_encryption`, decoding replaces each payload that is not encrypted
    with `refused_payload()` instead of passing it through."""

    def __init__(self, keyring: KeyRing, *, require_encryption: bool = False) -> None:
        super().__init__()
        self.keyring = keyring
        self.require_encryption = require_encryption

    @property
    def key_id(self) -> str:
        return self.keyring.current_id

    async def encode(self, payloads: Iterable[Payload]) -> list[Payload]:
        key_id = self.keyring.current_id
        cipher = self.keyring.cipher(key_id)
        assert cipher is not None
        encoded = []
        for payload in payloads:
            nonce = os.urandom(NONCE_BYTES)
            ciphertext = cipher.encrypt(nonce, payload.SerializeToString(), None)
            encoded.append(
                Payload(
                    metadata={"encoding": ENCODING, KEY_ID_METADATA: key_id.encode()},
                    data=nonce + ciphertext,
                )
            )
        return encoded

    async def decode(self, payloads: Iterable[Payload]) -> list[Payload]:
        decoded = []
        for payload in payloads:
            if payload.metadata.get("encoding") != ENCODING:
                # Payloads written before encryption was turned on still read, unless
                # encryption is required: then nothing of a plaintext one gets through.
                decoded.append(refused_payload() if self.require_encryption else payload)
                continue
            decoded.append(self._decrypt(payload))
        return decoded

    def _decrypt(self, payload: Payload) -> Payload:
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if not raw_id:
            raise DecryptionFailed(f"an encrypted payload has no {KEY_ID_METADATA} metadata")
        key_id = raw_id.decode("utf-8", "replace")
        cipher = self.keyring.cipher(key_id)
        if cipher is None:
            raise UnknownEncryptionKey(
                f"a payload was encrypted with key id {_shown(raw_id)}, which {ENV_VAR} does "
                f"not hold (it has {', '.join(self.keyring.key_ids)}); add that id's entry "
                "back after the first one"
            )
        data = payload.data
        if len(data) < NONCE_BYTES + TAG_BYTES:
            raise DecryptionFailed(f"a payload encrypted with key id {_shown(raw_id)} is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], None)
            return Payload.FromString(plain)
        except (InvalidTag, DecodeError):
            raise DecryptionFailed(
                f"cannot decrypt a payload with key id {_shown(raw_id)}: the data was altered "
                f"or {ENV_VAR} holds a different key under that id"
            ) from None

    def __repr__(self) -> str:
        required = ", require_encryption=True" if self.require_encryption else ""
        return f"EncryptionCodec({self.keyring!r}{required})"


def data_converter(environ: Mapping[str, str] = os.environ) -> DataConverter:
    """The converter every client and worker uses: pydantic, encrypted when keys are set.

    Failure messages and stack traces are encrypted too (they can quote an address a
    mail server refused); clients with the codec, and the Web UI through the codec
    server, read them as usual. With ESCALATOR_REQUIRE_ENCRYPTION=true, plaintext
    payloads are refused (see EncryptionCodec); that needs a key.
    """
    required = require_encryption(environ)
    keyring = KeyRing.from_env(environ)
    if keyring is None:
        if required:
            raise InvalidInput(
                f"{REQUIRE_ENV_VAR}=true needs {ENV_VAR}: set the key (generate one with "
                f"`escalator keygen`) or unset {REQUIRE_ENV_VAR}"
            )
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring, require_encryption=required),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
