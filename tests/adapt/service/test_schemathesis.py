"""Property-based run of the HTTP API against its own OpenAPI document: no server errors (5xx).

Bounded: a few examples per operation, so it stays a few seconds. Requests carry a valid tenant
key (so generated bodies reach the handlers) and a seeded enrolled user exists.
"""
from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from adapt.personal import Personalizer  # noqa: E402
from adapt.service import ServiceLimits, create_app  # noqa: E402
from tests.helpers.personal import small_model  # noqa: E402

_KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, ravdess):
    emb, head = small_model()
    p = Personalizer(emb, head, tmp_path_factory.mktemp("st") / "st.db")
    _KEY["key"] = p.store.create_key("fuzz")
    rec = ravdess[0]
    p.for_tenant("fuzz").enroll("0", [rec.path], [rec.emotion])  # "0" is a user id generators like
    app = create_app(p, limits=ServiceLimits(max_request_bytes=1_000_000, max_file_bytes=500_000, max_files=4))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_errors(api_schema):
    # Operations are driven by hand with Hypothesis (schemathesis' pytest plugin does not run on
    # this pytest); each operation gets its own bounded, derandomized example budget.
    headers = {"Authorization": f"Bearer {_KEY['key']}"}
    ran = []
    for result in api_schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=8, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        run()
        ran.append(f"{op.method.upper()} {op.path}")
    assert len(ran) >= 19 and "POST /v1/users/{user_id}/import" in ran, ran
    assert {"POST /v1/tenant/import", "POST /v1/tenant/enroll", "PUT /v1/tenant/labels", "DELETE /v1/tenant",
            "POST /v1/users/{user_id}/observe", "PUT /v1/users/{user_id}/labels"} <= set(ran), ran
