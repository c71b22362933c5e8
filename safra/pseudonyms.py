"""Pseudonyms: the keyed hash that replaces CPF/CNPJ, names and land registry numbers from
silver on, computed in Python exactly as the lakehouse computes it.

``pseudonym(value)`` is HMAC-SHA256 keyed by ``SAFRA_PSEUDONYM_KEY`` (UTF-8 bytes) over the
value's UTF-8 bytes, as lowercase hex. A tax id is reduced to its digits first
(:func:`tax_id_pseudonym`), so ``123.456.789-09`` and ``12345678909`` get one pseudonym.

In the lakehouse, Trino computes them with Safra's plugin functions ``safra_pseudonym`` and
``safra_tax_id_pseudonym``, keyed by a copy of the key only the Trino process reads; no SQL text
carries the key. :func:`check_trino_key` confirms Trino's key is this one.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from safra.settings import Settings

_NOT_DIGIT = re.compile(r"[^0-9]")


def tax_id_digits(value: str) -> str:
    """The digits of a CPF/CNPJ, punctuation and spaces dropped."""
    return _NOT_DIGIT.sub("", value)


def pseudonym(value: str, key: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``value`` keyed by ``key``."""
    return hmac.new(key.encode(), value.encode(), hashlib.sha256).hexdigest()


def tax_id_pseudonym(value: str, key: str) -> str:
    """The pseudonym of a CPF/CNPJ: of its digits only."""
    return pseudonym(tax_id_digits(value), key)


KEY_CHECK_VALUE = "safra-pseudonym-key-check"
"""What :func:`check_trino_key` hashes on both sides (no secret: the key stays out of the SQL)."""


class PseudonymKeyMismatch(ValueError):
    """Trino cannot compute pseudonyms, or computes them with another key than SAFRA_PSEUDONYM_KEY;
    the message names the cause and the fix."""


def check_trino_key(settings: Settings) -> None:
    """Raise :class:`PseudonymKeyMismatch` unless Trino's ``safra_pseudonym`` equals
    :func:`pseudonym` under ``SAFRA_PSEUDONYM_KEY`` (ValueError when that is unset)."""
    import trino

    from safra.lakehouse import trino_query

    key = settings.require_pseudonym_key()
    restart = (
        "Fix: restart Trino with Safra's plugin and the current key: `safra stack down trino`, "
        "then `safra stack up`."
    )
    try:
        [[computed]] = trino_query(
            settings, f"select safra_pseudonym('{KEY_CHECK_VALUE}')", source="safra-key-check"
        )
    except trino.exceptions.TrinoQueryError as exc:
        raise PseudonymKeyMismatch(
            f"Trino at {settings.trino_url} cannot compute pseudonyms "
            f"({exc.error_name}: {exc.message}). {restart}"
        ) from exc
    if computed != pseudonym(KEY_CHECK_VALUE, key):
        raise PseudonymKeyMismatch(
            f"Trino at {settings.trino_url} computes pseudonyms with another key than "
            f"SAFRA_PSEUDONYM_KEY (it was started before the key changed). {restart}"
        )
