#!/usr/bin/env python3
"""A local OAuth2 authorization server for giftlock's tests: it stands in
for Google's or Microsoft's, which cannot be reached from here. Authlib's
server (authorization code with PKCE S256, refresh tokens, RFC 8628 device
code) behind Flask, tokens in memory, one user: alice.

    oauth-server.py --port PORT --client-id ID [--lifetime SECONDS]

Endpoints:
  GET  /authorize            approves at once for alice (the test is the
                             browser) and redirects with the code
  POST /token                authorization_code, refresh_token, device_code
  POST /device               device authorization (RFC 8628)
  GET  /device/approve?user_code=CODE   the user approving a device code
  POST /introspect           RFC 7662, for Dovecot's oauth2 passdb
  POST /revoke               RFC 7009
Test controls (no tokens in their answers except /test/tokens):
  POST /test/lifetime?seconds=N   lifetime of access tokens issued from now
  POST /test/expire-access        every access token issued so far inactive
  POST /test/revoke-all           every token and grant revoked
  GET  /test/stats                grants issued and refused, introspections
  GET  /test/tokens               every token issued (for the secrets grep)
"""
import argparse
import logging
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
)
from authlib.common.security import generate_token
from flask import Flask, jsonify, request

USER = "alice"
LOCK = threading.Lock()
STATE = {
    "lifetime": 3600,
    "codes": {},      # code -> dict
    "tokens": {},     # access token -> Token
    "refresh": {},    # refresh token -> Token
    "devices": {},    # device_code -> dict
    "approved": set(),  # user codes
    "stats": {"authorization_code": 0, "refresh_token": 0, DEVICE_CODE_GRANT_TYPE: 0,
              "refresh_refused": 0, "introspections": 0, "introspections_active": 0},
}


class Client:
    def __init__(self, client_id):
        self.client_id = client_id

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        return scope

    def check_redirect_uri(self, uri):
        # RFC 8252: a loopback redirect on any port.
        return uri.startswith("http://127.0.0.1:") or uri.startswith("http://localhost:")

    def check_client_secret(self, secret):
        return False

    def check_endpoint_auth_method(self, method, endpoint):
        return method == "none"

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in ("authorization_code", "refresh_token", DEVICE_CODE_GRANT_TYPE)


class Token:
    def __init__(self, data, client_id, user, scope):
        self.access_token = data["access_token"]
        self.refresh_token = data.get("refresh_token")
        self.expires_at = time.time() + data.get("expires_in", 0)
        self.client_id = client_id
        self.user = user
        self.scope = scope
        self.active = True

    def check_client(self, client):
        return client.get_client_id() == self.client_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return int(self.expires_at - time.time())

    def is_expired(self):
        return time.time() > self.expires_at

    def is_revoked(self):
        return not self.active

    def get_user(self):
        return self.user

    def get_client(self):
        return CLIENT


class Code:
    def __init__(self, **kw):
        self.__dict__.update(kw)

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def is_expired(self):
        return False


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code, req):
        with LOCK:
            STATE["codes"][code] = Code(
                code=code,
                client_id=req.payload.client_id,
                redirect_uri=req.payload.redirect_uri,
                scope=req.payload.scope,
                code_challenge=req.payload.data.get("code_challenge"),
                code_challenge_method=req.payload.data.get("code_challenge_method"),
            )

    def query_authorization_code(self, code, client):
        item = STATE["codes"].get(code)
        if item and item.client_id == client.get_client_id():
            return item
        return None

    def delete_authorization_code(self, item):
        STATE["codes"].pop(item.code, None)

    def authenticate_user(self, item):
        return USER


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = False

    def authenticate_refresh_token(self, refresh_token):
        token = STATE["refresh"].get(refresh_token)
        if token is None or not token.active:
            with LOCK:
                STATE["stats"]["refresh_refused"] += 1
            return None
        return token

    def authenticate_user(self, credential):
        return credential.user

    def revoke_old_credential(self, credential):
        # The refresh token stays; the old access token goes.
        credential_access = STATE["tokens"].get(credential.access_token)
        if credential_access:
            credential_access.active = False


class DeviceGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def query_device_credential(self, device_code):
        return STATE["devices"].get(device_code)

    def query_user_grant(self, user_code):
        if user_code in STATE["approved"]:
            return USER, True
        return None

    def should_slow_down(self, credential):
        return False


