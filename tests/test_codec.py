"""The payload codec: AES-256-GCM with key ids, rotation and one-line key errors."""

from __future__ import annotations

import base64
import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DefaultFailureConverterWithEncodedAttributes
from temporalio.exceptions import ApplicationError

from escalator.adapters.codec import (
    ENV_VAR,
    REQUIRE_ENV_VAR,
    DecryptionFailed,
    EncryptionCodec,
    KeyRing,
    UnknownEncryptionKey,
    data_converter,
    generate_key_entry,
    refused_payload,
)
from escalator.domain import payload_refusal
from escalator.domain.errors import InvalidInput
from escalator.domain.models import Customer

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
ENTRY_A = "a:" + base64.b64encode(KEY_A).decode()
ENTRY_B = "b:" + base64.urlsafe_b64encode(KEY_B).decode()


def payload(data: bytes, encoding: bytes = b"json/plain", **metadata: bytes) -> Payload:
    return Payload(metadata={"encoding": encoding, **metadata}, data=data)


PAYLOADS = [
    payload(b'{"name": "Jane Roe", "email": "jane@acme.example"}'),
    payload(b"", encoding=b"binary/null"),
    payload(os.urandom(300), encoding=b"binary/plain", extra=b"kept"),
]


async def test_round_trip_restores_every_payload_exactly():
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A))
    encoded = await codec.encode(PAYLOADS)

    assert len(encoded) == len(PAYLOADS)
    for original, sealed in zip(PAYLOADS, encoded, strict=True):
        assert dict(sealed.metadata) == {"encoding": b"binary/encrypted", "encryption-key-id": b"a"}
        assert original.data not in sealed.data or not original.data
        assert sealed.data != original.SerializeToString()
    assert b"jane@acme.example" not in b"".join(p.SerializeToString() for p in encoded)
    assert await codec.decode(encoded) == PAYLOADS


async def test_format_is_nonce_then_aes_gcm_of_the_serialized_payload():
    """Interoperable with the samples' codec: 12-byte nonce + AESGCM(payload proto)."""
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A))
    [sealed] = await codec.encode(PAYLOADS[:1])
    plain = AESGCM(KEY_A).decrypt(sealed.data[:12], sealed.data[12:], None)
    assert Payload.FromString(plain) == PAYLOADS[0]


async def test_each_encode_uses_a_fresh_nonce():
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A))
    first, second = await codec.encode([PAYLOADS[0], PAYLOADS[0]])
    third = (await codec.encode([PAYLOADS[0]]))[0]
    nonces = {first.data[:12], second.data[:12], third.data[:12]}
    assert len(nonces) == 3
    assert len({first.data, second.data, third.data}) == 3
    assert await codec.decode([first, second, third]) == [PAYLOADS[0]] * 3


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], id="ciphertext-bit"),
        pytest.param(lambda d: bytes([d[0] ^ 1]) + d[1:], id="nonce-bit"),
        pytest.param(lambda d: d[:-1] + bytes([d[-1] ^ 1]), id="tag-bit"),
        pytest.param(lambda d: d[:-5], id="truncated"),
        pytest.param(lambda d: d[:10], id="shorter-than-nonce-and-tag"),
    ],
)
async def test_tampered_ciphertext_is_refused(tamper):
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A))
    [sealed] = await codec.encode(PAYLOADS[:1])
    forged = Payload(metadata=sealed.metadata, data=tamper(sealed.data))
    with pytest.raises(DecryptionFailed) as caught:
        await codec.decode([forged])
    assert "'a'" in str(caught.value) and "\n" not in str(caught.value)


async def test_same_id_with_a_different_key_is_refused_not_garbled():
    [sealed] = await EncryptionCodec(KeyRing.parse(ENTRY_A)).encode(PAYLOADS[:1])
    impostor = EncryptionCodec(KeyRing([("a", KEY_B)]))
    with pytest.raises(DecryptionFailed, match="different key under that id"):
        await impostor.decode([sealed])


async def test_rotation_new_key_encrypts_old_key_still_decrypts():
    before = EncryptionCodec(KeyRing.parse(ENTRY_A))
    old = await before.encode(PAYLOADS)

    after = EncryptionCodec(KeyRing.parse(f"{ENTRY_B}, {ENTRY_A}"))
    assert after.key_id == "b"
    new = await after.encode(PAYLOADS)

    assert {p.metadata["encryption-key-id"] for p in new} == {b"b"}
    assert await after.decode(old) == PAYLOADS
    assert await after.decode(new) == PAYLOADS
    assert await after.decode([old[0], new[0]]) == [PAYLOADS[0], PAYLOADS[0]]
    # The old ring alone cannot read what the new key wrote.
    with pytest.raises(UnknownEncryptionKey):
        await before.decode(new)


