"""Brazilian tax ids: CPF (people, 11 digits) and CNPJ (companies, 14 digits), with their
modulo-11 check digits.

The validators accept the usual punctuation (``123.456.789-09``, ``12.345.678/0001-95``) and
reject ids whose digits are all equal. The simulator generates ids with :func:`with_check_digits`;
the scoring API refuses a valid CPF or CNPJ where a pseudonymous applicant id belongs.
"""

from __future__ import annotations

import numpy as np

CPF_WEIGHTS_1 = np.arange(10, 1, -1)  # 10..2 over the 9 base digits
CPF_WEIGHTS_2 = np.arange(11, 1, -1)  # 11..2 over the 9 base digits and the first check digit
CNPJ_WEIGHTS_1 = np.array([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
CNPJ_WEIGHTS_2 = np.array([6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
_PUNCTUATION = str.maketrans("", "", ".-/ ")


def _check_digit(digits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Modulo-11 check digit of each row of ``digits`` (shape ``(n, len(weights))``)."""
    remainder = (digits * weights).sum(axis=1) % 11
    return np.where(remainder < 2, 0, 11 - remainder)


def with_check_digits(base: np.ndarray, weights_1: np.ndarray, weights_2: np.ndarray) -> np.ndarray:
    """Each row of ``base`` (digits) followed by its two check digits."""
    first = _check_digit(base, weights_1)
    with_first = np.column_stack([base, first])
    return np.column_stack([with_first, _check_digit(with_first, weights_2)])


def _digits(value: object, length: int) -> np.ndarray | None:
    if not isinstance(value, str):
        return None
    raw = value.strip().translate(_PUNCTUATION)
    if len(raw) != length or not raw.isascii() or not raw.isdigit() or len(set(raw)) == 1:
        return None
    return np.frombuffer(raw.encode("ascii"), dtype=np.uint8).astype(np.int64)[None, :] - ord("0")


def is_valid_cpf(value: object) -> bool:
    """True when ``value`` is a CPF with correct check digits (punctuation allowed)."""
    digits = _digits(value, 11)
    if digits is None:
        return False
    expected = with_check_digits(digits[:, :9], CPF_WEIGHTS_1, CPF_WEIGHTS_2)
    return bool((expected == digits).all())


def is_valid_cnpj(value: object) -> bool:
    """True when ``value`` is a numeric CNPJ with correct check digits (punctuation allowed)."""
    digits = _digits(value, 14)
    if digits is None:
        return False
    expected = with_check_digits(digits[:, :12], CNPJ_WEIGHTS_1, CNPJ_WEIGHTS_2)
    return bool((expected == digits).all())


def is_valid_tax_id(value: object, tipo_pessoa: str | None = None) -> bool:
    """True when ``value`` is a valid CPF or CNPJ; with ``tipo_pessoa``, the one that type needs.

    ``FISICA`` needs a CPF, ``JURIDICA`` a CNPJ.
    """
    if tipo_pessoa == "FISICA":
        return is_valid_cpf(value)
    if tipo_pessoa == "JURIDICA":
        return is_valid_cnpj(value)
    if tipo_pessoa is not None:
        return False
    return is_valid_cpf(value) or is_valid_cnpj(value)
