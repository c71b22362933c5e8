"""Brazil's geography for the simulator: the 27 UFs, a few real municípios each, crops by region.

Coordinates are approximate (two decimals) seats of real municípios; each UF has a bounding box
(approximate, slightly generous) that every generated farm point is clipped into, so a farm always
lies inside its UF's box and within :data:`FARM_JITTER_DEGREES` of its município's seat.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

CROPS: tuple[str, ...] = (
    "SOJA",
    "MILHO",
    "CAFE",
    "CANA_DE_ACUCAR",
    "ALGODAO",
    "FRUTICULTURA",
    "TRIGO",
    "ARROZ",
    "FEIJAO",
    "EUCALIPTO",
)

REGIONS: tuple[str, ...] = ("NORTE", "NORDESTE", "CENTRO_OESTE", "SUDESTE", "SUL")

FARM_JITTER_DEGREES = 0.12
"""Largest offset, in degrees of latitude and of longitude, of a farm from its município's seat."""


@dataclass(frozen=True)
class Municipio:
    nome: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class UF:
    sigla: str
    nome: str
    regiao: str
    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    municipios: tuple[Municipio, ...]
    peso: float
    """Relative share of the country's rural-credit applications coming from this UF."""

    def contains(self, latitude: float, longitude: float) -> bool:
        """True when the point lies in this UF's bounding box."""
        return (
            self.lat_min <= latitude <= self.lat_max and self.lon_min <= longitude <= self.lon_max
        )


# sigla, nome, regiao, lat_min, lat_max, lon_min, lon_max, peso
_UF_ROWS: tuple[tuple[str, str, str, float, float, float, float, float], ...] = (
    ("AC", "Acre", "NORTE", -11.15, -7.10, -73.99, -66.60, 0.6),
    ("AP", "Amapá", "NORTE", -1.24, 4.44, -54.88, -49.87, 0.3),
    ("AM", "Amazonas", "NORTE", -9.82, 2.25, -73.80, -56.10, 0.8),
    ("PA", "Pará", "NORTE", -9.84, 2.59, -58.90, -46.06, 3.0),
    ("RO", "Rondônia", "NORTE", -13.69, -7.97, -66.81, -59.77, 2.5),
    ("RR", "Roraima", "NORTE", -1.58, 5.27, -64.83, -58.89, 0.5),
    ("TO", "Tocantins", "NORTE", -13.47, -5.17, -50.74, -45.70, 3.0),
    ("AL", "Alagoas", "NORDESTE", -10.50, -8.81, -38.24, -35.15, 1.0),
    ("BA", "Bahia", "NORDESTE", -18.35, -8.53, -46.62, -37.34, 6.0),
    ("CE", "Ceará", "NORDESTE", -7.86, -2.78, -41.42, -37.25, 1.5),
    ("MA", "Maranhão", "NORDESTE", -10.26, -1.04, -48.76, -41.80, 3.0),
    ("PB", "Paraíba", "NORDESTE", -8.30, -6.02, -38.77, -34.79, 1.0),
    ("PE", "Pernambuco", "NORDESTE", -9.48, -7.27, -41.36, -34.81, 1.5),
    ("PI", "Piauí", "NORDESTE", -10.93, -2.74, -45.99, -40.37, 2.5),
    ("RN", "Rio Grande do Norte", "NORDESTE", -6.98, -4.83, -38.58, -34.97, 1.0),
    ("SE", "Sergipe", "NORDESTE", -11.57, -9.51, -38.25, -36.39, 1.0),
    ("DF", "Distrito Federal", "CENTRO_OESTE", -16.05, -15.50, -48.29, -47.31, 0.5),
    ("GO", "Goiás", "CENTRO_OESTE", -19.50, -12.39, -53.25, -45.90, 8.0),
    ("MT", "Mato Grosso", "CENTRO_OESTE", -18.04, -7.35, -61.63, -50.22, 12.0),
    ("MS", "Mato Grosso do Sul", "CENTRO_OESTE", -24.07, -17.17, -58.17, -50.92, 6.0),
    ("ES", "Espírito Santo", "SUDESTE", -21.30, -17.89, -41.88, -39.68, 2.0),
    ("MG", "Minas Gerais", "SUDESTE", -22.92, -14.23, -51.05, -39.86, 9.0),
    ("RJ", "Rio de Janeiro", "SUDESTE", -23.37, -20.76, -44.89, -40.96, 1.0),
    ("SP", "São Paulo", "SUDESTE", -25.31, -19.78, -53.11, -44.16, 8.0),
    ("PR", "Paraná", "SUL", -26.72, -22.52, -54.62, -48.02, 10.0),
    ("RS", "Rio Grande do Sul", "SUL", -33.75, -27.08, -57.65, -49.69, 10.0),
    ("SC", "Santa Catarina", "SUL", -29.35, -25.96, -53.84, -48.36, 4.0),
)

