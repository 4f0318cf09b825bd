"""Page routing without a browser: redirects, HTML errors, local assets, sign-in."""

from __future__ import annotations

import httpx

from web.conftest import PASSWORD


def test_anonymous_root_and_pages_go_to_login(server):
    r = httpx.get(f"{server}/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/web/login"
    r = httpx.get(f"{server}/web/overview", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login?next=")


def _signed_in(server: str, username: str = "op") -> httpx.Client:
    client = httpx.Client(base_url=server)  # closed with the test process
    r = client.post("/web/login", data={"username": username, "password": PASSWORD})
    assert r.status_code == 303 and client.cookies.get("rhip_token")
    return client


def test_unknown_page_is_an_html_404(server):
    r = httpx.get(f"{server}/web/no/such/page", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/web/login?next=")
    r = _signed_in(server).get("/web/no/such/page")
    assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")
    assert "页面或记录不存在" in r.text


def test_the_gate_sends_pages_to_login_and_shares_the_session_with_the_api(server):
    forged = {"rhip_token": "not.a.token"}
    r = httpx.get(f"{server}/web/overview?days=7", cookies=forged, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/web/login?next=/web/overview%3Fdays%3D7"
    api = httpx.get(f"{server}/fhir/Organization", cookies=forged)  # the API answers 401 JSON
    assert api.status_code == 401 and 'error="invalid_token"' in api.headers["www-authenticate"]
    assert httpx.get(f"{server}/login", follow_redirects=False).headers["location"] == "/web/login"
    assert httpx.post(f"{server}/web/logout", follow_redirects=False).status_code == 303
    client = _signed_in(server, "dr")
    assert client.get("/api/auth/me").json()["role"] == "doctor"  # the page cookie works
    assert client.get("/web/doctor").status_code == 200
    assert client.get("/web/overview").status_code == 403  # the page's own role guard


def test_assets_are_served_locally_with_the_licence(server):
    js = httpx.get(f"{server}/web/static/echarts.min.js")
    assert js.status_code == 200 and len(js.content) > 500_000
    assert "Apache License" in httpx.get(f"{server}/web/static/ECHARTS-LICENSE.txt").text
    escape = httpx.get(f"{server}/web/static/../app.py", follow_redirects=False)
    assert escape.status_code == 303  # normalised to /web/app.py: not public, nothing served
    assert httpx.get(f"{server}/web/static/app.py").status_code == 404
    page = httpx.get(f"{server}/web/login").text
    assert "http://" not in page and "https://" not in page  # no CDN, no external asset


def test_wrong_password_and_no_open_redirect(server):
    r = httpx.post(f"{server}/web/login", data={"username": "op", "password": "nope"})
    assert r.status_code == 401 and "用户名或密码错误" in r.text
    r = httpx.post(
        f"{server}/web/login",
        data={"username": "op", "password": PASSWORD, "next": "//evil.example/"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie  # as ?cookie=true sets it


def test_recognition_decision_needs_a_purpose_and_a_valid_form(server, city):
    client = _signed_in(server, "dr")
    path = f"/web/doctor/patients/{city.patient}/recognition"
    form = {"item": "718-7", "decision": "refused", "reason_code": "patient_request"}
    assert client.post(path, data=form).status_code == 403  # no purpose of use: refused
    bad = client.post(path, data=form | {"purpose": "TREAT", "reason_code": "bored"})
    assert bad.status_code == 422 and 'data-testid="rec-failed"' in bad.text
    assert client.get(f"{path}?purpose=TREAT&item=718-7").status_code == 200
    assert client.get("/web/doctor/reports/not%20an%20id?purpose=TREAT").status_code == 404
