"""Which format an upload is, judged by its content (a file name only breaks ties between text formats).

A format's row in the registry names one sniffing rule of the kinds below. Detection goes by stages, cheapest and
surest first: byte signatures, then zip members, then compound-file streams, then the decoded text; within a stage
the rows are tried in registry order, the first that matches wins.
"""

from __future__ import annotations

import codecs
import functools
import io
import re
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from ingest.formats.document import ParseError

if TYPE_CHECKING:
    from ingest.formats.registry import Format


@dataclass(frozen=True)
class Signature:
    """The raw bytes say it (a magic number, a header)."""

    test: Callable[[bytes], bool]


@dataclass(frozen=True)
class ZipMember:
    """A zip archive holding this member."""

    member: str


@dataclass(frozen=True)
class ZipMimetype:
    """A zip archive whose first, stored `mimetype` member says this (OpenDocument, EPUB)."""

    mimetype: str


@dataclass(frozen=True)
class OleStream:
    """A compound file (CFB) with a stream whose name starts with this."""

    prefix: str


@dataclass(frozen=True)
class DecodedUpload:
    """An upload whose decoded text passes the test, read from its bytes (a mail); text submitted as JSON is never
    one."""

    test: Callable[[str], bool]


@dataclass(frozen=True)
class Text:
    """A text format: the decoded text (and the file name, if any) passes the test; the reader gets the text. Also
    decides what text submitted as JSON is."""

    test: Callable[[str, str | None], bool]


Rule = Signature | ZipMember | ZipMimetype | OleStream | DecodedUpload | Text

ZIP = (b"PK\x03\x04", b"PK\x05\x06")
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # Compound File Binary: .msg, and encrypted OOXML files
# A DOCX is a zip archive; its parts are read whole into memory. zipfile never inflates a member past the size
# its header declares, so the declared total bounds what parsing can cost.
MAX_UNZIPPED_BYTES = 128 * 1024 * 1024

_BOMS = (  # UTF-32 first: its little-endian BOM starts with the UTF-16 one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")


def sniff(rows: Sequence[Format], data: bytes, filename: str | None) -> tuple[Format, str | None]:
    """(the upload's format, its decoded text for a text format / None); raise ParseError."""
    if not data.strip():
        raise ParseError("empty file")
    found = _first(rows, Signature, lambda rule: rule.test(data))
    if found:
        return found, None
    if data.startswith(ZIP):
        return _sniff_zip(rows, data), None
    if data.startswith(OLE):
        return _sniff_ole(rows, data), None
    text = decode(data)
    if not text.strip():  # e.g. a lone BOM
        raise ParseError("empty file")
    found = _first(rows, DecodedUpload, lambda rule: rule.test(text))
    if found:
        return found, None
    return text_format(rows, text, filename), text


def text_format(rows: Sequence[Format], text: str, filename: str | None) -> Format:
    found = _first(rows, Text, lambda rule: rule.test(text, filename))
    if found is None:
        raise LookupError("the registry needs a last text format that takes any text")
    return found


def _first(rows: Sequence[Format], kind: type | tuple[type, ...], match: Callable) -> Format | None:
    return next((row for row in rows if isinstance(row.sniff, kind) and match(row.sniff)), None)


def _labels(rows: Sequence[Format], kind: type | tuple[type, ...]) -> str:
    """"A, B or C": the formats sniffed by `kind`, for messages."""
    labels = [row.label for row in rows if isinstance(row.sniff, kind)]
    return " or ".join(filter(None, [", ".join(labels[:-1]), labels[-1]]))


def _sniff_zip(rows: Sequence[Format], data: bytes) -> Format:
    kinds = (ZipMember, ZipMimetype)
    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as e:
        raise ParseError(f"not a valid {_labels(rows, kinds)}: corrupt or truncated zip archive ({e})") from e
    expanded = sum(i.file_size for i in infos)
    if expanded > MAX_UNZIPPED_BYTES:
        raise ParseError(f"zip archive of {len(data)} bytes expands to {expanded} bytes; at most "
                         f"{MAX_UNZIPPED_BYTES}: refused as a possible zip bomb")
    names = [i.filename for i in infos]

    @functools.cache
    def mimetype() -> str | None:  # read only when a row asks, as the member may not be readable
        if "mimetype" not in names:
            return None
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.read("mimetype")[:100].decode("ascii", "replace").strip()

    found = _first(rows, kinds, lambda rule: rule.member in names if isinstance(rule, ZipMember)
                   else mimetype() == rule.mimetype)
    if found:
        return found
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    raise ParseError(f"unsupported file type: zip archive that is not a {_labels(rows, kinds)} (contains {shown})")


def _sniff_ole(rows: Sequence[Format], data: bytes) -> Format:
    import olefile

    try:
        with olefile.OleFileIO(data) as ole:
            streams = ["/".join(s) for s in ole.listdir()]
    except Exception as e:
        raise ParseError(f"not a valid {_labels(rows, OleStream)}: corrupt compound file "
                         f"({type(e).__name__}: {e})") from e
    if "EncryptedPackage" in streams:  # what Office writes for a password-protected docx/pptx/xlsx
        raise ParseError("encrypted (password-protected) Office document: remove the password and send it again")
    found = _first(rows, OleStream, lambda rule: any(s.startswith(rule.prefix) for s in streams))
    if found:
        return found
    # Worded for the one compound-file format there is; a second one would word it afresh.
    raise ParseError("unsupported file type: a compound file (legacy .doc/.xls/.ppt?) that is not an Outlook message")


def decode(data: bytes) -> str:
    """Decode text bytes. BOM wins; else UTF-8; a few invalid bytes in otherwise-UTF-8 text become
    U+FFFD; text that is not UTF-8 at all is read as cp1252 (latin-1 for its 5 undefined bytes).
    charset_normalizer is not used: it guesses wildly on short or German text (utf_16_be,
    cp1250)."""
    codec = next((codec for bom, codec in _BOMS if data.startswith(bom)), None)
    if codec:
        text = data.decode(codec, errors="replace")
    elif b"\x00" in data:  # text without a UTF-16/32 BOM never holds NUL bytes
        raise ParseError(f"unsupported file type: {_describe_binary(data)}")
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("utf-8", errors="replace")
            bad = text.count("\ufffd")
            if sum(ord(c) > 127 for c in text) - bad <= bad:  # not mostly-valid UTF-8
                try:
                    text = data.decode("cp1252")
                except UnicodeDecodeError:
                    text = data.decode("latin-1")
    sample = text[:4096]
    if len(_CONTROL.findall(sample)) > len(sample) / 10:
        raise ParseError(f"unsupported file type: {_describe_binary(data)}")
    return text


def _describe_binary(data: bytes) -> str:
    try:
        import magic  # needs the libmagic system library; only used to word the error

        return f"binary data ({magic.from_buffer(data[:4096])})"
    except Exception:
        return f"binary data (starts with {data[:8]!r})"