# uf, município, latitude and longitude of its seat
_MUNICIPIO_ROWS: tuple[tuple[str, str, float, float], ...] = (
    ("AC", "Rio Branco", -9.97, -67.81),
    ("AC", "Cruzeiro do Sul", -7.63, -72.67),
    ("AC", "Sena Madureira", -9.07, -68.66),
    ("AC", "Tarauacá", -8.16, -70.77),
    ("AC", "Xapuri", -10.65, -68.50),
    ("AP", "Macapá", 0.03, -51.07),
    ("AP", "Santana", -0.06, -51.18),
    ("AP", "Laranjal do Jari", -0.80, -52.45),
    ("AP", "Tartarugalzinho", 1.51, -50.91),
    ("AP", "Oiapoque", 3.84, -51.83),
    ("AM", "Manaus", -3.12, -60.02),
    ("AM", "Itacoatiara", -3.14, -58.44),
    ("AM", "Parintins", -2.63, -56.74),
    ("AM", "Humaitá", -7.51, -63.02),
    ("AM", "Manacapuru", -3.29, -60.62),
    ("PA", "Paragominas", -2.99, -47.35),
    ("PA", "Santarém", -2.44, -54.71),
    ("PA", "Marabá", -5.37, -49.12),
    ("PA", "Redenção", -8.03, -50.03),
    ("PA", "Dom Eliseu", -4.29, -47.55),
    ("RO", "Vilhena", -12.74, -60.15),
    ("RO", "Ji-Paraná", -10.88, -61.95),
    ("RO", "Porto Velho", -8.76, -63.90),
    ("RO", "Cacoal", -11.44, -61.45),
    ("RO", "Ariquemes", -9.91, -63.04),
    ("RR", "Boa Vista", 2.82, -60.67),
    ("RR", "Mucajaí", 2.44, -60.91),
    ("RR", "Alto Alegre", 2.99, -61.31),
    ("RR", "Rorainópolis", 0.94, -60.44),
    ("RR", "Cantá", 2.61, -60.60),
    ("TO", "Palmas", -10.18, -48.33),
    ("TO", "Araguaína", -7.19, -48.21),
    ("TO", "Gurupi", -11.73, -49.07),
    ("TO", "Porto Nacional", -10.71, -48.42),
    ("TO", "Campos Lindos", -7.99, -46.87),
    ("AL", "Arapiraca", -9.75, -36.66),
    ("AL", "Maceió", -9.67, -35.74),
    ("AL", "Palmeira dos Índios", -9.41, -36.63),
    ("AL", "Coruripe", -10.13, -36.18),
    ("AL", "Penedo", -10.29, -36.59),
    ("BA", "Barreiras", -12.15, -45.00),
    ("BA", "Luís Eduardo Magalhães", -12.09, -45.79),
    ("BA", "Vitória da Conquista", -14.86, -40.84),
    ("BA", "Juazeiro", -9.42, -40.50),
    ("BA", "Feira de Santana", -12.27, -38.97),
    ("BA", "Teixeira de Freitas", -17.54, -39.74),
    ("CE", "Fortaleza", -3.73, -38.52),
    ("CE", "Juazeiro do Norte", -7.21, -39.32),
    ("CE", "Sobral", -3.69, -40.35),
    ("CE", "Limoeiro do Norte", -5.15, -38.10),
    ("CE", "Crato", -7.23, -39.41),
    ("MA", "Balsas", -7.53, -46.04),
    ("MA", "Imperatriz", -5.53, -47.48),
    ("MA", "São Luís", -2.53, -44.30),
    ("MA", "Tasso Fragoso", -8.47, -45.75),
    ("MA", "Bacabal", -4.29, -44.78),
    ("PB", "Campina Grande", -7.23, -35.88),
    ("PB", "Sousa", -6.76, -38.23),
    ("PB", "Patos", -7.02, -37.28),
    ("PB", "Guarabira", -6.85, -35.49),
    ("PB", "Mamanguape", -6.84, -35.13),
    ("PE", "Petrolina", -9.39, -40.50),
    ("PE", "Caruaru", -8.28, -35.98),
    ("PE", "Garanhuns", -8.89, -36.49),
    ("PE", "Santa Maria da Boa Vista", -8.81, -39.83),
    ("PE", "Serra Talhada", -7.99, -38.30),
    ("PI", "Uruçuí", -7.23, -44.56),
    ("PI", "Bom Jesus", -9.07, -44.36),
    ("PI", "Teresina", -5.09, -42.80),
    ("PI", "Parnaíba", -2.90, -41.78),
    ("PI", "Floriano", -6.77, -43.02),
    ("RN", "Mossoró", -5.19, -37.34),
    ("RN", "Baraúna", -5.08, -37.62),
    ("RN", "Açu", -5.58, -36.91),
    ("RN", "Natal", -5.79, -35.21),
    ("RN", "Caicó", -6.46, -37.10),
    ("SE", "Aracaju", -10.91, -37.07),
    ("SE", "Itabaiana", -10.68, -37.43),
    ("SE", "Lagarto", -10.92, -37.65),
    ("SE", "Propriá", -10.21, -36.84),
    ("SE", "Simão Dias", -10.74, -37.81),
    ("DF", "Brasília", -15.79, -47.88),
    ("GO", "Rio Verde", -17.79, -50.92),
    ("GO", "Jataí", -17.88, -51.72),
    ("GO", "Cristalina", -16.77, -47.61),
    ("GO", "Mineiros", -17.57, -52.55),
    ("GO", "Goiânia", -16.68, -49.25),
    ("MT", "Sorriso", -12.55, -55.71),
    ("MT", "Sinop", -11.86, -55.50),
    ("MT", "Lucas do Rio Verde", -13.05, -55.91),
    ("MT", "Rondonópolis", -16.47, -54.64),
    ("MT", "Campo Novo do Parecis", -13.67, -57.89),
    ("MT", "Nova Mutum", -13.83, -56.08),
    ("MT", "Cuiabá", -15.60, -56.10),
    ("MS", "Dourados", -22.22, -54.81),
    ("MS", "Maracaju", -21.61, -55.17),
    ("MS", "Campo Grande", -20.44, -54.65),
    ("MS", "Chapadão do Sul", -18.79, -52.62),
    ("MS", "Ponta Porã", -22.54, -55.73),
    ("MS", "Sidrolândia", -20.93, -54.96),
    ("ES", "Linhares", -19.39, -40.07),
    ("ES", "Colatina", -19.54, -40.63),
    ("ES", "Cachoeiro de Itapemirim", -20.85, -41.11),
    ("ES", "São Mateus", -18.72, -39.86),
    ("ES", "Venda Nova do Imigrante", -20.34, -41.13),
    ("MG", "Uberaba", -19.75, -47.93),
    ("MG", "Uberlândia", -18.92, -48.28),
    ("MG", "Patos de Minas", -18.58, -46.52),
    ("MG", "Unaí", -16.36, -46.91),
    ("MG", "Varginha", -21.55, -45.43),
    ("MG", "Patrocínio", -18.94, -46.99),
    ("MG", "Curvelo", -18.76, -44.43),
    ("MG", "João Pinheiro", -17.74, -46.17),
    ("RJ", "Campos dos Goytacazes", -21.75, -41.32),
    ("RJ", "Nova Friburgo", -22.28, -42.53),
    ("RJ", "Teresópolis", -22.41, -42.97),
    ("RJ", "Itaperuna", -21.21, -41.89),
    ("RJ", "Resende", -22.47, -44.45),
    ("SP", "Ribeirão Preto", -21.18, -47.81),
    ("SP", "Piracicaba", -22.73, -47.65),
    ("SP", "Franca", -20.54, -47.40),
    ("SP", "Presidente Prudente", -22.12, -51.39),
    ("SP", "Araraquara", -21.79, -48.18),
    ("SP", "Bauru", -22.31, -49.06),
    ("SP", "Registro", -24.49, -47.84),
    ("PR", "Cascavel", -24.96, -53.46),
    ("PR", "Londrina", -23.31, -51.16),
    ("PR", "Maringá", -23.42, -51.94),
    ("PR", "Ponta Grossa", -25.09, -50.16),
    ("PR", "Guarapuava", -25.39, -51.46),
    ("PR", "Toledo", -24.72, -53.74),
    ("RS", "Passo Fundo", -28.26, -52.41),
    ("RS", "Cruz Alta", -28.64, -53.61),
    ("RS", "Santa Maria", -29.68, -53.81),
    ("RS", "Uruguaiana", -29.75, -57.09),
    ("RS", "Pelotas", -31.77, -52.34),
    ("RS", "Camaquã", -30.85, -51.81),
    ("RS", "Ijuí", -28.39, -53.91),
    ("SC", "Chapecó", -27.10, -52.62),
    ("SC", "Joaçaba", -27.18, -51.51),
    ("SC", "Lages", -27.82, -50.33),
    ("SC", "Videira", -27.01, -51.15),
    ("SC", "Criciúma", -28.68, -49.37),
    ("SC", "São Joaquim", -28.29, -49.93),
)


