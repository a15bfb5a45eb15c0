"""Attacks on the read side and the admin API, performed over HTTP against running Wardens.

- DNS rebinding: with no admin token, a page under the attacker's name that resolves to 127.0.0.1 reaches Warden as a
  loopback client; the ``Host`` it sends is the attacker's name, and is refused.
- Clients not on this machine (directly, or behind a trusted reverse proxy that names them in ``X-Forwarded-For``).
- CSRF: cross-origin and non-JSON state changes, with and without the login cookie (and in Chromium).
- The login cookie: a signed session, not the admin token, ended by a logout; failed token attempts are throttled.
"""

from __future__ import annotations

import http.server
import socket
import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.browser import Browser, chromium
from tests.support.serve_process import ServeProcess

TOKEN = "admin-token-for-access-tests-0123"
PROFILE = {"name": "made-by-someone", "mode": "restrictive"}


def non_loopback_address() -> str | None:
    """An address of this machine other than loopback, to be a client "not on this machine" (None if none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = sock.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


NETWORK_ADDRESS = non_loopback_address()
needs_network_address = pytest.mark.skipif(NETWORK_ADDRESS is None, reason="this machine has only a loopback address")


@pytest.fixture(scope="module")
def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """No admin token, listening on every address, behind a reverse proxy on 127.0.0.1, and reached by the names
    ``localhost`` and ``warden.internal`` only."""
    env = {
        "WARDEN_HOST": "0.0.0.0",
        "WARDEN_TRUSTED_PROXIES": "127.0.0.1",
        "WARDEN_ALLOWED_HOSTS": "localhost,warden.internal",
    }
    process = ServeProcess(tmp_path_factory.mktemp("behind-proxy"), env=env).start()
    yield process
    process.kill()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """With an admin token, listening on every address, behind a trusted reverse proxy on 127.0.0.1."""
    env = {"WARDEN_ADMIN_TOKEN": TOKEN, "WARDEN_HOST": "0.0.0.0", "WARDEN_TRUSTED_PROXIES": "127.0.0.1"}
    process = ServeProcess(tmp_path_factory.mktemp("guarded-access"), env=env).start()
    yield process
    process.kill()


def own_origin(server) -> str:
    return f"http://127.0.0.1:{server.port}"


def profile_names(server, headers: dict[str, str] | None = None) -> list[str]:
    response = httpx.get(f"{server.url}/api/profiles", headers=headers or {}, timeout=10)
    response.raise_for_status()
    return [item["name"] for item in response.json()["items"]]


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


# -- DNS rebinding and clients elsewhere (no admin token) ---------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/interactions", "/api/profiles", "/api/quarantines", "/logs", "/profiles"])
def test_a_rebound_name_reads_nothing(warden, path):
    for host in (
        f"rebind.attacker.example:{warden.port}",
        "rebind.attacker.example",
        f"127.0.0.1.nip.example:{warden.port}",
    ):
        response = httpx.get(warden.url + path, headers={"Host": host}, timeout=10)
        assert response.status_code == 403, (host, response.text)
        assert "loopback host name" in response.json()["error"]["message"]
    for host in (f"127.0.0.1:{warden.port}", f"localhost:{warden.port}", f"[::1]:{warden.port}", "localhost"):
        assert httpx.get(warden.url + path, headers={"Host": host}, timeout=10).status_code == 200, host


def test_a_rebound_page_cannot_change_profiles(warden):
    # To the browser the rebound page and its requests are one origin: Origin matches Host. Only Host gives it away.
    name = unique("rebound")
    host = f"rebind.attacker.example:{warden.port}"
    response = httpx.post(
        f"{warden.url}/api/profiles",
        json={**PROFILE, "name": name},
        headers={"Host": host, "Origin": f"http://{host}", "Sec-Fetch-Site": "same-origin"},
        timeout=10,
    )
    assert response.status_code == 403
    assert name not in profile_names(warden)


def test_clients_behind_a_trusted_proxy_are_judged_by_their_own_address(behind_proxy):
    url, host = f"{behind_proxy.url}/api/interactions", {"Host": f"localhost:{behind_proxy.port}"}
    remote = httpx.get(url, headers={**host, "X-Forwarded-For": "203.0.113.9"}, timeout=10)
    assert remote.status_code == 403
    assert "only on this machine" in remote.json()["error"]["message"]
    # A client may write anything first; the hop the proxy added is the one believed.
    spoofed = httpx.get(url, headers={**host, "X-Forwarded-For": "127.0.0.1, 203.0.113.9"}, timeout=10)
    assert spoofed.status_code == 403
    assert httpx.get(url, headers={**host, "X-Forwarded-For": "127.0.0.1"}, timeout=10).status_code == 200
    assert httpx.get(url, headers=host, timeout=10).status_code == 200


def test_the_allowed_host_names_are_configurable(behind_proxy):
    url = f"{behind_proxy.url}/api/interactions"
    assert httpx.get(url, headers={"Host": f"warden.internal:{behind_proxy.port}"}, timeout=10).status_code == 200
    # 127.0.0.1 is a loopback name, but this Warden was told to answer only to the two names it lists.
    assert httpx.get(url, headers={"Host": f"127.0.0.1:{behind_proxy.port}"}, timeout=10).status_code == 403


@needs_network_address
def test_a_client_on_another_machine_is_refused_without_a_token(behind_proxy):
    url = f"http://{NETWORK_ADDRESS}:{behind_proxy.port}"
    for path in ("/api/interactions", "/api/profiles", "/logs"):
        response = httpx.get(url + path, headers={"Host": f"localhost:{behind_proxy.port}"}, timeout=10)
        assert response.status_code == 403, path
        assert "only on this machine" in response.json()["error"]["message"]
    # Forwarded headers from a peer that is not a trusted proxy are not believed.
    claimed = httpx.get(
        url + "/api/interactions",
        headers={"Host": f"localhost:{behind_proxy.port}", "X-Forwarded-For": "127.0.0.1"},
        timeout=10,
    )
    assert claimed.status_code == 403


# -- CSRF ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        # A form or fetch on another site: text/plain needs no preflight, and the browser says where it came from.
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, None, 403),
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, None, 403),
        ({"Content-Type": "application/json", "Origin": "null"}, None, 403),
        ({"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, None, 403),
        ({"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"}, None, 403),
        # No origin (a script), but not JSON: refused all the same.
        ({"Content-Type": "text/plain"}, None, 415),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"name=x", 415),
        ({"Content-Type": "multipart/form-data; boundary=b"}, None, 415),
        ({}, None, 415),
    ],
)
def test_profiles_are_not_created_across_origins_or_from_non_json(warden, headers, content, status):
    name = unique("csrf")
    body = content if content is not None else httpx.Request("POST", "/", json={**PROFILE, "name": name}).content
    response = httpx.post(f"{warden.url}/api/profiles", content=body, headers=headers, timeout=10)
    assert response.status_code == status, response.text
    assert name not in profile_names(warden)


def test_profiles_are_not_changed_or_deleted_across_origins(warden):
    name = unique("kept")
    created = httpx.post(
        f"{warden.url}/api/profiles",
        json={**PROFILE, "name": name},
        headers={"Origin": own_origin(warden)},
        timeout=10,
    )
    assert created.status_code == 201
    url = f"{warden.url}/api/profiles/{created.json()['id']}"
    evil = {"Origin": "https://evil.example"}
    assert httpx.put(url, json={**PROFILE, "name": "renamed"}, headers=evil, timeout=10).status_code == 403
    assert httpx.put(url, content=b'{"name": "renamed"}', headers={"Content-Type": "text/plain"}).status_code == 415
    assert httpx.delete(url, headers=evil, timeout=10).status_code == 403
    assert httpx.get(url, timeout=10).json()["name"] == name
    assert httpx.request("PATCH", url, headers=evil, timeout=10).status_code == 403
    assert httpx.delete(f"{warden.url}/api/quarantines/default/a1", headers=evil, timeout=10).status_code == 403
    # From the console's own origin the same calls go through.
    assert httpx.delete(url, headers={"Origin": own_origin(warden)}, timeout=10).status_code == 204


def test_the_viewer_forms_refuse_other_origins(guarded):
    evil = {"Origin": "https://evil.example"}
    login = httpx.post(f"{guarded.url}/login", data={"token": TOKEN, "next": "/logs"}, headers=evil, timeout=10)
    assert login.status_code == 403 and "warden_session" not in login.headers.get("set-cookie", "")
    assert httpx.post(f"{guarded.url}/logout", headers=evil, timeout=10).status_code == 403


# -- the login session ---------------------------------------------------------------------------------------------


def log_in(server, headers: dict[str, str] | None = None) -> httpx.Response:
    response = httpx.post(
        f"{server.url}/login",
        data={"token": TOKEN, "next": "/logs"},
        headers={"Origin": own_origin(server), **(headers or {})},
        timeout=10,
    )
    assert response.status_code == 303, response.text
    return response


def session_of(response: httpx.Response) -> tuple[str, str]:
    """The session cookie's value and its Set-Cookie line."""
    (line,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("warden_session=")]
    return line.split(";", 1)[0].split("=", 1)[1], line.lower()


