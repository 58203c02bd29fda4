"""``fleetlearn certs``: the CA, the node and server certificates, rotation and status.

Checked with ``cryptography`` itself (chain, names, usages) and the standard library's
``ssl`` (the files load as a TLS server and client would load them).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from fleetlearn.cli import main
from fleetlearn.errors import CertificateError
from fleetlearn.security import (
    DEFAULT_SANS,
    cert_status,
    ensure_certs,
    ensure_token,
    init_certs,
    network_sans,
    ray_security_env,
    rotate_certs,
)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(sans.get_values_for_type(x509.DNSName)),
            {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)})


def test_init_makes_a_ca_that_signs_node_and_server_certificates(tmp_path: Path) -> None:
    folder = init_certs(tmp_path / "certs")
    ca = _cert(folder / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for name, usages in (("node.crt", {ExtendedKeyUsageOID.SERVER_AUTH,
                                       ExtendedKeyUsageOID.CLIENT_AUTH}),
                         ("server.crt", {ExtendedKeyUsageOID.SERVER_AUTH})):
        leaf = _cert(folder / name)
        leaf.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) \
            == usages
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert dt.timedelta(days=364) < lifetime < dt.timedelta(days=366)
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3649
    # A TLS stack takes them: a server context loads the node pair, a client the CA.
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "node.crt", folder / "node.key")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(folder / "ca.crt")
    assert client.get_ca_certs()[0]["subject"][-1][0][1] == "fleetlearn cluster CA"


def test_certificates_name_loopback_ips_compose_services_and_extra_sans(tmp_path: Path
                                                                        ) -> None:
    folder = init_certs(tmp_path / "certs", sans=["10.0.0.7", "ray.example.org"])
    for name in ("node.crt", "server.crt"):
        dns, ips = _names(_cert(folder / name))
        assert {"localhost", "ray-head", "ray-worker", "api", "ui",
                "ray.example.org"} <= dns
        # cluster up's head and first workers, 127.0.0.1, and the --san
        assert {"127.0.0.1", "127.0.1.1", "127.0.0.2", "127.0.0.3", "127.0.0.33",
                "10.0.0.7"} <= ips
        assert all(ipaddress.ip_address(ip) for ip in ips)
    assert set(DEFAULT_SANS) <= {*cert_status(folder)[1].sans}


def test_keys_are_private_and_certificates_readable(tmp_path: Path) -> None:
    folder = init_certs(tmp_path / "certs")
    for key in ("ca.key", "node.key", "server.key"):
        assert stat.S_IMODE((folder / key).stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "node.crt").stat().st_mode) == 0o644
    token = ensure_token(tmp_path / "token")
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert len(token.read_text().strip()) == 64
    assert ensure_token(token).read_text() == token.read_text()  # kept, not remade


def test_rotate_keeps_the_ca_and_issues_new_serials(tmp_path: Path) -> None:
    folder = init_certs(tmp_path / "certs", sans=["10.0.0.7"])
    ca_before, ca_key_before = (folder / "ca.crt").read_bytes(), (folder / "ca.key").read_bytes()
    node_before = _cert(folder / "node.crt")
    key_before = (folder / "node.key").read_bytes()
    rotate_certs(folder, days=90, sans=["10.0.0.8"])
    assert (folder / "ca.crt").read_bytes() == ca_before
    assert (folder / "ca.key").read_bytes() == ca_key_before
    node_after = _cert(folder / "node.crt")
    assert node_after.serial_number != node_before.serial_number
    assert (folder / "node.key").read_bytes() != key_before
    node_after.verify_directly_issued_by(_cert(folder / "ca.crt"))
    _, ips = _names(node_after)
    assert {"10.0.0.7", "10.0.0.8"} <= ips  # the old names kept, the new one added
    assert 88 <= (node_after.not_valid_after_utc - dt.datetime.now(dt.UTC)).days <= 90
    assert stat.S_IMODE((folder / "node.key").stat().st_mode) == 0o600
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left


def test_status_warns_for_a_certificate_expiring_in_ten_days(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture
                                                             ) -> None:
    folder = init_certs(tmp_path / "certs", days=10)
    by_file = {Path(c.file).name: c for c in cert_status(folder)}
    assert by_file["ca.crt"].warning is None
    assert by_file["node.crt"].days_left in (9, 10)
    assert "expires in" in by_file["node.crt"].warning
    assert f"fleetlearn certs rotate {folder}" in by_file["node.crt"].warning
    assert main(["certs", "status", str(folder), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["file"]).name for r in rows] == ["ca.crt", "node.crt", "server.crt"]
    assert rows[1]["warning"].startswith("expires in")
    assert main(["certs", "status", str(folder)]) == 0
    assert "warning: node.crt expires in" in " ".join(capsys.readouterr().out.split())


def test_status_flags_a_certificate_of_another_ca(tmp_path: Path) -> None:
    mine, other = init_certs(tmp_path / "mine"), init_certs(tmp_path / "other")
    (mine / "node.crt").write_bytes((other / "node.crt").read_bytes())
    node = next(c for c in cert_status(mine) if c.file.endswith("node.crt"))
    assert node.warning.startswith("not signed by")


def test_ensure_certs_reuses_then_renews_for_a_missing_name(tmp_path: Path) -> None:
    folder = ensure_certs(tmp_path / "certs", sans=["127.5.5.1"])
    serial = _cert(folder / "node.crt").serial_number
    ensure_certs(folder, sans=["127.5.5.1"])
    assert _cert(folder / "node.crt").serial_number == serial  # reused as it is
    ensure_certs(folder, sans=["127.5.5.2"])
    assert "127.5.5.2" in _names(_cert(folder / "node.crt"))[1]


def test_ray_env_names_the_files_and_turns_token_auth_on(tmp_path: Path) -> None:
    env = ray_security_env(tmp_path / "certs", tmp_path / "token")
    assert env == {"RAY_USE_TLS": "1", "RAY_TLS_SERVER_CERT": str(tmp_path / "certs/node.crt"),
                   "RAY_TLS_SERVER_KEY": str(tmp_path / "certs/node.key"),
                   "RAY_TLS_CA_CERT": str(tmp_path / "certs/ca.crt"),
                   "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token")}
    assert ray_security_env(None, None) == {"RAY_AUTH_MODE": "disabled"}


@pytest.mark.parametrize(("argv", "message"), [
    (["certs", "status", "{tmp}/none"], "does not exist; create it with 'fleetlearn certs init"),
    (["certs", "rotate", "{tmp}"], "holds no CA (ca.crt and ca.key)"),
    (["certs", "init", "{tmp}/c", "--san", "a b"], "'--san' option must be a DNS name or an IP"),
    (["certs", "init", "{tmp}/c", "--days", "0"], "'--days' option must be an int in the range"),
    (["certs", "init", "{tmp}/c", "--san-network", "10.0.0.0/21"],
     "'--san-network' option must name at most 1024 addresses (/22 or smaller for IPv4)"),
    (["certs", "ensure", "{tmp}/c", "--san-network", "fd00::/64"],
     "'--san-network' option must name at most 1024 addresses"),
    (["certs", "init", "{tmp}/c", "--san-network", "ray-head"],
     "'--san-network' option must be a network in CIDR form"),
])
def test_certs_bad_input_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                           argv: list[str], message: str) -> None:
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert message in err
    assert not (tmp_path / "c").exists()  # nothing written on bad input


def test_init_refuses_a_folder_that_has_a_ca(tmp_path: Path) -> None:
    folder = init_certs(tmp_path / "certs")
    before = (folder / "ca.key").read_bytes()
    with pytest.raises(CertificateError, match="already holds a CA"):
        init_certs(folder)
    assert (folder / "ca.key").read_bytes() == before


def test_unreadable_certificate_is_a_clear_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    folder = init_certs(tmp_path / "certs")
    (folder / "node.crt").write_text("not a certificate")
    assert main(["certs", "status", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"The certificate {folder / 'node.crt'} is not a PEM certificate" in err


def test_a_san_network_names_every_address_of_it(tmp_path: Path) -> None:
    assert network_sans("172.30.42.0/24")[:2] == ["172.30.42.0", "172.30.42.1"]
    assert len(network_sans("172.30.42.0/24")) == 256
    assert len(network_sans("10.0.0.0/22")) == 1024  # the widest taken
    assert main(["certs", "init", str(tmp_path / "c"), "--san-network", "172.30.42.0/24",
                 "--json"]) == 0
    dns, ips = _names(_cert(tmp_path / "c" / "node.crt"))
    assert {str(ip) for ip in ipaddress.ip_network("172.30.42.0/24")} <= ips
    assert {"ray-head", "ray-worker", "api", "serve", "ui", "localhost"} <= dns


def test_certs_ensure_inits_then_keeps_then_renews(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "ca"
    argv = ["certs", "ensure", str(folder), "--san-network", "172.30.7.0/28", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["action"] == "init"
    ca_key = (folder / "ca.key").read_bytes()
    serial = _cert(folder / "node.crt").serial_number
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["action"] == "none"
    assert _cert(folder / "node.crt").serial_number == serial
    # Another subnet: renewed by the same CA, naming the new addresses.
    assert main(["certs", "ensure", str(folder), "--san-network", "172.30.8.0/28"]) == 0
    assert "renewed the certificates" in " ".join(capsys.readouterr().out.split())
    assert (folder / "ca.key").read_bytes() == ca_key
    node = _cert(folder / "node.crt")
    assert node.serial_number != serial
    assert "172.30.8.15" in _names(node)[1]
    node.verify_directly_issued_by(_cert(folder / "ca.crt"))
    # Ending within 30 days: renewed too.
    rotate_certs(folder, days=10)
    assert main(argv) == 0
    renewed = json.loads(capsys.readouterr().out)
    assert renewed["action"] == "rotate"
    assert next(c for c in renewed["certificates"]
                if c["file"].endswith("node.crt"))["days_left"] >= 364
