"""Batch de-duplication (批量去重) of the whole index with splink on DuckDB.

The comparison levels are those of ``scoring`` written as SQL, so the m/u splink estimates (u by
random sampling, m by expectation maximisation on two blockings) become the ``MatchParameters``
the online matcher uses. The batch also scores every blocked pair and clusters them: clusters
spanning several golden records are the duplicates the online matcher missed.

splink 5 note: ``DuckDBAPI().register(frame)`` gives the table ``Linker(table, settings)`` takes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pandas as pd

from rhip.identity.scoring import DEFAULT_MU, MatchParameters

_SWAPPED = "substr({r}, 1, 5) || substr({r}, 9, 2) || '-' || substr({r}, 6, 2)"
_PARTS = " + ".join(
    f"CASE WHEN substr(birth_date_l, {a}, {n}) = substr(birth_date_r, {a}, {n}) THEN 1 ELSE 0 END"
    for a, n in ((1, 4), (6, 2), (9, 2))
)
LEVEL_SQL: dict[str, list[tuple[str, str]]] = {
    "name": [
        ("null", "name_pinyin_l IS NULL OR name_pinyin_r IS NULL"),
        ("exact", "name_folded_l = name_folded_r"),
        ("pinyin", "name_pinyin_l = name_pinyin_r"),
        ("one_char", "length(name_folded_l) = length(name_folded_r) "
                     "AND levenshtein(name_folded_l, name_folded_r) = 1"),
        ("close", "abs(length(name_pinyin_l) - length(name_pinyin_r)) <= 2 "
                  "AND levenshtein(name_pinyin_l, name_pinyin_r) <= 2"),
        ("else", "ELSE"),
    ],
    "birth_date": [
        ("null", "birth_date_l IS NULL OR birth_date_r IS NULL"),
        ("exact", "birth_date_l = birth_date_r"),
        ("swapped", "birth_date_l = " + _SWAPPED.format(r="birth_date_r")),
        ("one_part", f"({_PARTS}) = 2"),
        ("else", "ELSE"),
    ],
    "sex": [("null", "sex_l IS NULL OR sex_r IS NULL"), ("exact", "sex_l = sex_r"),
            ("else", "ELSE")],
    "phone": [("null", "phone_l IS NULL OR phone_r IS NULL"), ("exact", "phone_l = phone_r"),
              ("else", "ELSE")],
    "address": [
        ("null", "(address_key_l IS NULL OR address_key_r IS NULL) "
                 "AND (district_l IS NULL OR district_r IS NULL)"),
        ("exact", "address_key_l = address_key_r"),
        ("district", "district_l = district_r"),
        ("else", "ELSE"),
    ],
    # batch only: the online matcher links on the resident ID deterministically
    "resident_id": [
        ("null", "rid_hash_l IS NULL OR rid_hash_r IS NULL"),
        ("exact", "rid_hash_l = rid_hash_r"),
        ("else", "ELSE"),
    ],
}  # fmt: skip
BLOCKING = [
    "l.birth_date = r.birth_date AND l.sex = r.sex",
    "l.name_pinyin = r.name_pinyin AND substr(l.birth_date, 1, 4) = substr(r.birth_date, 1, 4)",
    "l.phone = r.phone",
    "l.rid_hash = r.rid_hash",
]
M_FLOOR, U_FLOOR = 1e-3, 1e-7
COLUMNS = ["unique_id", "name_folded", "name_pinyin", "birth_date", "sex", "phone", "address_key",
           "district", "rid_hash"]  # fmt: skip


@dataclass
class DedupeResult:
    parameters: MatchParameters
    clusters: pd.DataFrame  # unique_id, cluster_id
    pairs: int  # blocked pairs scored


def settings() -> dict:
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 1e-4,
        "blocking_rules_to_generate_predictions": [{"blocking_rule": b} for b in BLOCKING],
        "comparisons": [
            {
                "output_column_name": comp,
                "comparison_levels": [
                    {
                        "sql_condition": sql,
                        "label_for_charts": label,
                        "is_null_level": label == "null",
                    }
                    for label, sql in levels
                ],
            }
            for comp, levels in LEVEL_SQL.items()
        ],
        "retain_intermediate_calculation_columns": False,
    }


def _input(frame: pd.DataFrame) -> pd.DataFrame:
    """The prepared match columns with empty strings as NULL, as splink expects."""
    out = frame[COLUMNS].copy()
    for col in COLUMNS[1:]:
        out[col] = out[col].astype(object).where(out[col].notna() & (out[col] != ""), None)
    return out


def run(
    frame: pd.DataFrame, *, threshold: float = 0.95, seed: int = 1, max_pairs: float = 2e6
) -> DedupeResult:
    """Estimate parameters on ``frame`` (``unique_id`` + match columns) and cluster it."""
    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.WARNING)
    db = DuckDBAPI()
    table = db.register(_input(frame))
    linker = Linker(table, settings(), log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match([BLOCKING[3]], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=seed)
    linker.training.estimate_parameters_using_expectation_maximisation(BLOCKING[0])
    linker.training.estimate_parameters_using_expectation_maximisation(
        "l.name_pinyin = r.name_pinyin"
    )
    params = parameters_from_model(linker.misc.save_model_to_json())
    predictions = linker.inference.predict(threshold_match_probability=0.01)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=threshold
    ).as_pandas_dataframe()[["unique_id", "cluster_id"]]
    pairs = _count(predictions)
    return DedupeResult(params, clusters, pairs)


def _count(predictions) -> int:
    return len(predictions.as_pandas_dataframe(limit=None))


def parameters_from_model(model: dict) -> MatchParameters:
    """m/u of the online matcher's comparisons from a splink model (levels named by label)."""
    mu: dict[str, dict[str, tuple[float, float]]] = {}
    for comp in model["comparisons"]:
        name = comp["output_column_name"]
        if name not in DEFAULT_MU:
            continue
        levels = {}
        for level in comp["comparison_levels"]:
            label = level.get("label_for_charts")
            if label in DEFAULT_MU[name]:
                m = level.get("m_probability") or DEFAULT_MU[name][label][0]
                u = level.get("u_probability") or DEFAULT_MU[name][label][1]
                # floors: a level never seen among training matches (people move, clerks
                # mistype sex) still happens in life; it must not veto a link on its own
                levels[label] = (max(float(m), M_FLOOR), max(float(u), U_FLOOR))
        mu[name] = {**DEFAULT_MU[name], **levels}
    default = MatchParameters.default()
    return MatchParameters(
        mu,
        default.auto_link,
        default.review,
        float(model["probability_two_random_records_match"]),
        source="splink",
    )
