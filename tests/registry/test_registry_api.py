"""FHIR Organization read/search/create/update and the coverage endpoint, over HTTP."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from factories import SETTINGS, token_headers
from rhip.api import create_app
from rhip.registry import InstitutionCreate, register
from rhip.registry.models import institutions

USCC = "urn:rhip:id:uscc"
TYPES = "urn:rhip:cs:institution-type"


@pytest.fixture
def client(engine: Engine) -> TestClient:
    """Signed in as an operator: the directory, coverage and administration are all theirs."""
    return TestClient(create_app(SETTINGS, engine=engine), headers=token_headers("operator"))


@pytest.fixture
def city(engine: Engine, payload) -> dict[str, str]:
    """Five institutions in two districts; returns name -> id."""
    specs = [
        (1, "深圳市南山区人民医院", "public_hospital", "440305", "connected"),
        (2, "深圳市福田区人民医院", "public_hospital", "440304", "connected"),
        (3, "福田区华强北社区健康服务中心", "chc", "440304", "testing"),
        (4, "深圳南山和美口腔门诊部", "clinic", "440305", "not_connected"),
        (5, "深圳金域医学检验实验室", "lab", "440305", "connected"),
    ]
    out = {}
    for n, name, kind, district, status in specs:
        data = payload(n, name=name, type=kind, district_code=district, connection_status=status)
        data["grade"] = data["grade"] if kind == "public_hospital" else None
        out[name] = register(engine, InstitutionCreate(**data)).id
    return out


def _names(bundle: dict) -> list[str]:
    return [e["resource"]["name"] for e in bundle["entry"]]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(institutions)).scalar_one()


@pytest.mark.postgres
def test_read_gives_the_organization(client: TestClient, city) -> None:
    org_id = city["深圳市南山区人民医院"]
    r = client.get(f"/fhir/Organization/{org_id}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/fhir+json")
    org = r.json()
    assert org["resourceType"] == "Organization" and org["id"] == org_id
    assert org["identifier"][0] == {"use": "official", "system": USCC, "value": org_id}
    assert org["type"][0]["coding"][0] == {
        "system": TYPES,
        "code": "public_hospital",
        "display": "公立医院",
    }
    addr = org["address"][0]
    assert (addr["district"], addr["city"], addr["state"]) == ("南山区", "深圳市", "广东省")
    assert addr["extension"][0]["valueCode"] == "440305"
    assert org["active"] is True
    grade, conn = org["extension"]
    assert grade["valueCoding"]["code"] == "3A" and grade["valueCoding"]["display"] == "三级甲等"
    parts = {(p["url"], p.get("valueCode")) for p in conn["extension"]}
    assert {("status", "connected"), ("feed", "lab"), ("function", "viewing")} <= parts


def test_read_unknown_is_404_outcome(client: TestClient) -> None:
    r = client.get("/fhir/Organization/nope")
    assert r.status_code == 404
    issue = r.json()["issue"][0]
    assert r.json()["resourceType"] == "OperationOutcome" and issue["code"] == "not-found"
    assert "nope" in issue["diagnostics"]


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"type": "chc"}, ["福田区华强北社区健康服务中心"]),
        ({"type": f"{TYPES}|lab"}, ["深圳金域医学检验实验室"]),
        ({"type": "other|lab"}, []),
        ({"type": "lab,chc"}, ["深圳金域医学检验实验室", "福田区华强北社区健康服务中心"]),
        ({"district": "440304"}, ["深圳市福田区人民医院", "福田区华强北社区健康服务中心"]),
        ({"district": "440305", "type": "public_hospital"}, ["深圳市南山区人民医院"]),
        ({"name": "深圳市"}, ["深圳市福田区人民医院", "深圳市南山区人民医院"]),
        ({"name": "人民医院"}, []),  # starts-with, not contains
        ({"name:contains": "人民医院"}, ["深圳市福田区人民医院", "深圳市南山区人民医院"]),
        ({"name:exact": "深圳金域医学检验实验室"}, ["深圳金域医学检验实验室"]),
        ({"connection-status": "testing"}, ["福田区华强北社区健康服务中心"]),
        ({"active": "false"}, []),
    ],
)
def test_search_by_each_parameter(client: TestClient, city, query, expected) -> None:
    r = client.get("/fhir/Organization", params=query)
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "searchset" and bundle["total"] == len(expected)
    assert sorted(_names(bundle)) == sorted(expected)


@pytest.mark.postgres
def test_search_by_identifier_with_and_without_system(client: TestClient, city) -> None:
    code = city["深圳金域医学检验实验室"]
    for value in (code, f"{USCC}|{code}", code.lower()):
        assert _names(client.get("/fhir/Organization", params={"identifier": value}).json()) == [
            "深圳金域医学检验实验室"
        ]
    assert client.get("/fhir/Organization", params={"identifier": f"x|{code}"}).json()["total"] == 0
    assert client.get("/fhir/Organization", params={"_id": code}).json()["total"] == 1


@pytest.mark.postgres
def test_paging_links_walk_every_match_once(client: TestClient, city) -> None:
    seen: list[str] = []
    url = "/fhir/Organization?_count=2"
    pages = 0
    while url:
        bundle = client.get(url).json()
        assert bundle["total"] == 5
        seen += _names(bundle)
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "_count=2" in links["self"] and "first" in links and "last" in links
        url = links.get("next", "").replace("http://testserver", "")
        pages += 1
    assert pages == 3 and sorted(seen) == sorted(city)
    last = client.get("/fhir/Organization?_count=2&_offset=4").json()
    assert [link["relation"] for link in last["link"]].count("previous") == 1


@pytest.mark.parametrize(
    ("query", "named"),
    [("foo=1", "foo"), ("name:missing=true", "name:missing"), ("_count=x", "_count")],
)
def test_bad_search_is_400_naming_the_parameter(client: TestClient, query, named) -> None:
    r = client.get(f"/fhir/Organization?{query}")
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["expression"] == [named] and named in issue["diagnostics"]


def test_active_must_be_boolean(client: TestClient) -> None:
    r = client.get("/fhir/Organization?active=yes")
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["active"]


def _organization(credit_code: str, **over) -> dict:
    org = {
        "resourceType": "Organization",
        "identifier": [{"system": USCC, "value": credit_code}],
        "name": "深圳市光明区人民医院",
        "type": [{"coding": [{"system": TYPES, "code": "public_hospital"}]}],
        "address": [{"extension": [{"url": "urn:rhip:ext:district-code", "valueCode": "440311"}]}],
        "extension": [
            {
                "url": "urn:rhip:ext:hospital-grade",
                "valueCoding": {"system": "urn:rhip:cs:hospital-grade", "code": "2A"},
            },
            {
                "url": "urn:rhip:ext:connection",
                "extension": [
                    {"url": "status", "valueCode": "connected"},
                    {"url": "feed", "valueCode": "lab"},
                ],
            },
        ],
    }
    return org | over


@pytest.mark.postgres
def test_create_then_read_round_trips(client: TestClient, credit_code) -> None:
    r = client.post("/fhir/Organization", json=_organization(credit_code(7)))
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/fhir/Organization/{credit_code(7)}"
    got = client.get(r.headers["location"]).json()
    assert got["name"] == "深圳市光明区人民医院" and got["address"][0]["district"] == "光明区"
    assert got["extension"][0]["valueCoding"]["display"] == "二级甲等"
    r = client.put(
        r.headers["location"], json=_organization(credit_code(7), name="深圳市光明区中心医院")
    )
    assert r.status_code == 200 and r.json()["name"] == "深圳市光明区中心医院"


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        (b"{not json", 400, None),
        (b'{"resourceType": "Patient"}', 400, "resourceType"),
        ("bad-code", 422, "credit_code"),
        ({"address": []}, 422, "Organization.address[0]"),
        ({"identifier": []}, 422, "Organization.identifier"),
        ({"name": 5}, 400, "Organization.name"),
        ({"type": [{"coding": [{"system": TYPES, "code": "spa"}]}]}, 422, "type"),
        ({"address": [{"district": "440399"}]}, 422, "district_code"),
        ({"active": "yes"}, 400, "Organization.active"),
    ],
)
def test_bad_organization_is_refused_naming_the_field(
    client: TestClient, engine: Engine, credit_code, body, status, path
) -> None:
    if isinstance(body, bytes):
        r = client.post(
            "/fhir/Organization", content=body, headers={"content-type": "application/fhir+json"}
        )
    elif body == "bad-code":
        r = client.post("/fhir/Organization", json=_organization("91440300MA5ABCDE10"))
    else:
        r = client.post("/fhir/Organization", json=_organization(credit_code(8), **body))
    assert r.status_code == status, r.text
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    if path:
        assert path in outcome["issue"][0]["expression"]
    assert _count(engine) == 0


@pytest.mark.postgres
def test_coverage_endpoint_counts_the_database(client: TestClient, city) -> None:
    r = client.get("/api/registry/coverage")
    assert r.status_code == 200
    cov = r.json()
    assert (cov["total"], cov["connected"], cov["testing"], cov["rate"]) == (5, 3, 1, 0.6)
    by_type = {row["code"]: (row["total"], row["connected"]) for row in cov["by_type"]}
    assert by_type["public_hospital"] == (2, 2) and by_type["clinic"] == (1, 0)
    by_district = {
        row["code"]: (row["label"], row["total"], row["connected"]) for row in cov["by_district"]
    }
    assert by_district == {"440304": ("福田区", 2, 1), "440305": ("南山区", 3, 2)}


def test_platform_rest_create_and_patch(client: TestClient, payload) -> None:
    r = client.post("/api/registry/institutions", json=payload(9, district_code="440399"))
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["district_code"]
    r = client.post("/api/registry/institutions", json=payload(9))
    assert r.status_code == 201 and r.json()["district_name"] == "福田区"
    r = client.patch(f"/api/registry/institutions/{r.json()['id']}", json={"phone": "0755-1"})
    assert r.status_code == 200 and r.json()["phone"] == "0755-1"
    listed = client.get("/api/registry/institutions", params={"type": "public_hospital"}).json()
    assert listed["total"] == 1


def test_capability_lists_organization_search_params(client: TestClient) -> None:
    cs = client.get("/fhir/metadata").json()
    org = next(r for r in cs["rest"][0]["resource"] if r["type"] == "Organization")
    names = {p["name"] for p in org["searchParam"]}
    assert {"identifier", "name", "type", "district", "active"} <= names


def test_directory_is_for_everyone_signed_in_changes_and_coverage_for_operators(
    engine: Engine, city, payload
) -> None:
    anonymous = TestClient(create_app(SETTINGS, engine=engine))
    org_id = city["深圳市南山区人民医院"]
    assert anonymous.get(f"/fhir/Organization/{org_id}").status_code == 401
    for role, binding in (("doctor", {"institution_id": org_id}), ("patient", {"patient_id": "p"}),
                          ("integrator", {"institution_id": org_id})):  # fmt: skip
        h = token_headers(role, **binding)
        assert anonymous.get(f"/fhir/Organization/{org_id}", headers=h).status_code == 200
        assert anonymous.get("/fhir/Organization?name=深圳", headers=h).json()["total"] >= 3
        listed = anonymous.get("/api/registry/institutions", headers=h).json()["items"]
        assert listed and all("allow_cidrs" not in i for i in listed)  # network config: operators
        assert anonymous.get("/api/registry/coverage", headers=h).status_code == 403
        r = anonymous.post("/api/registry/institutions", json=payload(9), headers=h)
        assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
        r = anonymous.patch(f"/api/registry/institutions/{org_id}", json={"phone": "1"}, headers=h)
        assert r.status_code == 403
        org = anonymous.get(f"/fhir/Organization/{org_id}", headers=h).json()
        assert anonymous.put(f"/fhir/Organization/{org_id}", json=org, headers=h).status_code == 403
    assert _count(engine) == 5
    op = token_headers("operator")
    assert anonymous.get(f"/api/registry/institutions/{org_id}", headers=op).json()["allow_cidrs"]
