"""What a message may say about clinical data and secrets: one rule, used by every message that could carry them.

Notes and patient ids are protected health information, and stderr, Ray's worker logs and result folders are
read by more people than the data is. So a message never quotes a cell, a header or an id: it says where (file,
row, column) and shows a value only as `mask(value)` — its first characters and its length, enough to tell
"1.0" from "yes" and a label from a note pasted into the wrong column. Ids are never shown, not even masked.
Secrets in URLs (an Optuna storage or an MLflow tracking URI) are shown as `redact_url(url)`.
"""
from __future__ import annotations

import re

SHOWN_CHARS = 3
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/@:\s]*):[^@/\s]*@")
_QUERY_SECRET = re.compile(r"(?i)(?P<key>[?&](?:password|passwd|pwd|token|secret|access_key|api_key)=)[^&\s]*")


def mask(value: object) -> str:
    """A cell or header as a message may show it: its first characters and its length, never the whole."""
    text = str(value)
    if len(text) <= SHOWN_CHARS:
        return repr(text)
    return f"'{text[:SHOWN_CHARS]}…' ({len(text)} chars)"


def redact_url(text: str) -> str:
    """`text` with every URL password (`scheme://user:secret@host`) and secret query parameter replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:***@", str(text))
    return _QUERY_SECRET.sub(lambda m: f"{m.group('key')}***", text)