async def test_unknown_key_id_error_names_the_id_and_the_fix():
    [sealed] = await EncryptionCodec(KeyRing.parse(ENTRY_B)).encode(PAYLOADS[:1])
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A))
    with pytest.raises(UnknownEncryptionKey) as caught:
        await codec.decode([sealed])
    message = str(caught.value)
    assert "key id 'b'" in message
    assert ENV_VAR in message and "it has a" in message
    assert "\n" not in message


async def test_encrypted_payload_without_key_id_is_refused():
    [sealed] = await EncryptionCodec(KeyRing.parse(ENTRY_A)).encode(PAYLOADS[:1])
    del sealed.metadata["encryption-key-id"]
    with pytest.raises(DecryptionFailed, match="no encryption-key-id"):
        await EncryptionCodec(KeyRing.parse(ENTRY_A)).decode([sealed])


async def test_unencrypted_payloads_pass_through_unchanged():
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A))
    [sealed] = await codec.encode(PAYLOADS[:1])
    mixed = [PAYLOADS[0], sealed, PAYLOADS[2]]
    decoded = await codec.decode(mixed)
    assert decoded == [PAYLOADS[0], PAYLOADS[0], PAYLOADS[2]]
    assert decoded[0] is PAYLOADS[0]


def test_generated_entries_parse_and_differ():
    first, second = generate_key_entry("k2026"), generate_key_entry("k2026")
    assert first.startswith("k2026:") and first != second
    ring = KeyRing.parse(f"{first},{second.replace('k2026', 'k2025')}")
    assert ring.current_id == "k2026" and ring.key_ids == ("k2026", "k2025")
    assert len(base64.urlsafe_b64decode(first.split(":", 1)[1])) == 32
    with pytest.raises(InvalidInput, match="not valid"):
        generate_key_entry("has space")


def test_key_text_accepts_standard_urlsafe_and_unpadded_base64():
    key = bytes([0xFB, 0xFF] * 16)  # encodes with '+' '/' (standard) or '-' '_' (urlsafe)
    standard = base64.b64encode(key).decode()
    urlsafe = base64.urlsafe_b64encode(key).decode().rstrip("=")
    assert "+" in standard or "/" in standard
    for text in (standard, urlsafe, f"  {standard}  "):
        ring = KeyRing.parse(f"k:{text}")
        assert ring.cipher("k") is not None
    assert KeyRing.from_env({ENV_VAR: f" {ENTRY_A} "}).current_id == "a"


SECRET = base64.b64encode(b"S" * 32).decode()  # distinctive key material


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SECRET, "entry 1 is not id:base64-key"),
        (f"{ENTRY_A},{SECRET}", "entry 2 is not id:base64-key"),
        (f"{ENTRY_A},", "entry 2 is not id:base64-key"),
        (f":{SECRET}", "entry 1 is not id:base64-key"),
        ("k1:", "entry 1 is not id:base64-key"),
        (f"bad id:{SECRET}", "entry 1 has an invalid key id"),
        (f"{SECRET}:k1", "entry 1 has an invalid key id"),  # id and key swapped
        (f"k1:{SECRET[:-4]}!!!!", "entry 1 has a key that is not base64"),
        ("k1:" + base64.b64encode(b"S" * 16).decode(), "entry 1 is a 16-byte key, not 32 bytes"),
        ("k1:" + base64.b64encode(b"S" * 33).decode(), "entry 1 is a 33-byte key, not 32 bytes"),
        (f"k1:{SECRET},k1:{SECRET}", "entry 2 repeats the key id"),
        ("   ", "is empty"),
    ],
    ids=lambda value: value[:20].replace(" ", "_") if isinstance(value, str) else None,
)
def test_key_ring_errors_are_one_line_name_the_variable_and_hold_no_key(text, expected):
    with pytest.raises(InvalidInput) as caught:
        KeyRing.parse(text)
    message = str(caught.value)
    assert message.startswith(f"{ENV_VAR}: ")
    assert expected in message
    assert "escalator keygen" in message
    assert "\n" not in message
    for secret in (SECRET, SECRET[:12], base64.b64encode(b"S" * 16).decode()[:12]):
        assert secret not in message
    # Nor in a chained exception (e.g. binascii's) that a traceback would print.
    error = caught.value
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_reprs_name_key_ids_only():
    ring = KeyRing.parse(f"{ENTRY_B},{ENTRY_A}")
    codec = EncryptionCodec(ring)
    for text in (repr(ring), repr(codec), str(codec)):
        assert "'b'" in text and "'a'" in text
        for secret in (ENTRY_A.split(":")[1], ENTRY_B.split(":")[1], repr(KEY_A), repr(KEY_B)):
            assert secret not in text
    assert repr(ring) == "KeyRing(encrypts='b', decrypts=['b', 'a'])"


