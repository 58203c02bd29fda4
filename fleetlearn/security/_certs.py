"""A private CA and the certificates of a cluster's nodes, drivers and servers.

One folder holds them all (``fleetlearn certs init DIR``)::

    ca.crt  ca.key          the CA (10 years by default); its key signs the others
    node.crt  node.key      Ray nodes and drivers: server and client auth (Ray's mutual TLS)
    server.crt  server.key  the API and the GUI over HTTPS: server auth

Keys are ECDSA P-256 (small, fast to make; gRPC and every browser take them),
written 0600. The node and server certificates carry the subject alternative names
every fleetlearn deployment reaches them by: ``localhost``, the compose service
names (``ray-head``, ``ray-worker``, ``api``, ``serve``, ``ui``), the loopback IPs
``fleetlearn cluster up`` gives its nodes by default, any ``--san``, and every address
of any ``--san-network`` (a small network whose addresses are handed out dynamically,
such as a compose stack's: Ray checks a node's IP against the names of the
certificate it shows). ``rotate`` makes new node
and server certificates signed by the same CA (the CA key stays, so nodes that still
hold the old ones keep trusting the new ones); each file is replaced atomically.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fleetlearn.errors import CertificateError

__all__ = ["CA_CERT", "CA_KEY", "NODE_CERT", "NODE_KEY", "SERVER_CERT", "SERVER_KEY",
           "DEFAULT_SANS", "CA_DAYS", "CERT_DAYS", "WARN_DAYS", "CertInfo", "init_certs",
           "rotate_certs", "cert_status", "ensure_certs", "has_ca", "cluster_sans",
           "network_sans", "MAX_NETWORK_ADDRESSES"]

CA_CERT, CA_KEY = "ca.crt", "ca.key"
NODE_CERT, NODE_KEY = "node.crt", "node.key"
SERVER_CERT, SERVER_KEY = "server.crt", "server.key"
#: The CA outlives many rotations; node and server certificates live one year.
CA_DAYS = 3650
CERT_DAYS = 365
#: ``certs status`` and ``cluster status`` warn this many days before a certificate ends.
WARN_DAYS = 30
#: How many worker IPs of ``cluster up``'s default prefix (127.0.0.2 ...) the default
#: certificates name.
DEFAULT_WORKER_IPS = 32


def cluster_sans(head_ip: str = "127.0.1.1", ip_prefix: str = "127.0.0",
                 workers: int = DEFAULT_WORKER_IPS) -> list[str]:
    """The IPs ``fleetlearn cluster up`` gives its nodes: the head's, then
    ``<prefix>.2`` … ``<prefix>.<workers+1>``.

    Examples
    --------
    >>> cluster_sans("127.0.1.1", "127.0.0", 2)
    ['127.0.1.1', '127.0.0.2', '127.0.0.3']
    """
    return [head_ip, *(f"{ip_prefix}.{k}" for k in range(2, workers + 2))]


#: localhost, the compose service names, and the loopback IPs of ``cluster up``.
DEFAULT_SANS = ("localhost", "ray-head", "ray-worker", "api", "serve", "ui", "127.0.0.1",
                *cluster_sans())
#: The most addresses one ``--san-network`` may name (a /22 of IPv4): every address
#: is one entry of the certificate, which every TLS handshake carries.
MAX_NETWORK_ADDRESSES = 1024


def network_sans(network: str) -> list[str]:
    """Every address of ``network`` (CIDR), network and broadcast addresses included,
    for certificates shared by nodes whose IPs are handed out dynamically in it.

    Raises
    ------
    CertificateError
        Not a network, or one of more than :data:`MAX_NETWORK_ADDRESSES` addresses.

    Examples
    --------
    >>> network_sans("10.1.2.0/30")
    ['10.1.2.0', '10.1.2.1', '10.1.2.2', '10.1.2.3']
    """
    try:
        net = ipaddress.ip_network(network.strip(), strict=False)
    except ValueError:
        raise CertificateError(f"The '--san-network' option must be a network in CIDR form "
                               f"(e.g. 172.30.42.0/24). Got {network!r} instead.") from None
    if net.num_addresses > MAX_NETWORK_ADDRESSES:
        smallest = 32 - MAX_NETWORK_ADDRESSES.bit_length() + 1
        raise CertificateError(
            f"The '--san-network' option must name at most {MAX_NETWORK_ADDRESSES} "
            f"addresses (/{smallest} or smaller for IPv4): every address becomes a name in "
            f"the certificate. Got {network} ({net.num_addresses} addresses) instead; give "
            f"the nodes a smaller network, or name their addresses with --san.")
    return [str(ip) for ip in net]


@dataclass(frozen=True)
class CertInfo:
    """One certificate as ``certs status`` shows it."""

    file: str
    subject: str
    issuer: str
    serial: int
    sans: list[str]
    not_before: str
    not_after: str
    days_left: int
    warning: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["serial"] = format(self.serial, "x")
        return out


# ----------------------------------------------------------------- helpers
def _x509() -> Any:
    # Imported on use: `fleetlearn --help` and the API never pay for it.
    from cryptography import x509

    return x509


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write through a temp file (created with ``mode``) renamed over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> Any:
    x509 = _x509()
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetlearn"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _general_names(sans: Iterable[str]) -> list[Any]:
    x509 = _x509()
    out: list[Any] = []
    seen: set[str] = set()
    for raw in sans:
        text = raw.strip()
        if not text or text in seen:
            continue
        seen.add(text)
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(text)))
        except ValueError:
            if any(c.isspace() for c in text) or "/" in text:
                raise CertificateError(f"The '--san' option must be a DNS name or an IP "
                                       f"address. Got {raw!r} instead.") from None
            out.append(x509.DNSName(text))
    return out


def _check_days(days: int, what: str = "days") -> None:
    if int(days) < 1:
        raise CertificateError(f"The '--{what}' option must be an int in the range [1, inf). "
                               f"Got {days} instead.")


def _load_cert(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CertificateError(f"The certificate {path} does not exist.") from None
    except OSError as exc:
        raise CertificateError(f"The certificate {path} cannot be read "
                               f"({exc.strerror or exc}).") from exc
    try:
        return _x509().load_pem_x509_certificate(data)
    except ValueError as exc:
        raise CertificateError(f"The certificate {path} is not a PEM certificate "
                               f"({exc}).") from exc


def _load_key(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise CertificateError(f"The key {path} does not exist.") from None
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"The key {path} cannot be read as an unencrypted PEM key "
                               f"({exc}).") from exc


def has_ca(folder: Path | str) -> bool:
    """True when ``folder`` holds a CA certificate and its key."""
    folder = Path(folder)
    return (folder / CA_CERT).is_file() and (folder / CA_KEY).is_file()


def _require_ca(folder: Path) -> tuple[Any, Any]:
    if not folder.is_dir():
        raise CertificateError(f"The certificate folder {folder} does not exist; create it "
                               f"with 'fleetlearn certs init {folder}'.")
    if not has_ca(folder):
        raise CertificateError(f"The folder {folder} holds no CA ({CA_CERT} and {CA_KEY}); "
                               f"create one with 'fleetlearn certs init {folder}'.")
    cert, key = _load_cert(folder / CA_CERT), _load_key(folder / CA_KEY)
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise CertificateError(f"The CA key {folder / CA_KEY} does not belong to "
                               f"{folder / CA_CERT}.")
    return cert, key


# ------------------------------------------------------------------- making
def _make_ca(days: int) -> tuple[Any, Any]:
    x509 = _x509()
    from cryptography.hazmat.primitives import hashes

    key = _new_key()
    now = _now()
    name = _name("fleetlearn cluster CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _make_leaf(ca_cert: Any, ca_key: Any, common_name: str, sans: list[str], days: int,
               client_auth: bool) -> tuple[Any, Any]:
    x509 = _x509()
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _new_key()
    now = _now()
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder().subject_name(_name(common_name))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            # Never beyond the CA: a chain is only as valid as its CA.
            .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
            .add_extension(x509.SubjectAlternativeName(_general_names(sans)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _write_leaves(folder: Path, ca_cert: Any, ca_key: Any, sans: list[str], days: int) -> None:
    made = {}
    for cert_file, key_file, cn, client in ((NODE_CERT, NODE_KEY, "fleetlearn node", True),
                                            (SERVER_CERT, SERVER_KEY, "fleetlearn server",
                                             False)):
        made[(cert_file, key_file)] = _make_leaf(ca_cert, ca_key, cn, sans, days, client)
    # Everything is made before anything is replaced; each file is then swapped whole.
    for (cert_file, key_file), (cert, key) in made.items():
        _write_private(folder / key_file, _key_pem(key))
        _write_private(folder / cert_file, _cert_pem(cert), mode=0o644)


def _sans_of(cert: Any) -> list[str]:
    x509 = _x509()
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))]


def init_certs(folder: Path | str, sans: Iterable[str] = (), days: int = CERT_DAYS,
               ca_days: int = CA_DAYS) -> Path:
    """Create a CA and node and server certificates in ``folder``; return it.

    The certificates name :data:`DEFAULT_SANS` and ``sans``. A folder that already
    holds a CA is refused (its key would be lost): rotate instead.

    Examples
    --------
    >>> import tempfile
    >>> d = init_certs(tempfile.mkdtemp(), sans=["10.0.0.5"])
    >>> "10.0.0.5" in cert_status(d)[1].sans
    True
    """
    folder = Path(folder).expanduser().absolute()
    _check_days(days)
    _check_days(ca_days, "ca-days")
    if has_ca(folder):
        raise CertificateError(f"{folder} already holds a CA; renew its certificates with "
                               f"'fleetlearn certs rotate {folder}'.")
    names = [*DEFAULT_SANS, *sans]
    _general_names(names)  # a bad --san fails before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = _make_ca(ca_days)
    _write_private(folder / CA_KEY, _key_pem(ca_key))
    _write_private(folder / CA_CERT, _cert_pem(ca_cert), mode=0o644)
    _write_leaves(folder, ca_cert, ca_key, names, days)
    return folder


def rotate_certs(folder: Path | str, days: int = CERT_DAYS, sans: Iterable[str] = ()) -> Path:
    """New node and server certificates signed by the same CA (its key stays), with
    the names the old node certificate had plus ``sans``."""
    folder = Path(folder).expanduser().absolute()
    _check_days(days)
    ca_cert, ca_key = _require_ca(folder)
    try:
        old = _sans_of(_load_cert(folder / NODE_CERT))
    except CertificateError:
        old = list(DEFAULT_SANS)  # no (readable) node certificate: start from the defaults
    names = [*old, *sans]
    _general_names(names)
    _write_leaves(folder, ca_cert, ca_key, names, days)
    return folder


def certs_due(folder: Path | str, sans: Iterable[str] = ()) -> str | None:
    """What :func:`ensure_certs` would do to ``folder``: ``"init"`` (no CA),
    ``"rotate"`` (the node certificate is unreadable, ends within :data:`WARN_DAYS`
    days or lacks one of ``sans``) or None (current)."""
    folder = Path(folder).expanduser().absolute()
    if not has_ca(folder):
        return "init"
    try:
        node = _load_cert(folder / NODE_CERT)
        _load_key(folder / NODE_KEY)
        have = set(_sans_of(node))
        days_left = (node.not_valid_after_utc - _now()).days
    except CertificateError:
        return "rotate"
    return "rotate" if days_left < WARN_DAYS or not set(sans) <= have else None


def ensure_certs(folder: Path | str, sans: Iterable[str] = ()) -> Path:
    """``folder``'s certificates, made when missing, renewed when the node certificate
    ends within :data:`WARN_DAYS` days or lacks one of ``sans`` (what ``cluster up``
    calls at every start; :func:`certs_due` says which is due)."""
    folder = Path(folder).expanduser().absolute()
    wanted = list(sans)
    due = certs_due(folder, wanted)
    if due == "init":
        return init_certs(folder, wanted)
    if due == "rotate":
        rotate_certs(folder, sans=wanted)
    return folder


# ------------------------------------------------------------------- status
def _verify_signed_by(cert: Any, ca_cert: Any) -> bool:
    try:
        cert.verify_directly_issued_by(ca_cert)
    except Exception:  # InvalidSignature, ValueError (issuer name differs), TypeError
        return False
    return True


def cert_status(folder: Path | str, warn_days: int = WARN_DAYS) -> list[CertInfo]:
    """Every certificate of ``folder`` (CA first): subject, names, end, days left and a
    warning when it ends within ``warn_days`` days, has ended, or is not signed by
    the folder's CA."""
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise CertificateError(f"The certificate folder {folder} does not exist; create it "
                               f"with 'fleetlearn certs init {folder}'.")
    if not (folder / CA_CERT).is_file():
        raise CertificateError(f"The folder {folder} holds no CA ({CA_CERT}); create one with "
                               f"'fleetlearn certs init {folder}'.")
    ca = _load_cert(folder / CA_CERT)
    out = []
    now = _now()
    for name in (CA_CERT, NODE_CERT, SERVER_CERT):
        path = folder / name
        if not path.exists():
            continue
        cert = _load_cert(path)
        end = cert.not_valid_after_utc
        days_left = (end - now).days
        warning = None
        if end <= now:
            warning = f"expired on {end.date()}: run 'fleetlearn certs rotate {folder}'"
        elif days_left < warn_days:
            warning = (f"expires in {days_left} day(s), on {end.date()}: run "
                       f"'fleetlearn certs rotate {folder}'")
        if name != CA_CERT and not _verify_signed_by(cert, ca):
            warning = f"not signed by {folder / CA_CERT}" + (f"; {warning}" if warning else "")
        out.append(CertInfo(file=str(path), subject=cert.subject.rfc4514_string(),
                            issuer=cert.issuer.rfc4514_string(), serial=cert.serial_number,
                            sans=_sans_of(cert),
                            not_before=cert.not_valid_before_utc.isoformat(timespec="seconds"),
                            not_after=end.isoformat(timespec="seconds"), days_left=days_left,
                            warning=warning))
    return out
