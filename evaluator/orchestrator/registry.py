"""The submission registry: a Docker registry (distribution 2.8, Debian's ``docker-registry``)
that authors push to with their team token, so only missing layers travel.

The registry delegates authentication to this service (its ``auth: token`` scheme, the one
Docker Hub, GitLab and Harbor use): a client that gets 401 asks the token realm
(``GET /api/registry/token`` of the web app) with the team token as its password, and gets a
short-lived JWT (RS256, the signing certificate in its ``x5c`` header, which the registry
checks against ``rootcertbundle``) granting pull and push on the team's own namespace
``team-<id>/`` only. The service and its workers sign their own pull tokens with the same key
(``TokenSigner``) and reach the registry's HTTP API with ``RegistryClient``.
Reference: https://distribution.github.io/distribution/spec/auth/jwt/
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from evaluator.orchestrator.errors import SubmissionRejected

__all__ = [
    "DIGEST",
    "ISSUER",
    "MANIFEST_TYPES",
    "SERVICE",
    "RegistryClient",
    "RegistryRef",
    "RegistryTokenOut",
    "TokenSigner",
    "granted_actions",
    "registry_config",
    "registry_host",
    "team_namespace",
]

SERVICE = "spared-bench-registry"
"""The registry's ``service`` name: tokens are issued for (``aud``) this audience only."""
ISSUER = "spared-bench"
TOKEN_TTL_S = 600
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
_LIST_TYPES = (
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
)
MAX_MANIFEST_BYTES = 4 * 2**20
# The distribution spec's repository grammar, one path component at a time.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
"""A content digest as the registry and the engine write it."""
_SCOPE = re.compile(r"^repository:([^:]+):([a-z,*]*)$")


class RegistryTokenOut(BaseModel):
    """The token realm's answer, as Docker's token authentication expects it."""

    model_config = ConfigDict(extra="forbid")

    token: str
    access_token: str
    expires_in: int
    issued_at: str


def team_namespace(team_id: int) -> str:
    """The registry namespace a team pushes to (``team-<id>``): team names may hold characters
    repository names cannot, ids cannot collide."""
    return f"team-{team_id}"


def granted_actions(scope: str, namespace: str | None, *, admin: bool = False) -> list[str]:
    """Return the actions of ``scope`` (``repository:NAME:pull,push``) a caller gets.

    A team gets pull and push inside its own namespace and nothing else (another team's
    images are private until evaluated, and no one may overwrite them); admins may pull
    anything. Unknown scope types and malformed scopes get nothing.
    """
    match = _SCOPE.match(scope)
    if not match:
        return []
    name, wanted = match.group(1), set(match.group(2).split(","))
    if not _REPOSITORY.match(name):
        return []
    allowed: set[str] = set()
    if namespace is not None and name.startswith(namespace + "/"):
        allowed |= {"pull", "push"}
    if admin:
        allowed.add("pull")
    return sorted(wanted & allowed)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenSigner:
    """The registry's token key: an RSA key and its self-signed certificate, in one PEM file.

    The registry trusts the certificate (``rootcertbundle``); tokens carry it in ``x5c``.
    """

    def __init__(self, key: Any, certificate: Any) -> None:
        self._key = key
        self._certificate = certificate

    @classmethod
    def load_or_create(cls, path: Path) -> TokenSigner:
        """Read the key file, creating it (mode 0600, atomically) when it does not exist.

        Parsed once per file version (path, size, mtime): every token request asks for it.
        """
        path = Path(path)
        if not path.exists():
            _create_key_file(path)
        info = path.stat()
        return _load_signer(str(path), info.st_size, info.st_mtime_ns)

    def certificate_pem(self) -> bytes:
        """The certificate the registry's ``rootcertbundle`` must hold."""
        from cryptography.hazmat.primitives import serialization

        return bytes(self._certificate.public_bytes(serialization.Encoding.PEM))

    def token(self, subject: str, access: list[tuple[str, list[str]]],
              ttl_s: int = TOKEN_TTL_S) -> str:
        """Sign a token for ``subject`` granting ``access`` ((repository, actions) pairs)."""
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        der = self._certificate.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": subject, "aud": SERVICE, "iat": now, "nbf": now - 5,
                  "exp": now + ttl_s, "jti": secrets.token_hex(16),
                  "access": [{"type": "repository", "name": name, "actions": actions}
                             for name, actions in access]}
        signing_input = (_b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                         _b64url(json.dumps(claims, separators=(",", ":")).encode()))
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + _b64url(signature)