def test_data_converter_is_plain_pydantic_without_the_variable():
    assert data_converter({}) is pydantic_data_converter
    assert data_converter({ENV_VAR: ""}) is pydantic_data_converter
    assert data_converter({ENV_VAR: "  "}) is pydantic_data_converter


def test_data_converter_with_a_bad_variable_fails_with_the_one_line_error():
    with pytest.raises(InvalidInput, match=f"^{ENV_VAR}: entry 1 is not id:base64-key"):
        data_converter({ENV_VAR: "not-a-key"})


async def test_data_converter_with_the_variable_encrypts_pydantic_values():
    converter = data_converter({ENV_VAR: f"{ENTRY_B},{ENTRY_A}"})
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.key_id == "b"
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class

    customer = Customer(name="Jane Roe", email="jane@acme.example")
    encoded = await converter.encode([customer, "free text"])
    raw = b"".join(p.SerializeToString() for p in encoded)
    assert b"Jane Roe" not in raw and b"jane@acme.example" not in raw and b"free text" not in raw
    assert all(p.metadata["encoding"] == b"binary/encrypted" for p in encoded)
    assert await converter.decode(encoded, [Customer, str]) == [customer, "free text"]
    # A plain pydantic client cannot read them.
    with pytest.raises(Exception, match="binary/encrypted"):
        await pydantic_data_converter.decode(encoded, [Customer, str])


async def test_data_converter_encrypts_failure_messages_too():
    converter = data_converter({ENV_VAR: ENTRY_A})
    assert converter.failure_converter_class is DefaultFailureConverterWithEncodedAttributes
    failure = Failure()
    try:
        raise ApplicationError("550 mailbox unavailable: jane@acme.example", type="Permanent")
    except ApplicationError as error:
        await converter.encode_failure(error, failure)
    assert b"jane@acme.example" not in failure.SerializeToString()
    assert failure.application_failure_info.type == "Permanent"  # the type stays readable
    restored = await converter.decode_failure(failure)
    assert isinstance(restored, ApplicationError)
    assert restored.message == "550 mailbox unavailable: jane@acme.example"


# -- ESCALATOR_REQUIRE_ENCRYPTION ----------------------------------------------------------


async def test_a_plaintext_payload_is_refused_when_encryption_is_required():
    codec = EncryptionCodec(KeyRing.parse(ENTRY_A), require_encryption=True)
    encrypted = await codec.encode(PAYLOADS[:1])
    decoded = await codec.decode([*encrypted, *PAYLOADS])
    assert decoded[0] == PAYLOADS[0]  # encrypted ones read as usual
    for refused in decoded[1:]:
        assert refused == refused_payload()
        assert b"Jane" not in refused.SerializeToString()  # nothing of the original
    # What the workflow and clients see: the marker, which names the reason.
    [value] = pydantic_data_converter.payload_converter.from_payloads([decoded[1]])
    assert payload_refusal.refusal(value) == (
        "payload not encrypted; ESCALATOR_REQUIRE_ENCRYPTION is on"
    )
    assert payload_refusal.refusal({"case_id": "x"}) is None
    # Without the requirement, plaintext passes through (payloads from before encryption).
    assert await EncryptionCodec(KeyRing.parse(ENTRY_A)).decode(PAYLOADS) == PAYLOADS


async def test_data_converter_requires_encryption_from_the_variable():
    converter = data_converter({ENV_VAR: ENTRY_A, REQUIRE_ENV_VAR: "true"})
    assert converter.payload_codec.require_encryption
    assert "require_encryption=True" in repr(converter.payload_codec)
    [value] = await converter.decode(PAYLOADS[:1])
    assert payload_refusal.refusal(value) is not None
    for off in ("", "false", "0", "no", "off"):
        assert not data_converter(
            {ENV_VAR: ENTRY_A, REQUIRE_ENV_VAR: off}
        ).payload_codec.require_encryption


def test_requiring_encryption_without_a_key_is_a_one_line_error():
    for environ in ({REQUIRE_ENV_VAR: "true"}, {REQUIRE_ENV_VAR: "1", ENV_VAR: "  "}):
        with pytest.raises(InvalidInput) as caught:
            data_converter(environ)
        message = str(caught.value)
        assert message.startswith(f"{REQUIRE_ENV_VAR}=true needs {ENV_VAR}")
        assert "escalator keygen" in message and "\n" not in message
    with pytest.raises(InvalidInput, match=f"^{REQUIRE_ENV_VAR}='maybe': must be true or false"):
        data_converter({ENV_VAR: ENTRY_A, REQUIRE_ENV_VAR: "maybe"})