def _build_ufs() -> dict[str, UF]:
    seats: dict[str, list[Municipio]] = {}
    for sigla, nome, latitude, longitude in _MUNICIPIO_ROWS:
        seats.setdefault(sigla, []).append(Municipio(nome, latitude, longitude))
    return {
        sigla: UF(
            sigla, nome, regiao, lat_min, lat_max, lon_min, lon_max, tuple(seats[sigla]), peso
        )
        for sigla, nome, regiao, lat_min, lat_max, lon_min, lon_max, peso in _UF_ROWS
    }


UFS: MappingProxyType[str, UF] = MappingProxyType(_build_ufs())
"""The 27 UFs by their two-letter code."""

_REGION_CROP_WEIGHTS: dict[str, dict[str, float]] = {
    "NORTE": {"SOJA": 25, "MILHO": 18, "ARROZ": 12, "FEIJAO": 10, "FRUTICULTURA": 16,
              "EUCALIPTO": 7, "CAFE": 5, "CANA_DE_ACUCAR": 4, "ALGODAO": 3},
    "NORDESTE": {"FRUTICULTURA": 28, "FEIJAO": 18, "MILHO": 15, "CANA_DE_ACUCAR": 12,
                 "SOJA": 10, "ALGODAO": 5, "EUCALIPTO": 4, "ARROZ": 5, "CAFE": 3},
    "CENTRO_OESTE": {"SOJA": 42, "MILHO": 25, "ALGODAO": 10, "CANA_DE_ACUCAR": 6, "FEIJAO": 5,
                     "EUCALIPTO": 4, "ARROZ": 3, "CAFE": 2, "FRUTICULTURA": 2, "TRIGO": 1},
    "SUDESTE": {"CANA_DE_ACUCAR": 25, "CAFE": 25, "MILHO": 10, "SOJA": 10, "EUCALIPTO": 8,
                "FRUTICULTURA": 8, "FEIJAO": 6, "ALGODAO": 3, "TRIGO": 3, "ARROZ": 2},
    "SUL": {"SOJA": 35, "MILHO": 20, "TRIGO": 14, "ARROZ": 8, "FEIJAO": 7, "EUCALIPTO": 6,
            "FRUTICULTURA": 5, "CAFE": 2, "CANA_DE_ACUCAR": 2, "ALGODAO": 1},
}  # fmt: skip

