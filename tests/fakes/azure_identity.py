"""Fake Azure identity endpoints speaking the wire formats azure-identity uses, on loopback:

- App Service / Functions managed identity (plain http, as on the platform):
  ``GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<audience>[&client_id=]`` with ``X-IDENTITY-HEADER``
  → ``{"access_token", "expires_on", "resource", "token_type"}``.
- Entra ID's token endpoint (https, since azure-identity refuses an http authority):
  ``POST /{tenant}/oauth2/v2.0/token`` with client credentials — a ``client_secret``, or a ``client_assertion`` of
  type jwt-bearer (workload identity's federated token) → ``{"token_type", "expires_in", "access_token"}``.

Every token issued is written to a :class:`TokenLedger` that the fake Azure OpenAI endpoint consults, so a bearer
token is accepted there only if this fake issued it, for the right audience, and it has not expired.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.fakes.server import ThreadedServer

APP_SERVICE_API_VERSION = "2019-08-01"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Issued:
    audience: str
    expires_at: float
    via: str
    client_id: str | None


@dataclass
class TokenLedger:
    """Tokens issued by the fake identity endpoints; thread-safe (the servers run on their own threads)."""

    tokens: dict[str, Issued] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1), repr=False)

    def issue(self, audience: str, lifetime_s: int, via: str, client_id: str | None) -> tuple[str, Issued]:
        with self._lock:
            token = f"fake-entra-token-{via}-{next(self._counter)}"
            issued = Issued(audience.rstrip("/"), time.time() + lifetime_s, via, client_id)
            self.tokens[token] = issued
        return token, issued

    def accepts(self, token: str, audience: str) -> bool:
        with self._lock:
            issued = self.tokens.get(token)
            return (issued is not None and token not in self.revoked and issued.audience == audience.rstrip("/")
                    and issued.expires_at > time.time())

    def revoke_all(self) -> None:
        with self._lock:
            self.revoked.update(self.tokens)

    def count(self, via: str | None = None) -> int:
        with self._lock:
            return sum(1 for i in self.tokens.values() if via is None or i.via == via)


def write_tls_files(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (also its own CA) and its key, as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skyrelay-test-entra")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "entra-cert.pem", directory / "entra-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class ServicePrincipal:
    tenant_id: str
    client_id: str
    client_secret: str | None = None
    federated_token: str | None = None


class _TwoSiteServer(ThreadedServer):
    """The fake's one app on two loopback ports: plain http (managed identity) and https (Entra)."""

    def __init__(self, app: web.Application, ssl_context: ssl.SSLContext) -> None:
        super().__init__(app)
        self._ssl_context = ssl_context
        self.tls_port = 0

    async def _start(self) -> None:
        await super()._start()
        assert self._runner is not None
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl_context)
        await site.start()
        server = site._server
        assert server is not None
        self.tls_port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]


