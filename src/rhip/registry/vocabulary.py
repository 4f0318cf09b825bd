"""Fixed vocabularies of the institution registry: type, grade, connection status, feeds, functions.

Codes are rhip's own (ASCII, stable in URLs and FHIR codings); the Chinese label is what operators
and pages show. The FHIR code systems below are rhip-defined, declared here once.
"""

from __future__ import annotations

# FHIR code systems and extensions defined by rhip
TYPE_SYSTEM = "urn:rhip:cs:institution-type"
GRADE_SYSTEM = "urn:rhip:cs:hospital-grade"
CONNECTION_SYSTEM = "urn:rhip:cs:connection-status"
FEED_SYSTEM = "urn:rhip:cs:feed"
FUNCTION_SYSTEM = "urn:rhip:cs:collaboration-function"

# 机构类别 institution type
TYPES: dict[str, str] = {
    "public_hospital": "公立医院",
    "private_hospital": "民营医院",
    "clinic": "诊所/门诊部",
    "lab": "第三方医学检验实验室",
    "chc": "社区健康服务中心",
    "public_health": "专业公共卫生机构",
    "maternal_child": "妇幼保健院",
}
HOSPITAL_TYPES = frozenset({"public_hospital", "private_hospital", "maternal_child"})

# 医院等级 hospital grade (NHC grading: level 一/二/三级, class 甲/乙/丙等); label → FHIR code
GRADES: dict[str, str] = {
    "三级甲等": "3A",
    "三级乙等": "3B",
    "三级丙等": "3C",
    "三级": "3U",  # graded level 3, class not yet assessed (未定等)
    "二级甲等": "2A",
    "二级乙等": "2B",
    "二级丙等": "2C",
    "二级": "2U",
    "一级甲等": "1A",
    "一级乙等": "1B",
    "一级丙等": "1C",
    "一级": "1U",
    "未定级": "U",
}
GRADE_BY_CODE: dict[str, str] = {code: label for label, code in GRADES.items()}

# 接入状态 connection status to the platform
CONNECTION_STATUSES: dict[str, str] = {
    "connected": "已接入",
    "testing": "联调测试中",
    "not_connected": "未接入",
}

# 数据上传 feeds an institution sends to the platform
FEEDS: dict[str, str] = {
    "adt": "患者登记 (ADT)",
    "lab": "检验报告",
    "exam": "检查报告",
    "imaging": "影像",
    "epidemic": "传染病/专题数据",
}

# 协同应用 collaboration functions live for the institution
FUNCTIONS: dict[str, str] = {
    "viewing": "调阅",
    "recognition": "检查检验结果互认",
    "referral": "双向转诊",
    "maternal_child": "妇幼保健协同",
    "public_health_report": "公共卫生报告",
}


def grade_label(value: str) -> str | None:
    """The grade label for a label or a FHIR code (``3A`` → ``三级甲等``), else None."""
    if value in GRADES:
        return value
    return GRADE_BY_CODE.get(value)
