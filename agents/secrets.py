"""Secrets the run was given (API keys), kept out of every message, log line and record.

A backend registers each key it reads; `redacted` replaces any of them in a text. The
entry points pass every error line and the manifest through it, and a logging filter does
the same for log records, so a server that echoes the bearer token back in its error text
cannot put the key on screen or on disk.
"""

from __future__ import annotations

import logging

MASK = "[redacted]"
_secrets: set[str] = set()


def register(secret: str) -> str:
    """Remember secret (a key of 4+ characters) for redaction; returns it unchanged."""
    if len(secret) >= 4:
        _secrets.add(secret)
    return secret


def redacted(text: str) -> str:
    """text with every registered secret replaced by MASK."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A log filter that redacts registered secrets from each record's message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            record.msg = redacted(record.getMessage())
            record.args = ()
        return True


def redact_logs() -> None:
    """Install the filter on every handler of the root logger (Hydra's console and file)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
