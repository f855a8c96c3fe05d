"""Fake Google identity endpoints on loopback, speaking the wire formats google-auth uses.

- :class:`FakeMetadataServer` — the GCE / Cloud Run / GKE metadata server (point ``GCE_METADATA_HOST`` and
  ``GCE_METADATA_IP`` at it). Like the real one it refuses any request without ``Metadata-Flavor: Google``.
- :class:`FakeGoogleOAuth` — ``oauth2.googleapis.com/token`` (the JWT-bearer grant of service-account keys: the
  RS256 assertion is verified against the key's public half, with its audience, issuer, scope and lifetime), STS
  token exchange (workload identity federation) and IAM Credentials ``generateAccessToken`` (impersonation).

Every token either fake issues is recorded in a shared :class:`IssuedTokens`, which the fake Vertex consults.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.fakes.server import ServedFake, ThreadedServer

CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: Google requires this audience in a service-account assertion whichever token_uri it is posted to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"


class IssuedTokens:
    """Thread-safe set of access tokens the fake identities handed out (plus any a test adds)."""

    def __init__(self) -> None:
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._counter = 0

    def issue(self, kind: str) -> str:
        with self._lock:
            self._counter += 1
            token = f"ya29.fake-{kind}-{self._counter}"
            self._tokens.add(token)
        return token

    def add(self, token: str) -> None:
        with self._lock:
            self._tokens.add(token)

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.discard(token)

    def __contains__(self, token: object) -> bool:
        with self._lock:
            return token in self._tokens


class FakeMetadataServer(ServedFake):
    def __init__(self, tokens: IssuedTokens, *, project_id: str = "metadata-project",
                 email: str = "gateway@metadata-project.iam.gserviceaccount.com", expires_in: int = 3599) -> None:
        self.tokens = tokens
        self.project_id = project_id
        self.email = email
        self.expires_in = expires_in
        self.token_requests = 0
        self.refused = 0
        self.scopes_requested: list[str] = []
        app = web.Application(middlewares=[self._require_flavor])
        app.router.add_get("/", self._ping)
        app.router.add_get("/computeMetadata/v1/project/project-id", self._project)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/{account}/", self._account)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/{account}/email", self._email)
        app.router.add_get("/computeMetadata/v1/instance/service-accounts/{account}/token", self._token)
        self._server = ThreadedServer(app)

    @property
    def host(self) -> str:
        """``host:port`` for GCE_METADATA_HOST / GCE_METADATA_IP."""
        return f"127.0.0.1:{self._server.port}"

    @web.middleware
    async def _require_flavor(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Metadata-Flavor") != "Google":
            self.refused += 1
            return web.Response(status=403, text="Missing required header: Metadata-Flavor")
        response: web.StreamResponse = await handler(request)
        response.headers["Metadata-Flavor"] = "Google"
        return response

    async def _ping(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="computeMetadata/\n")

    async def _project(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.project_id)

    async def _account(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"aliases": ["default"], "email": self.email, "scopes": [CLOUD_PLATFORM]})

    async def _email(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.email)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.token_requests += 1
        self.scopes_requested.append(request.query.get("scopes", ""))
        return web.json_response({"access_token": self.tokens.issue("metadata"), "expires_in": self.expires_in,
                                  "token_type": "Bearer"})


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_service_account_key(token_uri: str, *, project_id: str = "key-project",
                             client_email: str = "caller@key-project.iam.gserviceaccount.com"
                             ) -> tuple[dict[str, Any], rsa.RSAPublicKey]:
    """A service-account key file's contents, signed by a fresh test RSA key, and that key's public half."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    info = {
        "type": "service_account", "project_id": project_id, "private_key_id": "test-key-1", "private_key": pem,
        "client_email": client_email, "client_id": "1234567890", "token_uri": token_uri,
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
    }
    return info, private.public_key()


class FakeGoogleOAuth(ServedFake):
    def __init__(self, tokens: IssuedTokens, *, expires_in: int = 3600, subject_token: str = "federated-subject"
                 ) -> None:
        self.tokens = tokens
        self.expires_in = expires_in
        self.subject_token = subject_token
        self.keys: dict[str, rsa.RSAPublicKey] = {}
        self.jwt_grants = 0
        self.rejected: list[str] = []
        self.exchanges = 0
        self.impersonations = 0
        app = web.Application()
        app.router.add_post("/token", self._jwt_grant)
        app.router.add_post("/v1/token", self._sts_exchange)
        app.router.add_post("/v1/projects/-/serviceAccounts/{account}", self._generate_access_token)
        self._server = ThreadedServer(app)

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def register(self, client_email: str, public_key: rsa.RSAPublicKey) -> None:
        self.keys[client_email] = public_key

    def _reject(self, reason: str) -> web.Response:
        self.rejected.append(reason)
        return web.json_response({"error": "invalid_grant", "error_description": reason}, status=400)

    async def _jwt_grant(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return self._reject("unsupported grant_type")
        assertion = str(form.get("assertion", ""))
        try:
            header_b64, claims_b64, signature_b64 = assertion.split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
        except ValueError:
            return self._reject("malformed assertion")
        key = self.keys.get(claims.get("iss", ""))
        if header.get("alg") != "RS256" or key is None:
            return self._reject("unknown issuer or algorithm")
        try:
            key.verify(_b64url_decode(signature_b64), f"{header_b64}.{claims_b64}".encode(), padding.PKCS1v15(),
                       hashes.SHA256())
        except (InvalidSignature, ValueError):
            return self._reject("Invalid JWT Signature.")
        now = time.time()
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
            return self._reject(f"wrong audience {claims.get('aud')!r}")
        if CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return self._reject("missing cloud-platform scope")
        if not claims.get("iat", 0) - 300 <= now <= claims.get("exp", 0) or claims["exp"] - claims["iat"] > 3600:
            return self._reject("assertion expired or too long-lived")
        self.jwt_grants += 1
        return web.json_response({"access_token": self.tokens.issue("sa"), "expires_in": self.expires_in,
                                  "token_type": "Bearer"})

    async def _sts_exchange(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("grant_type") != TOKEN_EXCHANGE or form.get("subject_token") != self.subject_token:
            return web.json_response({"error": "invalid_grant", "error_description": "bad subject token"},
                                     status=400)
        self.exchanges += 1
        return web.json_response({
            "access_token": self.tokens.issue("sts"), "token_type": "Bearer", "expires_in": self.expires_in,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        })

    async def _generate_access_token(self, request: web.Request) -> web.StreamResponse:
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not request.match_info["account"].endswith(":generateAccessToken") or bearer not in self.tokens:
            return web.json_response({"error": {"code": 401, "message": "bad federated token",
                                                "status": "UNAUTHENTICATED"}}, status=401)
        self.impersonations += 1
        expire = datetime.now(UTC) + timedelta(seconds=self.expires_in)
        return web.json_response({"accessToken": self.tokens.issue("impersonated"),
                                  "expireTime": expire.strftime("%Y-%m-%dT%H:%M:%SZ")})
