"""Brazilian tax ids: CPF (people, 11 digits) and CNPJ (companies, 14 digits), with check digits.

Generated ids are digits only. The validators also accept the usual punctuation
(``123.456.789-09``, ``12.345.678/0001-95``) and reject ids whose digits are all equal.
"""

from __future__ import annotations

import numpy as np

_CPF_WEIGHTS_1 = np.arange(10, 1, -1)  # 10..2 over the 9 base digits
_CPF_WEIGHTS_2 = np.arange(11, 1, -1)  # 11..2 over the 9 base digits and the first check digit
_CNPJ_WEIGHTS_1 = np.array([5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
_CNPJ_WEIGHTS_2 = np.array([6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
_PUNCTUATION = str.maketrans("", "", ".-/ ")


def _check_digit(digits: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Modulo-11 check digit of each row of ``digits`` (shape ``(n, len(weights))``)."""
    remainder = (digits * weights).sum(axis=1) % 11
    return np.where(remainder < 2, 0, 11 - remainder)


def _with_check_digits(
    base: np.ndarray, weights_1: np.ndarray, weights_2: np.ndarray
) -> np.ndarray:
    first = _check_digit(base, weights_1)
    with_first = np.column_stack([base, first])
    return np.column_stack([with_first, _check_digit(with_first, weights_2)])


def _avoid_repeated_digits(base: np.ndarray) -> np.ndarray:
    repeated = (base == base[:, :1]).all(axis=1)
    base[repeated, -1] = (base[repeated, -1] + 1) % 10
    return base


def _to_strings(digits: np.ndarray) -> list[str]:
    width = digits.shape[1]
    as_bytes = (digits.astype(np.uint8) + ord("0")).tobytes()
    return [as_bytes[i : i + width].decode("ascii") for i in range(0, len(as_bytes), width)]


def generate_cpfs(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` random valid CPFs (11 digits, no punctuation)."""
    base = _avoid_repeated_digits(rng.integers(0, 10, size=(n, 9)))
    return _to_strings(_with_check_digits(base, _CPF_WEIGHTS_1, _CPF_WEIGHTS_2))


def generate_cnpjs(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` random valid CNPJs of head offices (8-digit root, branch ``0001``, 14 digits)."""
    root = rng.integers(0, 10, size=(n, 8))
    branch = np.tile([0, 0, 0, 1], (n, 1))
    base = np.column_stack([root, branch])
    return _to_strings(_with_check_digits(base, _CNPJ_WEIGHTS_1, _CNPJ_WEIGHTS_2))


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
    expected = _with_check_digits(digits[:, :9], _CPF_WEIGHTS_1, _CPF_WEIGHTS_2)
    return bool((expected == digits).all())


def is_valid_cnpj(value: object) -> bool:
    """True when ``value`` is a numeric CNPJ with correct check digits (punctuation allowed)."""
    digits = _digits(value, 14)
    if digits is None:
        return False
    expected = _with_check_digits(digits[:, :12], _CNPJ_WEIGHTS_1, _CNPJ_WEIGHTS_2)
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