class FakeAzureIdentity:
    """Start with :meth:`start`. ``msi_endpoint``/``identity_header`` are IDENTITY_ENDPOINT/IDENTITY_HEADER;
    ``authority`` is AZURE_AUTHORITY_HOST; ``ca_file`` is the certificate to trust for it.
    """

    def __init__(self, tls_dir: Path, ledger: TokenLedger | None = None, identity_header: str = "fake-id-header"
                 ) -> None:
        self.ledger = ledger or TokenLedger()
        self.identity_header = identity_header
        self.lifetime_s = 3600
        self.principals: list[ServicePrincipal] = []
        self.fail_with: int | None = None
        self.requests: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.ca_file, key_file = write_tls_files(tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.ca_file, key_file)
        app = web.Application()
        app.router.add_get("/msi/token", self._msi)
        app.router.add_get("/metadata/identity/oauth2/token", self._imds)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._entra)
        self._server = _TwoSiteServer(app, context)

    def start(self) -> FakeAzureIdentity:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    @property
    def msi_endpoint(self) -> str:
        return f"{self._server.url}/msi/token"

    @property
    def imds_host(self) -> str:
        """For AZURE_POD_IDENTITY_AUTHORITY_HOST, which azure-identity uses instead of 169.254.169.254."""
        return self._server.url

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self._server.tls_port}"

    def add_principal(self, principal: ServicePrincipal) -> ServicePrincipal:
        self.principals.append(principal)
        return principal

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
        self.lifetime_s = 3600
        self.fail_with = None

    def fetches(self, kind: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if kind is None or r["kind"] == kind)

    def _record(self, kind: str, **fields: str) -> None:
        with self._lock:
            self.requests.append({"kind": kind, **fields})

    async def _msi(self, request: web.Request) -> web.Response:
        self._record("msi", client_id=request.query.get("client_id", ""), resource=request.query.get("resource", ""))
        if self.fail_with:
            return web.json_response({"error": "unavailable"}, status=self.fail_with)
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return web.json_response({"statusCode": 400, "message": "X-IDENTITY-HEADER is missing or wrong"},
                                     status=400)
        resource = request.query.get("resource")
        if request.query.get("api-version") != APP_SERVICE_API_VERSION or not resource:
            return web.json_response({"statusCode": 400, "message": "api-version and resource are required"},
                                     status=400)
        client_id = request.query.get("client_id")
        token, issued = self.ledger.issue(resource, self.lifetime_s, "msi", client_id)
        return web.json_response({"access_token": token, "expires_on": str(int(issued.expires_at)),
                                  "resource": resource, "token_type": "Bearer", "client_id": client_id or "system"})

    async def _imds(self, request: web.Request) -> web.Response:
        """IMDS (VMs, AKS nodes), reached through AZURE_POD_IDENTITY_AUTHORITY_HOST in tests."""
        self._record("imds", client_id=request.query.get("client_id", ""), resource=request.query.get("resource", ""))
        if self.fail_with:
            return web.json_response({"error": "unavailable"}, status=self.fail_with)
        resource = request.query.get("resource")
        if request.headers.get("Metadata") != "true" or not resource:
            return web.json_response({"error": "invalid_request", "error_description": "Required metadata header "
                                      "not specified"}, status=400)
        client_id = request.query.get("client_id")
        token, issued = self.ledger.issue(resource, self.lifetime_s, "imds", client_id)
        return web.json_response({"access_token": token, "client_id": client_id or "system",
                                  "expires_in": str(self.lifetime_s), "expires_on": str(int(issued.expires_at)),
                                  "ext_expires_in": str(self.lifetime_s), "resource": resource,
                                  "token_type": "Bearer"})

    async def _entra(self, request: web.Request) -> web.Response:
        form = await request.post()
        tenant = request.match_info["tenant"]
        client_id, scope = str(form.get("client_id", "")), str(form.get("scope", ""))
        kind = "assertion" if form.get("client_assertion") else "secret"
        self._record(kind, tenant=tenant, client_id=client_id, scope=scope)
        if self.fail_with:
            return web.json_response({"error": "temporarily_unavailable"}, status=self.fail_with)
        if form.get("grant_type") != "client_credentials" or not scope.endswith("/.default"):
            return _entra_error(400, "invalid_request", "AADSTS900144: grant_type or scope is missing or wrong.")
        principal = next((p for p in self.principals if p.tenant_id == tenant and p.client_id == client_id), None)
        if principal is None:
            return _entra_error(400, "unauthorized_client", f"AADSTS700016: Application {client_id} not found.")
        if kind == "secret" and form.get("client_secret") != principal.client_secret:
            return _entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if kind == "assertion" and (form.get("client_assertion_type") != JWT_BEARER
                                    or form.get("client_assertion") != principal.federated_token):
            return _entra_error(401, "invalid_client", "AADSTS700213: No matching federated identity record found.")
        audience = scope[: -len("/.default")]
        token, _ = self.ledger.issue(audience, self.lifetime_s, kind, client_id)
        return web.json_response({"token_type": "Bearer", "expires_in": self.lifetime_s,
                                  "ext_expires_in": self.lifetime_s, "access_token": token})


#: Environment variables azure-identity reads to pick an identity; tests start from none of them.
AZURE_IDENTITY_VARIABLES = (
    "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT", "MSI_ENDPOINT",
    "MSI_SECRET", "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_USERNAME", "AZURE_PASSWORD",
)
#: Where IMDS goes in tests: the discard port on loopback, so a stray managed-identity call is refused locally
#: instead of leaving the machine for 169.254.169.254.
NO_IMDS = {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"}


def _entra_error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description, "error_codes": [0],
                              "trace_id": "00000000-0000-0000-0000-000000000000"}, status=status)
