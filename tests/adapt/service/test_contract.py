"""The service's documented contract: response schemas in /openapi.json, one user-id rule for
Python, the CLI and HTTP, and FastAPI imported only by ``create_app``."""
from __future__ import annotations

import subprocess
import sys
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi")

from typer.testing import CliRunner  # noqa: E402

from adapt.cli import app as cli  # noqa: E402
from adapt.errors import InvalidIdError  # noqa: E402
from adapt.store import MAX_USER_ID  # noqa: E402
from tests.helpers import ROOT  # noqa: E402
from tests.helpers.service import H  # noqa: E402


def _schema(spec, path, method, status="200"):
    ref = spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_openapi_documents_response_and_error_schemas(env):
    client, _, _ = env
    spec = client.get("/openapi.json").json()
    pred = _schema(spec, "/v1/users/{user_id}/predict", "post")
    assert {"user", "label", "probabilities", "confidence", "uncertain", "personalized"} <= set(pred["properties"])
    summ = _schema(spec, "/v1/users/{user_id}", "get")
    assert {"user", "counts", "custom_emotions", "clips", "revision", "unlabelled", "labels"} <= set(summ["properties"])
    for path, method, model in [("/v1/users", "get", "UserList"), ("/health", "get", "Health"),
                                ("/v1/users/{user_id}/export", "get", "ExportedProfile"),
                                ("/v1/users/{user_id}/import", "post", "UserSummary"),
                                ("/v1/users/{user_id}/enroll", "post", "UserSummary"),
                                ("/v1/users/{user_id}/observe", "post", "UserSummary"),
                                ("/v1/users/{user_id}/labels", "put", "UserSummary"),
                                ("/v1/tenant", "get", "TenantSummary"),
                                ("/v1/tenant/enroll", "post", "TenantSummary"),
                                ("/v1/tenant/export", "get", "ExportedTenant"),
                                ("/v1/tenant/import", "post", "TenantSummary"),
                                ("/v1/tenant/labels", "put", "TenantSummary")]:
        assert _schema(spec, path, method) == spec["components"]["schemas"][model], path
    tenant = spec["components"]["schemas"]["TenantSummary"]
    assert {"tenant", "counts", "speakers", "labels", "revision"} <= set(tenant["properties"])
    assert "labelset" in spec["components"]["schemas"]["UserStateExport"]["properties"]   # a label set is exported
    # every write route refuses read-only keys, and says so
    for path, method in [("/v1/users/{user_id}/observe", "post"), ("/v1/users/{user_id}/labels", "put"),
                         ("/v1/tenant", "delete"), ("/v1/tenant/enroll", "post"), ("/v1/tenant/import", "post"),
                         ("/v1/tenant/labels", "put")]:
        assert "403" in spec["paths"][path][method]["responses"], (path, method)
    assert "409" in spec["paths"]["/v1/tenant/import"]["post"]["responses"]
    assert {p["name"] for p in spec["paths"]["/v1/tenant"]["delete"]["parameters"]} == {"users"}
    # predict takes an optional repeated "labels" form field next to the file
    form = spec["paths"]["/v1/users/{user_id}/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]
    body = spec["components"]["schemas"][form["schema"]["$ref"].rsplit("/", 1)[1]]
    assert body["required"] == ["file"] and "labels" in body["properties"]
    # errors are documented with their real body (not FastAPI's default 422 shape)
    assert "error" in _schema(spec, "/v1/users/{user_id}/predict", "post", "422")["properties"]
    assert "409" in spec["paths"]["/v1/users/{user_id}/import"]["post"]["responses"]
    param = spec["paths"]["/v1/users/{user_id}"]["get"]["parameters"][0]
    assert param["schema"]["maxLength"] == MAX_USER_ID and param["schema"]["minLength"] == 1


def _path(user):
    """``user`` as one path segment; dots percent-encoded too, or clients collapse '.' and '..'."""
    return quote(user, safe="").replace(".", "%2E")


BAD_IDS = [" x", "x ", "a\tb", "\u00a0x", "x" * (MAX_USER_ID + 1), "..", "."]


@pytest.mark.parametrize("user", BAD_IDS, ids=repr)
def test_an_invalid_user_id_is_refused_alike_in_python_cli_and_http(user, env, tmp_path):
    client, keys, p = env
    with pytest.raises(InvalidIdError):
        p.summary(user)
    r = CliRunner().invoke(cli, ["users", "export", user, "--store", str(tmp_path / "cli.db")])
    assert r.exit_code == 2 and "InvalidIdError" in r.output, r.output
    r = client.get("/v1/users/" + _path(user), headers=H(keys["a"]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_id"
    r = client.post("/v1/users/" + _path(user) + "/import", json={}, headers=H(keys["a"]))
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_id"


def test_a_slash_cannot_be_in_a_user_id_anywhere(env):
    client, keys, p = env
    with pytest.raises(InvalidIdError):
        p.summary("a/b")
    # over HTTP the id cannot even be sent: servers decode %2F before routing, so no route matches
    r = client.get("/v1/users/a%2Fb", headers=H(keys["a"]))
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_importing_the_service_does_not_import_fastapi():
    code = "import sys, adapt.service; assert 'fastapi' not in sys.modules and 'pydantic' not in sys.modules"
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
