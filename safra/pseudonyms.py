"""Pseudonyms: the keyed hash that replaces CPF/CNPJ, names and land registry numbers from
silver on, computed in Python exactly as the lakehouse computes it.

``pseudonym(value)`` is HMAC-SHA256 keyed by ``SAFRA_PSEUDONYM_KEY`` (UTF-8 bytes) over the
value's UTF-8 bytes, as lowercase hex. A tax id is reduced to its digits first
(:func:`tax_id_pseudonym`), so ``123.456.789-09`` and ``12345678909`` get one pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import re

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
