"""Case text made safe to print on a terminal.

Case text (titles, notes, names, reasons, AI output, mail subjects) is untrusted: a
title like ``"\\x1b]0;pwned\\x07\\x1b[2J"`` would retitle and clear the operator's
terminal, ``"\\r"`` or ``"\\x08"`` would overwrite what is already on the line, an
embedded newline would forge a line of CLI output, and ``"\\u202e"`` would make a
line read differently from what it contains.

The convention: every character that is not meant to be *seen* is shown as the
escape Python's ``repr()`` would write for it, so it is visible and inert:

=====================================  =========================================
character                              shown as
=====================================  =========================================
tab, line feed, carriage return        ``\\t``, ``\\n``, ``\\r`` (2 characters)
other C0 controls, DEL, C1 controls    ``\\xNN``, e.g. ESC -> ``\\x1b``, CSI -> ``\\x9b``
format characters (Unicode ``Cf``:     ``\\uNNNN`` or ``\\UNNNNNNNN``,
bidi overrides and isolates, zero-     e.g. RIGHT-TO-LEFT OVERRIDE -> ``\\u202e``
width characters, the BOM, ...),
line/paragraph separators (``Zl``,
``Zp``), lone surrogates (``Cs``)
=====================================  =========================================

Everything else is kept as it is: letters with accents, CJK, emoji, symbols,
spaces, and backslashes (so a Windows path reads normally; the escapes are a
display form, not a reversible encoding). Code points this Python's Unicode
database does not know yet are kept too, since newer emoji are among them. One
consequence of showing every format character: an emoji ZWJ sequence such as
"woman technologist" prints as its parts joined by ``\\u200d``.

A one-line field (the default) shows newlines as ``\\n`` too, so it stays one line.
Text the CLI prints on several lines on purpose (``multiline=True``) keeps line
feeds; a Windows line end (CR LF) is a plain line feed there, while a lone CR is
still shown as ``\\r``.
"""

from __future__ import annotations

import re
import unicodedata

# Unicode categories that are never printed as-is: controls, format characters
# (bidi controls and other invisibles), surrogates, and line/paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_CRLF = re.compile(r"\r\n")


def is_hidden(char: str) -> bool:
    """True if `char` (one character) would act on the terminal or hide what a line says."""
    return unicodedata.category(char) in _HIDDEN_CATEGORIES


def visible_escape(char: str) -> str:
    """`char` written as a visible escape: ``\\x1b``, ``\\u202e``, ``\\n``."""
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def terminal_safe(text: str | None, *, multiline: bool = False) -> str:
    """`text` with every control and format character shown as a visible escape.

    One line by default (newlines become ``\\n``); with `multiline`, line feeds are
    kept and CR LF becomes a line feed. `None` is the empty string. The result is
    unchanged by a second call.
    """
    if not text:
        return ""
    if multiline:
        text = _CRLF.sub("\n", text)
    if not any(is_hidden(c) for c in text):
        return str(text)  # a str subclass (an email header) becomes a plain str
    return "".join(
        c if (multiline and c == "\n") or not is_hidden(c) else visible_escape(c) for c in text
    )


def json_terminal_safe(json_text: str) -> str:
    """Serialised JSON with every hidden character inside its strings as a ``\\u`` escape.

    JSON's own syntax is printable ASCII, so hidden characters can only be inside
    strings; ``\\uNNNN`` there decodes to the same character, so the document means
    exactly what it meant (``json.loads`` gives the same value) but prints safely.
    Line feeds between tokens (indentation) are kept.
    """
    return "".join(_json_escape(c) if c != "\n" and is_hidden(c) else c for c in json_text)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # outside the BMP: a UTF-16 surrogate pair, as JSON requires
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
