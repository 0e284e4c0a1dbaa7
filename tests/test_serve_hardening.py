"""i3d serve against other sites' pages and local users: the Host and Origin checks, the token's bytes and sources.

One real server on loopback (its token from a file, in UTF-8); the no-token case runs the app in-process.
"""

from __future__ import annotations

import asyncio
import http.client
import json

import pytest
from support import run_cli
from test_serve import Served

from i3d.errors import OptionError

TOKEN = "tök3n"
AUTH = {"Authorization": f"Bearer {TOKEN}".encode()}  # the header's bytes as curl sends them: UTF-8
MISSING = json.dumps({"path": "missing.avi"}).encode()  # reaches the handler (404) without any network run


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_weights_dir):
    folder = tmp_path_factory.mktemp("hardening")
    (folder / "token").write_text(TOKEN + "\n", encoding="utf-8")
    (folder / "allowed").mkdir()
    served = Served(shared_weights_dir, folder / "uploads", "--token-file", str(folder / "token"),
                    "--allow-dir", str(folder / "allowed"), "--allowed-hosts", "i3d.example")
    yield served
    assert served.stop() == 0


def _get(server: Served, path: str, headers: dict) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
    try:
        connection.putrequest("GET", path, skip_host=True)  # the Host header is the test's
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        reply = connection.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        connection.close()


def test_only_the_names_the_server_listens_as_are_answered(server):
    for host in ("attacker.example", f"attacker.example:{server.port}", f"127.0.0.1:{server.port + 1}",
                 "i3d.example.attacker.example"):
        for path in ("/v1/info", "/healthz", "/"):
            status, headers, raw = _get(server, path, {"Host": host, **AUTH})
            assert status == 400 and headers["content-type"] == "application/json", (host, path, raw)
            assert raw.count(b"\n") == 1 and raw.endswith(b"\n")  # one JSON line
            answer = json.loads(raw)
            assert answer["kind"] == "host" and repr(host) in answer["error"] and "--allowed-hosts" in answer["error"]
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}", "localhost",
                 "i3d.example", "I3D.example:8443"):
        status, _, raw = _get(server, "/v1/info", {"Host": host, **AUTH})
        assert status == 200 and len(json.loads(raw)["classes"]) == 400, (host, raw)


def test_the_token_is_compared_as_utf8_bytes(server):
    status, _, raw = server.request("GET", "/v1/info", headers=AUTH)
    assert status == 200 and json.loads(raw)["limits"]["token_required"]
    for header in (f"Bearer {TOKEN}".encode("latin-1"), b"Bearer t\xc3\xb6k3", b"Bearer " + "tök3n!".encode(),
                   b"Basic " + TOKEN.encode()):
        status, got, raw = server.request("GET", "/v1/info", headers={"Authorization": header})
        assert status == 401 and got["www-authenticate"] == "Bearer" and json.loads(raw)["kind"] == "auth", header


def test_a_post_from_another_site_needs_the_token(server):
    json_body = {"Content-Type": "application/json"}
    for origin in ("http://attacker.example", f"http://attacker.example:{server.port}", "null",
                   f"http://127.0.0.1:{server.port + 1}"):
        status, _, raw = server.request("POST", "/v1/classify", MISSING, {**json_body, "Origin": origin})
        assert status == 403 and json.loads(raw)["kind"] == "forbidden" and origin in json.loads(raw)["error"]
        status, _, raw = server.request("POST", "/v1/classify", MISSING, {**json_body, "Origin": origin, **AUTH})
        assert status == 404 and json.loads(raw)["kind"] == "input", origin  # past the guard: no such file
    own = f"http://{server.host}:{server.port}"
    status, _, raw = server.request("POST", "/v1/classify", MISSING, {**json_body, "Origin": own, **AUTH})
    assert status == 404 and json.loads(raw)["kind"] == "input"
    status, _, raw = server.request("POST", "/v1/classify", MISSING, {**json_body, "Origin": own})
    assert status == 401 and json.loads(raw)["kind"] == "auth"  # same origin still needs the token


def _call(app, method: str, headers: dict, body: bytes = b"") -> tuple[int, dict]:
    """One request through the ASGI app in this process: (status, JSON answer)."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": "/v1/classify", "raw_path": b"/v1/classify", "query_string": b"", "root_path": "",
             "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], json.loads(b"".join(message.get("body", b"") for message in sent[1:]))


def test_without_a_token_other_sites_cannot_post_and_the_own_page_can(tmp_path):
    from i3d.serve.app import Server, create_app
    from i3d.serve.guard import HostPolicy
    from i3d.serve.options import ServedModel, ServeOptions

    server = Server(None, ServedModel(), ServeOptions(temp_dir=tmp_path, allow_dir=tmp_path))  # no model is reached
    app = create_app(server, HostPolicy.listening_as(("127.0.0.1",), 8000))
    plain = {"Host": "127.0.0.1:8000", "Content-Type": "application/json"}
    for origin in ("http://127.0.0.1:8000", "http://localhost:8000", None):
        headers = plain if origin is None else {**plain, "Origin": origin}
        assert _call(app, "POST", headers, MISSING) == (404, {"error": "missing.avi: no such file under the served "
                                                                       "folder", "kind": "input"})
    for origin in ("http://attacker.example", "http://127.0.0.1:8001", "http://127.0.0.1", "null"):
        status, answer = _call(app, "POST", {**plain, "Origin": origin}, MISSING)
        assert (status, answer["kind"]) == (403, "forbidden"), origin
        status, answer = _call(app, "POST", {**plain, "Origin": origin, "Authorization": "Bearer x"}, MISSING)
        assert (status, answer["kind"]) == (403, "forbidden"), origin  # no token set: none is valid
    assert _call(app, "POST", {**plain, "Host": "attacker.example:8000"}, MISSING)[0] == 400


def test_the_token_comes_from_one_source(tmp_path):
    from i3d.serve.options import read_token

    file = tmp_path / "token"
    file.write_bytes("  tök3n \r\nignored\n".encode())
    assert read_token(None, file, {}) == "tök3n"
    assert read_token(None, None, {"I3D_SERVE_TOKEN": "from env"}) == "from env"
    assert read_token("given", None, {}) == "given" and read_token(None, None, {}) is None
    with pytest.raises(OptionError, match=r"--token-file and \$I3D_SERVE_TOKEN"):
        read_token(None, file, {"I3D_SERVE_TOKEN": "x"})


@pytest.mark.parametrize("case", ["token and env", "token and file", "empty file", "missing file", "folder"])
def test_token_usage_errors_exit_2_in_one_line(tmp_path, monkeypatch, case):
    monkeypatch.delenv("I3D_SERVE_TOKEN", raising=False)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    good = tmp_path / "good"
    good.write_text("secret\n")
    flags, env, words = {
        "token and env": (["--token", "a"], {"I3D_SERVE_TOKEN": "b"}, "--token and $I3D_SERVE_TOKEN"),
        "token and file": (["--token", "a", "--token-file", str(good)], {}, "--token and --token-file"),
        "empty file": (["--token-file", str(empty)], {}, f"--token-file {empty}: holds no token"),
        "missing file": (["--token-file", str(tmp_path / "nope")], {}, f"--token-file {tmp_path / 'nope'}: cannot"),
        "folder": (["--token-file", str(tmp_path)], {}, f"--token-file {tmp_path}: is not a plain file"),
    }[case]
    done = run_cli("serve", "--port", "0", "--offline", *flags, weights_dir=tmp_path, module="i3d",
                   env=env, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
