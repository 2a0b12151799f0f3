"""A short flow against a live authd with the client openapi-python-client
generated from openapi.yaml (scripts/check-clients.sh): every answer must
come back with its documented status, parsed into its documented type.

    python drive.py BASE_URL
"""

import secrets
import sys
from http import HTTPStatus

from authd_client import AuthenticatedClient, Client
from authd_client.api.accounts import get_me, register
from authd_client.api.meta import get_open_api
from authd_client.api.sessions import list_sessions, login, logout
from authd_client.models import (
    LoginRequest,
    LoginResult,
    Me,
    ProblemType,
    RegisterRequest,
    Session,
    UnauthorizedProblem,
    User,
    ValidationProblem,
)
from authd_client.types import UNSET


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"python client: {what}")
    print(f"python client: ok: {what}")


def main(base_url: str) -> None:
    username = f"py_{secrets.token_hex(6)}"
    password = f"py-{secrets.token_urlsafe(18)}"

    def anonymous() -> Client:
        # A client of its own for each anonymous call: the httpx client
        # behind one keeps the cookies it is sent, and a logged-in
        # register is a 409.
        return Client(base_url=base_url, raise_on_unexpected_status=True)

    invalid = register.sync_detailed(
        client=anonymous(),
        body=RegisterRequest(
            username=username,
            email=f"{username}@example.com",
            password=password,
            password2=password + "-not-the-same",
        ),
    )
    check(invalid.status_code == HTTPStatus.UNPROCESSABLE_ENTITY, "a mismatched password2 is 422")
    problem = invalid.parsed
    check(isinstance(problem, ValidationProblem), "the 422 parses as a ValidationProblem")
    assert isinstance(problem, ValidationProblem)
    check(problem.type_ is ProblemType.VALIDATION_ERROR, "its type is validation-error")
    check("password2" in problem.errors.additional_properties, "its errors name password2")

    created = register.sync_detailed(
        client=anonymous(),
        body=RegisterRequest(
            username=username,
            email=f"{username}@example.com",
            password=password,
            password2=password,
        ),
    )
    check(created.status_code == HTTPStatus.CREATED, "register is 201")
    user = created.parsed
    check(isinstance(user, User) and user.username == username, "register returns the User")
    assert isinstance(user, User)
    check(user.last_login_at is None, "a new user has never logged in")

    logged_in = login.sync_detailed(
        client=anonymous(), body=LoginRequest(username=username, password=password)
    )
    check(logged_in.status_code == HTTPStatus.OK, "login is 200")
    result = logged_in.parsed
    check(isinstance(result, LoginResult), "login returns a LoginResult")
    assert isinstance(result, LoginResult)
    check(result.user.id == user.id and result.token_type == "Bearer", "with the user and a bearer token")

    authed = AuthenticatedClient(
        base_url=base_url, token=result.access_token, raise_on_unexpected_status=True
    )
    me = get_me.sync_detailed(client=authed)
    check(me.status_code == HTTPStatus.OK, "GET /api/me is 200")
    check(isinstance(me.parsed, Me), "GET /api/me parses as Me (not None)")
    assert isinstance(me.parsed, Me)
    check(me.parsed.id == user.id and me.parsed.session.remember is False, "Me names the user and the session")
    check(me.parsed.csrf_token is UNSET, "a bearer request gets no csrf_token")

    sessions = list_sessions.sync_detailed(client=authed)
    check(sessions.status_code == HTTPStatus.OK, "GET /api/sessions is 200")
    listed = sessions.parsed
    check(
        isinstance(listed, list) and all(isinstance(s, Session) for s in listed),
        "the sessions parse as a list of Session",
    )
    assert isinstance(listed, list)
    check([s.id for s in listed if s.current] == [me.parsed.session.id], "the current session is the one in Me")

    document = get_open_api.sync_detailed(client=anonymous())
    check(
        document.status_code == HTTPStatus.OK
        and isinstance(document.parsed, str)
        and document.parsed.startswith("openapi: 3.1"),
        "GET /api/openapi.yaml returns the document as text",
    )

    out = logout.sync_detailed(client=authed)
    check(out.status_code == HTTPStatus.NO_CONTENT, "logout is 204")

    after = get_me.sync_detailed(client=authed)
    check(after.status_code == HTTPStatus.UNAUTHORIZED, "the revoked token gets 401")
    check(
        isinstance(after.parsed, UnauthorizedProblem)
        and after.parsed.type_ is ProblemType.UNAUTHENTICATED,
        "the 401 parses as an UnauthorizedProblem of type unauthenticated",
    )
    check(after.headers.get("www-authenticate") == 'Bearer realm="authd"', "with WWW-Authenticate")


if __name__ == "__main__":
    main(sys.argv[1])