_UF_CROP_OVERRIDES: dict[str, dict[str, float]] = {
    "MT": {"SOJA": 45, "MILHO": 27, "ALGODAO": 14},
    "GO": {"SOJA": 40, "CANA_DE_ACUCAR": 12},
    "MS": {"SOJA": 40, "MILHO": 28, "CANA_DE_ACUCAR": 10, "EUCALIPTO": 8},
    "PR": {"SOJA": 40, "MILHO": 25, "TRIGO": 15},
    "RS": {"ARROZ": 20, "TRIGO": 14, "SOJA": 32},
    "SC": {"FRUTICULTURA": 12, "EUCALIPTO": 10, "ARROZ": 8},
    "MG": {"CAFE": 32, "EUCALIPTO": 14, "SOJA": 12},
    "ES": {"CAFE": 45, "FRUTICULTURA": 15, "EUCALIPTO": 10},
    "SP": {"CANA_DE_ACUCAR": 38, "CAFE": 12, "FRUTICULTURA": 12},
    "BA": {"SOJA": 25, "ALGODAO": 12, "EUCALIPTO": 12, "CAFE": 6, "FRUTICULTURA": 18},
    "MA": {"SOJA": 30, "ARROZ": 10},
    "PI": {"SOJA": 30},
    "TO": {"SOJA": 40, "ARROZ": 15},
    "RO": {"CAFE": 18, "SOJA": 22},
    "PA": {"SOJA": 22, "FRUTICULTURA": 22},
    "AL": {"CANA_DE_ACUCAR": 40},
    "PE": {"CANA_DE_ACUCAR": 22, "FRUTICULTURA": 32},
    "RN": {"FRUTICULTURA": 38},
    "CE": {"FRUTICULTURA": 32},
}


def crop_weights(uf: str) -> dict[str, float]:
    """Share of each crop among the farms of a UF (sums to 1; crops not grown there are 0)."""
    weights = dict.fromkeys(CROPS, 0.0)
    weights.update(_REGION_CROP_WEIGHTS[UFS[uf].regiao])
    weights.update(_UF_CROP_OVERRIDES.get(uf, {}))
    total = sum(weights.values())
    return {crop: w / total for crop, w in weights.items()}


def region_of(uf: str) -> str:
    """The region (NORTE, NORDESTE, CENTRO_OESTE, SUDESTE, SUL) of a UF."""
    return UFS[uf].regiao
