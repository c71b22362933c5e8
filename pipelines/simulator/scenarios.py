"""Named drift scenarios, as data.

A scenario changes what the applications look like (the generator reads it) and/or the hidden
default-probability model (the ground truth reads it):

- ``baseline``: the world the first model is trained on.
- ``drought``: a drought in the Center-West hits soybean farms in MT, GO and MS: their declared
  income falls and their defaults rise; nothing changes elsewhere.
- ``bureau_recalibration``: the credit bureau recalibrates its score: every score is reported
  120 points lower and more applicants have none. Applicants are as risky as before, so a model
  trained on the old scores over-estimates risk.
- ``income_overstatement``: companies (PJ) start declaring 40 % more gross income than they earn
  (a change in how revenue is reported), in every UF and crop; they are as risky as before, so a
  model reading the declared income under-estimates their risk. A change in one segment (person
  type) that no single UF or crop shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from pipelines.simulator.geography import CROPS, UFS

BASELINE = "baseline"


@dataclass(frozen=True)
class RegionalShock:
    """A shock to the farms growing one of ``crops`` in one of ``ufs`` (of a person type in
    ``person_types``)."""

    ufs: frozenset[str]
    crops: frozenset[str]
    income_factor: float = 1.0
    """Multiplies the declared gross income of the affected applications (the feature)."""
    logit_shift: float = 0.0
    """Added to the hidden model's log-odds of default for the affected applications."""
    declared_income_factor: float = 1.0
    """Multiplies the declared income too, but the hidden model divides it back: what the
    applicant says changes, not how risky it is."""
    person_types: frozenset[str] = frozenset({"FISICA", "JURIDICA"})


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    serasa_score_shift: int = 0
    """Added to every reported bureau score (clipped to 0..1000). The hidden model subtracts it
    back: the shift changes what the bureau says, not how risky the applicant is."""
    serasa_missing_share: float = 0.05
    """Share of applications without a bureau score."""
    ibama_fine_share: float = 0.03
    """Share of applications with open environmental fines."""
    shocks: tuple[RegionalShock, ...] = ()


SCENARIOS: MappingProxyType[str, Scenario] = MappingProxyType(
    {
        BASELINE: Scenario(name=BASELINE, description="No drift: the reference world."),
        "drought": Scenario(
            name="drought",
            description="Drought in the Center-West: soybean farms in MT, GO and MS declare 25 % "
            "less income and default far more often.",
            shocks=(
                RegionalShock(
                    ufs=frozenset({"MT", "GO", "MS"}),
                    crops=frozenset({"SOJA"}),
                    income_factor=0.75,
                    logit_shift=1.1,
                ),
            ),
        ),
        "bureau_recalibration": Scenario(
            name="bureau_recalibration",
            description="The bureau reports every score 120 points lower and has none for 15 % "
            "of applicants; true risk is unchanged.",
            serasa_score_shift=-120,
            serasa_missing_share=0.15,
        ),
        "income_overstatement": Scenario(
            name="income_overstatement",
            description="Companies declare 40 % more gross income than they earn, in every UF "
            "and crop; true risk is unchanged.",
            shocks=(
                RegionalShock(
                    ufs=frozenset(UFS),
                    crops=frozenset(CROPS),
                    declared_income_factor=1.4,
                    person_types=frozenset({"JURIDICA"}),
                ),
            ),
        ),
    }
)
"""Every named scenario, by name."""


def get_scenario(name: str | None) -> Scenario:
    """The scenario called ``name`` (``None`` means ``baseline``); ValueError if there is none."""
    key = BASELINE if name is None else name
    try:
        return SCENARIOS[key]
    except KeyError:
        raise ValueError(f"unknown scenario {key!r}; known: {sorted(SCENARIOS)}") from None
