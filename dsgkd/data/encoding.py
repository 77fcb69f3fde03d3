"""Which codec reads a notes file, and a one-line error naming the first byte it cannot decode.

pandas would only say "codec can't decode"; the user needs the absolute offset, the line and an encoding
that does decode the file (Korean EMR exports are often cp949). The file is checked block by block, so a
file too large to hold (`dsgkd predict`) costs one streaming pass, and `emr` reports the same message.
"""
from __future__ import annotations

import codecs
from pathlib import Path

from dsgkd.errors import UserError

SUGGEST = ("utf-8", "cp949", "utf-16")  # hinted for a file that does not decode, most likely first for Korean exports
BLOCK = 1 << 20  # bytes per read


def codec_for(encoding: str) -> str:
    """The Python codec for `--encoding`; UTF-8 reads through a byte-order mark."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise UserError(f"unknown encoding '{encoding}' (--encoding); e.g. utf-8 or cp949") from None
    return "utf-8-sig" if codec == "utf-8" else codec


def check_encoding(path: Path, encoding: str) -> str:
    """The Python codec to read `path` with, after decoding all of it block by block: a bad byte is
    reported with its offset, its line and an encoding that does decode the file."""
    codec = codec_for(encoding)
    bad = _first_bad_byte(path, codec)
    if bad is not None:
        offset, byte, line = bad
        hint = next((c for c in SUGGEST if codecs.lookup(c).name != codecs.lookup(codec).name
                     and _decodes(path, c)), None)
        advice = f"try --encoding {hint}" if hint else "try --encoding with the file's real encoding (e.g. cp949)"
        raise UserError(f"{path}: is not valid {encoding} (byte 0x{byte:02x} at offset {offset}, "
                        f"line {line}); {advice}")
    return codec


def _first_bad_byte(path: Path, codec: str) -> tuple[int, int, int] | None:
    """(offset, byte, 1-based line) of the first byte `codec` cannot decode, or None."""
    decoder = codecs.getincrementaldecoder(codec)()
    offset, lines = 0, 0
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                # e.object is the bytes the decoder held back from earlier blocks followed by this block
                at = offset - (len(e.object) - len(block)) + e.start
                return at, e.object[e.start], lines + block.count(b"\n", 0, max(0, at - offset)) + 1
            except UnicodeError as e:  # e.g. UTF-16 without a byte-order mark
                raise UserError(f"{path}: is not valid {codec} ({e})") from None
            if not block:
                return None
            offset += len(block)
            lines += block.count(b"\n")


def _decodes(path: Path, codec: str) -> bool:
    if codec == "utf-16":
        with open(path, "rb") as f:
            if f.read(2) not in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
                return False  # almost any even-length byte string "decodes" as UTF-16
    return _first_bad_byte(path, codec) is None
