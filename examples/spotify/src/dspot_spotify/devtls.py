"""A development certificate authority and a server certificate for the local gateway.

``dspot-spotify up`` serves HTTPS only. On one machine there is no public CA to ask, so
:func:`ensure_dev_tls` makes a private CA once (kept under ``DATA/tls/``, so a browser or
``curl --cacert`` told to trust it keeps trusting it across restarts) and issues the gateway a
certificate for ``localhost``, ``127.0.0.1``, ``::1`` and any extra names. Files are reused on
restart; the server certificate alone is re-issued when it lacks a wanted name or is about to
expire. Private keys are written readable by their owner only (0600).

The CA is for development: trust it only on the machine that made it.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_NAMES", "DevTls", "ensure_dev_tls", "issue_member_cert"]

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 397  # what browsers accept for a server certificate
RENEW_BEFORE = datetime.timedelta(days=30)


@attrs.frozen
class DevTls:
    """Where the files are: ``ca`` to trust, ``cert`` (chain) and ``key`` for the server."""

    ca: Path
    cert: Path
    key: Path


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write atomically; a private file is created 0600 and never exists with wider rights."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _san(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _make_ca(ca_path: Path, ca_key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dspot-spotify development"),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"dspot-spotify dev CA ({os.uname().nodename})"
            ),
        ]
    )
    cert = (
        _builder(name, name, key.public_key(), CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(ca_key_path, _key_pem(key), private=True)
    _write(ca_path, cert.public_bytes(serialization.Encoding.PEM), private=False)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, days: int
) -> x509.CertificateBuilder:
    """A certificate of ``public_key`` with a random serial, valid from five minutes ago
    (clocks differ a little) for ``days``."""
    now = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """A CA's key signs certificates and revocation lists; a server's signs handshakes."""
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _server_cert_ok(path: Path, ca: x509.Certificate, names: Sequence[str]) -> bool:
    """Whether ``path`` is a certificate from ``ca`` covering ``names`` for a while yet."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    have = set(san.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }
    wanted = {str(ipaddress.ip_address(n)) if _is_ip(n) else n for n in names}
    try:
        cert.verify_directly_issued_by(ca)  # a CA made again since would not match
    except (ValueError, TypeError, InvalidSignature):
        return False
    return wanted <= have and cert.not_valid_after_utc - RENEW_BEFORE > _now()


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _make_server_cert(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    names: Sequence[str],
    cert_path: Path,
    key_path: Path,
    *,
    member: bool = False,
) -> None:
    usages = [ExtendedKeyUsageOID.SERVER_AUTH]
    if member:  # mutual TLS: the same certificate also proves who is connecting
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        _builder(subject, ca.subject, key.public_key(), SERVER_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_san(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), private=True)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(
        serialization.Encoding.PEM
    )
    _write(cert_path, chain, private=False)


def _load_ca(root: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The development CA under ``root`` (made if missing)."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # the CA's key lives here
    os.chmod(root, 0o700)  # also when an older directory is reused
    ca_path, ca_key_path = root / "ca.pem", root / "ca-key.pem"
    if not (ca_path.exists() and ca_key_path.exists()):
        _make_ca(ca_path, ca_key_path)
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{ca_key_path} is not the EC key this tool makes")
    return ca, ca_key


def issue_member_cert(directory: str | os.PathLike[str], name: str, hosts: Sequence[str]) -> DevTls:
    """A certificate for cluster member ``name`` from the development CA under ``directory``
    (made if missing), valid for ``hosts`` as server and as client: what the nodes' and the
    gateway's ``--tls-cert/--tls-key/--tls-ca`` (mutual TLS) need. Written as
    ``NAME.pem`` (chain) and ``NAME-key.pem``, always anew."""
    root = Path(directory)
    ca, ca_key = _load_ca(root)
    files = DevTls(ca=root / "ca.pem", cert=root / f"{name}.pem", key=root / f"{name}-key.pem")
    _make_server_cert(ca, ca_key, [name, *hosts], files.cert, files.key, member=True)
    return files


def ensure_dev_tls(directory: str | os.PathLike[str], names: Sequence[str] = ()) -> DevTls:
    """The development CA and a server certificate under ``directory`` (made if missing).

    The certificate covers :data:`DEFAULT_NAMES` plus ``names`` (host names or IP
    addresses). Existing files are reused; the server certificate is re-issued by the same
    CA when it misses a name or expires within 30 days.
    """
    root = Path(directory)
    ca, ca_key = _load_ca(root)
    files = DevTls(ca=root / "ca.pem", cert=root / "server.pem", key=root / "server-key.pem")
    wanted = list(dict.fromkeys([*DEFAULT_NAMES, *names]))
    if not (files.key.exists() and _server_cert_ok(files.cert, ca, wanted)):
        _make_server_cert(ca, ca_key, wanted, files.cert, files.key)
    return files