def _create_key_file(path: Path) -> None:
    """Write a new RSA key and its self-signed certificate to ``path`` unless another process
    did meanwhile."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spared-bench registry "
                                         "token signer")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(new_key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=1))
                   .not_valid_after(now + dt.timedelta(days=3650))
                   .sign(new_key, hashes.SHA256()))
    text = new_key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()) + \
        certificate.public_bytes(serialization.Encoding.PEM)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".key-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(text)
        os.chmod(temp, 0o600)
        os.link(temp, path)  # fails if another process created it meanwhile
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)


@functools.lru_cache(maxsize=4)
def _load_signer(path: str, size: int, mtime_ns: int) -> TokenSigner:
    """Parse the key file (``size`` and ``mtime_ns`` key the cache to the file's version)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    data = Path(path).read_bytes()
    try:
        key = serialization.load_pem_private_key(data, password=None)
        certificate = x509.load_pem_x509_certificate(
            data[data.index(b"-----BEGIN CERTIFICATE-----"):])
    except ValueError as error:
        raise SubmissionRejected(f"registry key {path}: expected a PEM private key and "
                                 f"certificate, found: {error}") from error
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SubmissionRejected(f"registry key {path}: expected an RSA key (tokens are "
                                 f"RS256), found {type(key).__name__}")
    return TokenSigner(key, certificate)


@dataclass(frozen=True)
class RegistryRef:
    """An image in the registry by digest: ``HOST[:PORT]/REPOSITORY@sha256:...``."""

    host: str
    repository: str
    digest: str

    @classmethod
    def parse(cls, text: str) -> RegistryRef:
        """Parse a reference; raises ``SubmissionRejected`` unless it names a digest."""
        shown = text[:300]
        if len(text) > 300 or "@" not in text or "/" not in text:
            raise SubmissionRejected(f"image: expected REGISTRY/REPOSITORY@sha256:DIGEST (by "
                                     f"digest, never by tag), found {shown!r}")
        name, digest = text.rsplit("@", 1)
        host, _, repository = name.partition("/")
        if not DIGEST.match(digest) or not _REPOSITORY.match(repository) or \
                not re.fullmatch(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?", host):
            raise SubmissionRejected(f"image: expected REGISTRY/REPOSITORY@sha256:DIGEST (by "
                                     f"digest, never by tag), found {shown!r}")
        return cls(host, repository, digest)

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}@{self.digest}"


def registry_host(url: str) -> str:
    """The name Docker uses for the registry at ``url`` (``host:port``)."""
    return urlsplit(url).netloc


class RegistryClient:
    """The registry's HTTP API, read by the service with its own signed pull tokens."""

    def __init__(self, url: str, signer: TokenSigner, *, timeout_s: float = 30.0) -> None:
        import requests

        self.url = url.rstrip("/")
        self._signer = signer
        self._session = requests.Session()
        self._timeout_s = timeout_s

    def close(self) -> None:
        """Close the connection pool."""
        self._session.close()

    def _get(self, repository: str, path: str, accept: str | None = None,
             stream: bool = False) -> Any:
        import requests

        token = self._signer.token("spared-bench-service", [(repository, ["pull"])], ttl_s=120)
        headers = {"Authorization": f"Bearer {token}"}
        if accept:
            headers["Accept"] = accept
        try:
            response = self._session.get(f"{self.url}/v2/{repository}/{path}", headers=headers,
                                         timeout=self._timeout_s, stream=stream)
        except requests.RequestException as error:
            raise SubmissionRejected(f"registry {self.url}: expected it to answer, found: "
                                     f"{str(error)[:200]}") from error
        if response.status_code == 404:
            response.close()
            raise SubmissionRejected(f"image {repository}: expected {path.rsplit('/', 1)[-1]} "
                                     "in the registry, found none (push it first)")
        if response.status_code != 200:
            response.close()
            raise SubmissionRejected(f"registry {self.url}: expected 200 for {repository}/"
                                     f"{path}, found {response.status_code}")
        return response

    def _bounded(self, repository: str, path: str, accept: str | None, digest: str,
                 what: str) -> bytes:
        response = self._get(repository, path, accept, stream=True)
        with response:
            data = b""
            for chunk in response.iter_content(1 << 16):
                data += chunk
                if len(data) > MAX_MANIFEST_BYTES:
                    raise SubmissionRejected(f"{what}: expected at most "
                                             f"{MAX_MANIFEST_BYTES // 2**20} MB, found more")
        found = "sha256:" + hashlib.sha256(data).hexdigest()
        if found != digest:
            raise SubmissionRejected(f"{what}: expected content with digest {digest}, found "
                                     f"{found}")
        return data

    def manifest(self, ref: RegistryRef) -> dict[str, Any]:
        """The image manifest at ``ref``, digest-verified; one platform's image only."""
        data = self._bounded(ref.repository, f"manifests/{ref.digest}",
                             ", ".join(MANIFEST_TYPES + _LIST_TYPES), ref.digest,
                             f"image {ref}: manifest")
        document = _json(data, f"image {ref}: manifest")
        media = document.get("mediaType") or ("application/vnd.oci.image.manifest.v1+json"
                                              if "config" in document else None)
        if media in _LIST_TYPES or "manifests" in document:
            raise SubmissionRejected(f"image {ref}: expected one image's manifest, found a list "
                                     "of platforms; build and push for linux/amd64 only")
        if media not in MANIFEST_TYPES or not isinstance(document.get("config"), dict) or \
                not isinstance(document.get("layers"), list):
            raise SubmissionRejected(f"image {ref}: expected a manifest of type "
                                     f"{' or '.join(MANIFEST_TYPES)}, found {str(media)[:100]}")
        return document

    def config(self, ref: RegistryRef, digest: str) -> dict[str, Any]:
        """The image config blob ``digest`` of ``ref``'s repository, digest-verified."""
        data = self._bounded(ref.repository, f"blobs/{digest}", None, digest,
                             f"image {ref}: config")
        return _json(data, f"image {ref}: config")

    def blob_stream(self, ref: RegistryRef, digest: str) -> Iterator[bytes]:
        """Stream a layer blob of ``ref``'s repository in chunks."""
        response = self._get(ref.repository, f"blobs/{digest}", stream=True)
        with response:
            yield from response.iter_content(1 << 20)


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise SubmissionRejected(f"{what}: expected JSON, found unreadable content "
                                 f"({str(error)[:100]})") from None
    if not isinstance(document, dict):
        raise SubmissionRejected(f"{what}: expected a JSON object, found "
                                 f"{type(document).__name__}")
    return document


def registry_config(*, storage_dir: Path, listen: str, realm: str,
                    certificate_path: Path) -> str:
    """Return a ``docker-registry`` configuration (YAML; written as JSON, which YAML reads)
    that stores under ``storage_dir``, listens on ``listen`` (``127.0.0.1:5000``) and sends
    clients to ``realm`` (the web app's ``/api/registry/token``) for tokens."""
    config = {
        "version": 0.1,
        "log": {"level": "warn", "fields": {"service": "registry"}},
        "storage": {"filesystem": {"rootdirectory": str(storage_dir)},
                    "delete": {"enabled": True}, "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": listen, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "auth": {"token": {"realm": realm, "service": SERVICE, "issuer": ISSUER,
                           "rootcertbundle": str(certificate_path)}},
    }
    return json.dumps(config, indent=2) + "\n"
