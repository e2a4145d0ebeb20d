"""TLS for the dev broker: a throwaway CA, a broker certificate, and stunnel in front of Tansu.

Tansu 0.6.0 cannot serve TLS itself (its `--cert` and `--key` refuse each other, and a `tls://`
listener answers no handshake), so `core dev --tls` and the tests terminate TLS in stunnel
(Debian's `stunnel4`) and have Tansu advertise stunnel's address: every client connection, the
bootstrap one and those to the advertised broker, is TLS (docs/decisions.md D216).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALID_FOR = datetime.timedelta(days=30)


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate clients trust (KAFKA_SSL_CAFILE)
    cert: Path  # the broker's certificate, for 127.0.0.1 and localhost
    key: Path  # its private key


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def write_dev_ca(directory: Path, name: str = "LoyalNest dev CA") -> TlsFiles:
    """A new CA and a broker certificate it signs, written to `directory` (ca.pem, broker.pem,
    broker.key). Each call makes a different CA: a client trusting another one is refused."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    broker_key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    broker_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca_cert.subject)
        .public_key(broker_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALID_FOR)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "broker.pem", directory / "broker.key")
    files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(broker_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(broker_key, files.key)
    return files


def stunnel_binary() -> str:
    found = shutil.which("stunnel4") or shutil.which("stunnel")
    if found is None:
        raise FileNotFoundError("stunnel is not installed (Debian: apt-get install -y stunnel4)")
    return found


def stunnel_argv(files: TlsFiles, accept_port: int, backend_port: int, workdir: Path) -> list[str]:
    """stunnel in the foreground: TLS on 127.0.0.1:`accept_port`, plaintext to the broker on
    127.0.0.1:`backend_port`. TLS 1.2 at least; a client that does not speak TLS is dropped."""
    config = workdir / f"stunnel-{accept_port}.conf"
    config.write_text(
        "\n".join(
            [
                "foreground = yes",
                "pid =",
                "syslog = no",
                "debug = notice",
                "[kafka]",
                f"accept = 127.0.0.1:{accept_port}",
                f"connect = 127.0.0.1:{backend_port}",
                f"cert = {files.cert}",
                f"key = {files.key}",
                "sslVersionMin = TLSv1.2",
                "",
            ]
        )
    )
    return [stunnel_binary(), str(config)]
