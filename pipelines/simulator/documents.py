"""Brazilian tax ids for the simulator: random valid CPFs (people, 11 digits) and CNPJs
(companies, 14 digits), digits only.

The check digits and the validators live in the ground layer (:mod:`safra.tax_ids`: the scoring
API uses them too); they are re-exported here for the simulator's users.
"""

from __future__ import annotations

import numpy as np

from safra.tax_ids import (
    CNPJ_WEIGHTS_1,
    CNPJ_WEIGHTS_2,
    CPF_WEIGHTS_1,
    CPF_WEIGHTS_2,
    is_valid_cnpj,
    is_valid_cpf,
    is_valid_tax_id,
    with_check_digits,
)

__all__ = ["generate_cnpjs", "generate_cpfs", "is_valid_cnpj", "is_valid_cpf", "is_valid_tax_id"]


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
    return _to_strings(with_check_digits(base, CPF_WEIGHTS_1, CPF_WEIGHTS_2))


def generate_cnpjs(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` random valid CNPJs of head offices (8-digit root, branch ``0001``, 14 digits)."""
    root = rng.integers(0, 10, size=(n, 8))
    branch = np.tile([0, 0, 0, 1], (n, 1))
    base = np.column_stack([root, branch])
    return _to_strings(with_check_digits(base, CNPJ_WEIGHTS_1, CNPJ_WEIGHTS_2))
