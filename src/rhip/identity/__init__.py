"""Master patient index (患者主索引, MPI): who is this patient, across every institution."""

from rhip.identity.linkage import decide_review, merge, unmerge
from rhip.identity.matcher import OnlineMatcher
from rhip.identity.scoring import MatchParameters
from rhip.identity.service import (
    cross_reference,
    get_person,
    match,
    register,
    register_many,
    search_persons,
)

__all__ = [
    "MatchParameters",
    "OnlineMatcher",
    "cross_reference",
    "decide_review",
    "get_person",
    "match",
    "merge",
    "register",
    "register_many",
    "search_persons",
    "unmerge",
]