def test_the_login_cookie_is_a_session_not_the_token(guarded):
    value, line = session_of(log_in(guarded, {"X-Forwarded-For": "198.51.100.10"}))
    assert TOKEN not in value
    assert "httponly" in line and "samesite=strict" in line and "path=/" in line and "max-age=43200" in line
    assert "secure" not in line  # plain HTTP, no proxy saying otherwise
    api = f"{guarded.url}/api/interactions"
    assert httpx.get(api, cookies={"warden_session": value}, timeout=10).status_code == 200
    # It cannot be replayed as the token; the token is not a session; the old cookie is gone.
    assert httpx.get(api, headers={"Authorization": f"Bearer {value}"}, timeout=10).status_code == 401
    assert httpx.get(api, cookies={"warden_session": TOKEN}, timeout=10).status_code == 401
    assert httpx.get(api, cookies={"warden_token": TOKEN}, timeout=10).status_code == 401
    # A session whose expiry was moved is not one.
    session_id, expires, signature = value.split(".")
    moved = f"{session_id}.{int(expires) + 86400}.{signature}"
    assert httpx.get(api, cookies={"warden_session": moved}, timeout=10).status_code == 401


def test_the_cookie_is_secure_when_a_trusted_proxy_says_the_browser_used_tls(guarded):
    _, line = session_of(log_in(guarded, {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.11"}))
    assert "; secure" in line


@needs_network_address
def test_forwarded_proto_from_an_untrusted_peer_is_not_believed(guarded):
    response = httpx.post(
        f"http://{NETWORK_ADDRESS}:{guarded.port}/login",
        data={"token": TOKEN, "next": "/logs"},
        headers={"Origin": f"http://{NETWORK_ADDRESS}:{guarded.port}", "X-Forwarded-Proto": "https"},
        timeout=10,
    )
    _, line = session_of(response)
    assert "secure" not in line


def test_a_logout_ends_the_session_for_good(guarded):
    value, _ = session_of(log_in(guarded, {"X-Forwarded-For": "198.51.100.12"}))
    cookies = {"warden_session": value}
    api = f"{guarded.url}/api/interactions"
    assert httpx.get(api, cookies=cookies, timeout=10).status_code == 200
    logout = httpx.post(f"{guarded.url}/logout", cookies=cookies, headers={"Origin": own_origin(guarded)}, timeout=10)
    assert logout.status_code == 303
    assert 'warden_session=""' in logout.headers["set-cookie"] or "max-age=0" in logout.headers["set-cookie"].lower()
    # Whoever kept a copy of the cookie is out.
    assert httpx.get(api, cookies=cookies, timeout=10).status_code == 401
    assert httpx.get(f"{guarded.url}/logs", cookies=cookies, timeout=10).status_code == 303


def test_a_state_change_on_the_cookie_must_say_where_it_comes_from(guarded):
    value, _ = session_of(log_in(guarded, {"X-Forwarded-For": "198.51.100.13"}))
    cookies, name = {"warden_session": value}, unique("cookie")
    url = f"{guarded.url}/api/profiles"
    assert httpx.post(url, json={**PROFILE, "name": name}, cookies=cookies, timeout=10).status_code == 403
    evil = {"Origin": "https://evil.example"}
    assert httpx.post(url, json={**PROFILE, "name": name}, cookies=cookies, headers=evil).status_code == 403
    assert name not in profile_names(guarded, {"Authorization": f"Bearer {TOKEN}"})
    own = {"Origin": own_origin(guarded)}
    assert httpx.post(url, json={**PROFILE, "name": name}, cookies=cookies, headers=own).status_code == 201


# -- throttling failed token attempts -------------------------------------------------------------------------------


def test_failed_logins_lock_the_address_out(guarded):
    attacker, other = {"X-Forwarded-For": "203.0.113.20"}, {"X-Forwarded-For": "203.0.113.21"}
    form = f"{guarded.url}/login"
    origin = {"Origin": own_origin(guarded)}
    for n in range(5):
        wrong = httpx.post(form, data={"token": f"guess-{n}"}, headers={**origin, **attacker}, timeout=10)
        assert wrong.status_code == 401, n
    # Locked: even the right token is not looked at, by the form or as a bearer token.
    locked = httpx.post(form, data={"token": TOKEN}, headers={**origin, **attacker}, timeout=10)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    assert "warden_session" not in locked.headers.get("set-cookie", "")
    bearer = httpx.get(
        f"{guarded.url}/api/interactions", headers={"Authorization": f"Bearer {TOKEN}", **attacker}, timeout=10
    )
    assert bearer.status_code == 429 and int(bearer.headers["retry-after"]) >= 1
    # Another address is not held up.
    assert httpx.post(form, data={"token": TOKEN}, headers={**origin, **other}, timeout=10).status_code == 303


def test_failed_bearer_tokens_count_too(guarded):
    attacker = {"X-Forwarded-For": "203.0.113.30"}
    for n in range(5):
        # Pages with a wrong bearer token are not sent to the login form: the gate counts them.
        path = "/logs" if n % 2 else "/api/interactions"
        headers = {"Authorization": f"Bearer guess-{n}", **attacker}
        assert httpx.get(f"{guarded.url}{path}", headers=headers, timeout=10).status_code == 401, n
    headers = {"Authorization": f"Bearer {TOKEN}", **attacker}
    assert httpx.get(f"{guarded.url}/api/interactions", headers=headers, timeout=10).status_code == 429


# -- the attack in a browser ---------------------------------------------------------------------------------------

ATTACK_PAGE = """<!doctype html>
<html><body>
<form id="f" method="post" enctype="text/plain" action="{target}/api/profiles">
  <input type="hidden" name='{{"name": "{name}-form", "mode": "permissive", "x": "' value='"}}'>
</form>
<script>
fetch("{target}/api/profiles", {{
  method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{name: "{name}-fetch", mode: "permissive"}})
}}).then(() => {{ document.title = "sent"; }}, () => {{ document.title = "sent"; }});
</script>
</body></html>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as running:
        yield running


@pytest.fixture
def attacker_site() -> Iterator[tuple[str, dict[str, str]]]:
    """A web site on another origin (another port): serves whatever page the test puts in the dict."""
    pages: dict[str, str] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, "").encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", pages
    server.shutdown()
    server.server_close()


def test_a_page_on_another_origin_cannot_use_the_login_cookie(browser, guarded, attacker_site):
    site, pages = attacker_site
    page = browser.page(guarded.url)
    page.goto("/login?next=/profiles")
    page.fill("#token", TOKEN)
    page.click("form.login button[type=submit]")
    page.wait_for_url("**/profiles")
    # Same host, another port: the same site to the browser, so even a SameSite=Strict cookie goes along.
    name = unique("csrf-browser")
    pages["/"] = ATTACK_PAGE.format(target=guarded.url, name=name)
    api = f"{guarded.url}/api/profiles"
    with page.expect_response(lambda r: r.url == api and r.request.method == "POST") as fetched:
        page.goto(f"{site}/")
    page.wait_for_function("document.title === 'sent'")
    assert fetched.value.status == 403
    with page.expect_response(lambda r: r.url == api and r.request.method == "POST") as posted:
        page.evaluate("document.getElementById('f').submit()")
    assert posted.value.status == 403
    assert "may not change anything here" in posted.value.text()
    names = profile_names(guarded, {"Authorization": f"Bearer {TOKEN}"})
    assert f"{name}-fetch" not in names and f"{name}-form" not in names
    # The console's own editor still creates profiles with the same cookie.
    page.goto(f"{guarded.url}/profiles")
    created = page.evaluate(
        """name => fetch('/api/profiles', {method: 'POST', credentials: 'same-origin',
             headers: {'Content-Type': 'application/json'}, body: JSON.stringify({name, mode: 'permissive'})})
           .then(r => r.status)""",
        f"{name}-own",
    )
    assert created == 201
    assert f"{name}-own" in profile_names(guarded, {"Authorization": f"Bearer {TOKEN}"})
