"""Interface language (界面语言): Chinese by default, English on request (``?lang=en`` or cookie).

A small catalogue of the pages' fixed texts; domain data (names, report items) is shown as
stored. A missing key shows the key itself, so a gap is visible rather than silent.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

from rhip.exchange.recognition import EXCEPTION_REASONS, REASONS
from rhip.exchange.viewing import FLAGS

LANGS = ("zh", "en")
COOKIE = "rhip_lang"

MESSAGES: dict[str, tuple[str, str]] = {
    "brand": ("区域全民健康信息平台", "Regional Health Information Platform"),
    "nav.overview": ("运行总览", "Overview"),
    "nav.institutions": ("接入机构", "Institutions"),
    "nav.index": ("发展指数", "Development index"),
    "nav.doctor": ("患者调阅", "Patient records"),
    "nav.me": ("我的报告", "My reports"),
    "nav.login": ("登录", "Log in"),
    "nav.logout": ("退出", "Log out"),
    "role.operator": ("平台运维", "Operator"),
    "role.doctor": ("医生", "Doctor"),
    "role.patient": ("居民", "Patient"),
    "role.integrator": ("接入方", "Integrator"),
    "login.title": ("登录", "Log in"),
    "login.username": ("用户名", "Username"),
    "login.password": ("密码", "Password"),
    "login.submit": ("登录", "Log in"),
    "login.failed": ("用户名或密码错误", "Wrong username or password"),
    "login.dev_hint": (
        "演示账号（仅开发模式）：demo-operator / demo-doctor / demo-patient，"
        "密码为 rhip-demo-角色名",
        "Demo accounts (dev mode only): demo-operator / demo-doctor / demo-patient, "
        "password rhip-demo-<role>",
    ),
    "ov.title": ("平台运行总览", "Platform overview"),
    "ov.window": ("统计区间", "Period"),
    "ov.connected": ("接入机构", "Institutions connected"),
    "ov.coverage": ("接入覆盖率", "Coverage"),
    "ov.reports_total": ("报告总数", "Reports stored"),
    "ov.reports_window": ("区间内收到报告", "Reports received in period"),
    "ov.qc_rate": ("质控合格率", "QC pass rate"),
    "ov.repeat_avoided": ("避免重复检查", "Repeat tests avoided"),
    "ov.views_window": ("区间内调阅", "Record views in period"),
    "ov.per_day": ("每日报告接收与调阅", "Reports received and record views per day"),
    "ov.by_type": ("各类机构接入情况", "Institutions connected by type"),
    "ov.quality": ("机构质控合格率（最低 15 家）", "QC pass rate by institution (lowest 15)"),
    "ov.districts": ("各区接入情况", "Connection by district"),
    "ov.lab": ("检验", "Lab"),
    "ov.exam": ("检查", "Exam"),
    "ov.views": ("调阅", "Views"),
    "ov.connected_short": ("已接入", "connected"),
    "ov.total_short": ("机构总数", "total"),
    "ov.not_available": ("尚无数据源", "no source yet"),
    "ov.population": ("常住人口", "Residents"),
    "inst.title": ("接入机构", "Institutions"),
    "inst.search": ("查询", "Search"),
    "inst.name": ("机构名称", "Name"),
    "inst.type": ("类别", "Type"),
    "inst.district": ("辖区", "District"),
    "inst.status": ("接入状态", "Connection"),
    "inst.grade": ("等级", "Grade"),
    "inst.any": ("全部", "Any"),
    "inst.found": ("共 {n} 家", "{n} found"),
    "inst.credit_code": ("统一社会信用代码", "Credit code"),
    "inst.connected_on": ("接入日期", "Connected on"),
    "inst.feeds": ("数据上传", "Feeds"),
    "inst.volumes": ("近 30 日报告量", "Reports, last 30 days"),
    "inst.scorecard": ("质控评分卡（近 30 日）", "Quality scorecard (last 30 days)"),
    "inst.rule": ("规则", "Rule"),
    "inst.checked": ("检查数", "Checked"),
    "inst.passed": ("通过数", "Passed"),
    "inst.rate": ("合格率", "Pass rate"),
    "inst.no_scorecard": ("暂无质控数据", "No quality data yet"),
    "inst.prev": ("上一页", "Previous"),
    "inst.next": ("下一页", "Next"),
    "type.public_hospital": ("公立医院", "Public hospitals"),
    "type.private_hospital": ("民营医院", "Private hospitals"),
    "type.clinic": ("诊所/门诊部", "Clinics"),
    "type.lab": ("第三方检验实验室", "Independent labs"),
    "type.chc": ("社区健康服务中心", "Community health centres"),
    "type.public_health": ("专业公共卫生机构", "Public-health bodies"),
    "type.maternal_child": ("妇幼保健院", "Maternal-child hospitals"),
    "status.connected": ("已接入", "Connected"),
    "status.testing": ("联调测试中", "Testing"),
    "status.not_connected": ("未接入", "Not connected"),
    "doc.title": ("患者调阅", "Patient records"),
    "doc.by_id": ("按身份证号", "By resident ID"),
    "doc.by_name": ("按姓名和出生日期", "By name and birth date"),
    "doc.resident_id": ("居民身份证号", "Resident ID"),
    "doc.name": ("姓名", "Name"),
    "doc.birth_date": ("出生日期", "Birth date"),
    "doc.gender": ("性别", "Sex"),
    "doc.find": ("查找患者", "Find patient"),
    "doc.no_match": ("未找到匹配的患者", "No matching patient"),
    "doc.open": ("调阅", "Open"),
    "doc.purpose_title": ("调阅目的", "Purpose of access"),
    "doc.purpose_hint": (
        "调阅将被记录审计（谁、何时、为何调阅）。请选择目的：",
        "This access is audited (who, when, why). Choose the purpose:",
    ),
    "purpose.TREAT": ("诊疗", "Treatment"),
    "purpose.COC": ("连续诊疗（会诊、转诊）", "Continuity of care (consultation, referral)"),
    "purpose.ETREAT": ("紧急救治（破窗，事后复核）", "Emergency (break-glass, reviewed later)"),
    "doc.timeline": ("跨机构报告时间轴", "Cross-institution report timeline"),
    "doc.reports_n": ("共 {n} 份报告", "{n} reports"),
    "doc.issued": ("报告时间", "Issued"),
    "doc.institution": ("机构", "Institution"),
    "doc.kind": ("类别", "Kind"),
    "doc.item": ("项目", "Item"),
    "doc.abnormal": ("异常", "Abnormal"),
    "doc.status": ("状态", "Status"),
    "rep.title": ("报告详情", "Report"),
    "rep.value": ("结果", "Result"),
    "rep.unit": ("单位", "Unit"),
    "rep.range": ("参考范围", "Reference range"),
    "rep.flag": ("提示", "Flag"),
    "rep.trend": ("趋势", "Trend"),
    "rep.findings": ("检查所见", "Findings"),
    "rep.conclusion": ("诊断意见", "Impression"),
    "rep.specimen": ("标本", "Specimen"),
    "rep.collected": ("采集时间", "Collected"),
    "rep.back": ("返回时间轴", "Back to timeline"),
    "rep.recognition": ("互认核查", "Recognition check"),
    "rep.recognition_na": (
        "互认核查接口尚未上线",
        "The recognition-check service is not available yet",
    ),
    "trend.title": ("单项趋势（跨机构）", "Trend across institutions"),
    "kind.lab": ("检验", "Lab"),
    "kind.exam": ("检查", "Exam"),
    "doc.older": ("更早的报告", "Older reports"),
    "doc.purpose_hint_search": (
        "查找患者与调阅均记录审计，请选择调阅目的。",
        "Finding a patient and opening records are audited: choose the purpose of access.",
    ),
    "rec.title": ("检查检验结果互认核查", "Mutual recognition check"),
    "rec.item": ("互认项目", "Item"),
    "rec.check": ("核查", "Check"),
    "rec.pick": ("请选择项目", "Choose an item"),
    "rec.rule": (
        "有效期 {days} 天 · 范围 {scope} · {eqa}",
        "valid {days} days · scope {scope} · {eqa}",
    ),
    "rec.eqa": ("须通过室间质评", "EQA required"),
    "rec.no_eqa": ("无需室间质评", "no EQA required"),
    "rec.scope.city": ("本市", "city"),
    "rec.scope.province": ("本省", "province"),
    "rec.scope.national": ("全国", "national"),
    "rec.none": ("该患者没有此项目的既往结果", "No earlier result of this item"),
    "rec.summary_yes": (
        "有可互认的结果，可避免重复检查",
        "A result can be recognised: no repeat test needed",
    ),
    "rec.summary_no": ("没有可互认的结果", "No result can be recognised"),
    "rec.recognisable": ("可互认", "Recognisable"),
    "rec.yes": ("是", "Yes"),
    "rec.no": ("否", "No"),
    "rec.reason": ("原因", "Reason"),
    "rec.valid_until": ("有效至", "Valid until"),
    "rec.decision": ("处理", "Decision"),
    "rec.recognise": ("确认互认", "Recognise"),
    "rec.refuse": ("不予互认，重新检查", "Refuse and repeat the test"),
    "rec.refuse_reason": ("例外情形", "Exception reason"),
    "rec.note": ("说明", "Note"),
    "rec.recorded": ("已记录：{decision}", "Recorded: {decision}"),
    "rec.decision.recognised": ("互认", "recognised"),
    "rec.decision.refused": ("不予互认", "refused"),
    "rec.why.no_valid_result": ("结果无效（撤回或未获得）", "Result withdrawn or not obtained"),
    "rec.failed": ("未能记录：{message}", "Not recorded: {message}"),
    "me.title": ("我的检验检查报告", "My lab and exam reports"),
    "idx.title": ("卫生健康信息化发展指数", "Health informatization development index"),
    "idx.synthetic": (
        "合成数据：36 个城市的调查指标由 rhip 生成，仅供演示，并非真实统计。",
        "SYNTHETIC data: the 36 cities' survey indicators are generated by rhip for "
        "demonstration, not real statistics.",
    ),
    "idx.ranking": ("排名", "Ranking"),
    "idx.rank": ("名次", "Rank"),
    "idx.city": ("城市", "City"),
    "idx.score": ("指数", "Score"),
    "idx.change": ("同比名次变化", "Rank change y/y"),
    "idx.interval": ("名次区间（90%）", "Rank interval (90%)"),
    "idx.bar": ("指数得分", "Index scores"),
    "idx.radar": ("城市维度画像", "City profile by dimension"),
    "idx.median": ("中位数", "Median"),
    "idx.intervals": ("不确定性分析：名次区间", "Uncertainty analysis: rank intervals"),
    "idx.download": ("下载 Excel 工作簿", "Download the Excel workbook"),
    "idx.live": ("本平台实测指标（实时）", "This platform, measured live"),
    "idx.indicator": ("指标", "Indicator"),
    "idx.live_value": ("平台实测", "Live"),
    "idx.survey_value": ("调查值", "Survey"),
    "live.coverage_rate": ("机构接入覆盖率 %", "Institution coverage rate %"),
    "live.sharing_rate": ("数据共享率 %", "Data sharing rate %"),
    "live.qc_pass_rate": ("质控合格率 %", "QC pass rate %"),
    "live.views_per_capita": ("人均调阅次数", "Record views per capita"),
    "live.repeat_avoided": ("避免重复检查次数", "Repeat tests avoided"),
    "err.403": ("无权访问此页面", "You may not open this page"),
    "err.404": ("页面或记录不存在", "No such page or record"),
    "err.back": ("返回首页", "Back to the start"),
}


# codes of the platform's services (abnormal flags, recognition reasons), "中文 english" there
_SERVICE_TEXTS = {
    "flag": {code: label for code, (_, _, label) in FLAGS.items()},
    "rec.why": REASONS,
    "rec.exception": EXCEPTION_REASONS,
}
for _prefix, _texts in _SERVICE_TEXTS.items():
    for _code, _text in _texts.items():
        _zh, _, _en = _text.partition(" ")
        MESSAGES.setdefault(f"{_prefix}.{_code}", (_zh, (_en or _zh)[:1].upper() + _en[1:]))


def pick_lang(request: Request) -> str:
    """``?lang=`` wins, then the cookie, then Chinese."""
    lang = request.query_params.get("lang") or request.cookies.get(COOKIE) or "zh"
    return lang if lang in LANGS else "zh"


def translator(lang: str) -> Callable[..., str]:
    """``t("inst.found", n=3)`` → the text in ``lang`` with its fields filled."""
    pos = LANGS.index(lang)

    def t(key: str, **fields: object) -> str:
        pair = MESSAGES.get(key)
        text = pair[pos] if pair else key
        return text.format(**fields) if fields else text

    return t