class Device:
    def __init__(self, client_id, scope, data):
        self.client_id = client_id
        self.scope = scope
        self.user_code = data["user_code"]
        self.expires_at = time.time() + data["expires_in"]

    def get_client_id(self):
        return self.client_id

    def get_scope(self):
        return self.scope

    def get_user_code(self):
        return self.user_code

    def is_expired(self):
        return time.time() > self.expires_at


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ["none"]
    INTERVAL = 1

    def get_verification_uri(self):
        return f"http://127.0.0.1:{ARGS.port}/device/verify"

    def save_device_credential(self, client_id, scope, data):
        with LOCK:
            STATE["devices"][data["device_code"]] = Device(client_id, scope, data)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none"]

    def query_token(self, token_string, token_type_hint):
        return STATE["tokens"].get(token_string) or STATE["refresh"].get(token_string)

    def revoke_token(self, token, req):
        token.active = False


def save_token(data, req):
    grant_type = req.payload.grant_type if req.payload else "authorization_code"
    client_id = req.client.get_client_id()
    scope = data.get("scope", "")
    old = STATE["refresh"].get(req.payload.data.get("refresh_token", "")) if req.payload else None
    token = Token(data, client_id, USER, scope)
    if old and not token.refresh_token:
        token.refresh_token = old.refresh_token
    with LOCK:
        STATE["tokens"][token.access_token] = token
        if token.refresh_token:
            STATE["refresh"][token.refresh_token] = token
        STATE["stats"][grant_type] = STATE["stats"].get(grant_type, 0) + 1


ARGS = None
CLIENT = None
app = Flask(__name__)


@app.get("/authorize")
def authorize():
    return SERVER.create_authorization_response(grant_user=USER)


@app.post("/token")
def token():
    return SERVER.create_token_response()


@app.post("/device")
def device():
    return SERVER.create_endpoint_response(DeviceEndpoint.ENDPOINT_NAME)


@app.get("/device/approve")
def device_approve():
    with LOCK:
        STATE["approved"].add(request.args.get("user_code", ""))
    return "approved\n"


@app.post("/revoke")
def revoke():
    return SERVER.create_endpoint_response(Revocation.ENDPOINT_NAME)


@app.post("/introspect")
def introspect():
    token = STATE["tokens"].get(request.form.get("token", ""))
    active = bool(token and token.active and not token.is_expired())
    with LOCK:
        STATE["stats"]["introspections"] += 1
        STATE["stats"]["introspections_active"] += int(active)
    if not active:
        return jsonify({"active": False})
    return jsonify({"active": True, "username": token.user, "scope": token.scope,
                    "client_id": token.client_id, "exp": int(token.expires_at)})


@app.post("/test/lifetime")
def set_lifetime():
    STATE["lifetime"] = int(request.args["seconds"])
    return "ok\n"


@app.post("/test/expire-access")
def expire_access():
    with LOCK:
        for t in STATE["tokens"].values():
            t.expires_at = 0
    return "ok\n"


@app.post("/test/revoke-all")
def revoke_all():
    with LOCK:
        for t in list(STATE["tokens"].values()) + list(STATE["refresh"].values()):
            t.active = False
        STATE["refresh"].clear()
    return "ok\n"


@app.get("/test/stats")
def stats():
    return jsonify(STATE["stats"])


@app.get("/test/tokens")
def tokens():
    every = set(STATE["tokens"]) | set(STATE["refresh"])
    every |= {t.refresh_token for t in STATE["tokens"].values() if t.refresh_token}
    return jsonify(sorted(every))


def main():
    global ARGS, CLIENT, SERVER
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--lifetime", type=int, default=3600)
    ARGS = parser.parse_args()
    STATE["lifetime"] = ARGS.lifetime
    CLIENT = Client(ARGS.client_id)
    SERVER = AuthorizationServer(
        app,
        query_client=lambda cid: CLIENT if cid == CLIENT.client_id else None,
        save_token=save_token,
    )
    SERVER.register_token_generator(
        "default",
        BearerTokenGenerator(
            lambda *a, **k: generate_token(42),
            lambda *a, **k: generate_token(48),
            lambda client, grant_type: STATE["lifetime"],
        ),
    )
    SERVER.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True)])
    SERVER.register_grant(RefreshTokenGrant)
    SERVER.register_grant(DeviceGrant)
    SERVER.register_endpoint(DeviceEndpoint)
    SERVER.register_endpoint(Revocation)
    # Request lines only (werkzeug); no token is ever in a URL.
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=ARGS.port, threaded=True)


SERVER = None
if __name__ == "__main__":
    main()
