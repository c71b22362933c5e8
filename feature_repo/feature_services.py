"""Feature services: one versioned service per model contract.

``credit_model_v1`` is what the credit model reads: the applicant's history (mapped to the
model's ``hist_*`` inputs by ``ml.features.history_columns``, in training and in serving)
and the latest profile (area, crop, experience, score), which serving uses as defaults for what a
short scoring request does not say. A change to this list is a new service (``credit_model_v2``),
never an edit: models trained on v1 keep reading v1.
"""

from feast import FeatureService
from feature_views import proponente_historico

credit_model_v1 = FeatureService(
    name="credit_model_v1",
    features=[
        proponente_historico[
            [
                "n_solicitacoes",
                "valor_medio",
                "valor_max",
                "valor_desvio",
                "score_medio",
                "share_ibama",
                "ultima_solicitacao",
                "inadimplencias_anteriores",
                "desfechos_conhecidos",
                "perfil_volatilidade",
                "perfil_frequencia",
                "area_total_hectares",
                "cultura_principal",
                "anos_experiencia",
                "serasa_score",
            ]
        ]
    ],
    description="Inputs of the credit default model (history before the application + profile).",
    tags={"model": "safra-credit", "version": "1"},
)
