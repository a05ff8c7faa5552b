"""A serving certificate for kopf's webhook server in tests and the demo.

kopf makes its own self-signed one when kopf[dev] is installed, with oscrypto. oscrypto's last
release (1.3.0) cannot read the version of OpenSSL 3.0.10 and later ("Error detecting the
version of libcrypto", wbond/oscrypto#78; kopf's own CI installs an unreleased commit), so where
that fails an equivalent one is made with `cryptography`: a self-signed certificate for
localhost, which kopf then serves and puts in the caBundle of the configuration it manages.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

import kopf
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def kopf_cannot_make_certificates() -> str | None:
    """None when kopf's own self-signed certificate works here (kopf[dev]); else why not.

    kopf[dev] makes it with oscrypto, whose last release (1.3.0) cannot read the version of
    OpenSSL 3.0.10 and later ("Error detecting the version of libcrypto", wbond/oscrypto#78; kopf's
    own CI installs an unreleased commit). Where it fails, the test makes an equivalent one: a
    self-signed certificate for localhost, which kopf then serves and puts in the caBundle."""
    try:
        kopf.WebhookServer.build_certificate(["localhost"])
    except Exception as exc:  # ImportError without kopf[dev], LibraryNotFoundError from oscrypto
        return f"{type(exc).__name__}: {exc}"
    return None


def self_signed(folder: Path) -> list[str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    (folder / "tls.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "tls.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return [f"--webhook-cert={folder / 'tls.crt'}", f"--webhook-key={folder / 'tls.key'}"]


def certificate_args(folder: Path) -> list[str]:
    """`airbyte-watch run` flags for the serving certificate: none when kopf can make its own."""
    return [] if kopf_cannot_make_certificates() is None else self_signed(folder)
