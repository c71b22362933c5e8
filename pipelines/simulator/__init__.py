"""The Safra simulator: synthetic rural-credit applications, their outcomes and drift scenarios.

The hidden default-probability model (:mod:`pipelines.simulator.hidden_model`) is the ground
truth; training code must not import it.
"""

from pipelines.simulator.documents import (
    generate_cnpjs,
    generate_cpfs,
    is_valid_cnpj,
    is_valid_cpf,
    is_valid_tax_id,
)
from pipelines.simulator.generator import (
    applications_frame,
    generate_applications,
    generate_outcomes,
    labelled_frame,
    live_applications,
)
from pipelines.simulator.hidden_model import best_achievable_auc, default_probability
from pipelines.simulator.scenarios import SCENARIOS, Scenario, get_scenario

__all__ = [
    "SCENARIOS",
    "Scenario",
    "applications_frame",
    "best_achievable_auc",
    "default_probability",
    "generate_applications",
    "generate_cnpjs",
    "generate_cpfs",
    "generate_outcomes",
    "get_scenario",
    "is_valid_cnpj",
    "is_valid_cpf",
    "is_valid_tax_id",
    "labelled_frame",
    "live_applications",
]
