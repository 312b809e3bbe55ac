# The tools' TLS to etcd: arguments naming the files, the SSL context against a real TLS server
# that requires a client certificate (as etcd does), and etcdctl's flags.
import http.server
import json
import ssl
import threading

import pytest
from pki import make_pki

from vpsha import etcd_leader, etcd_ready, etcd_tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def files_of(pki, cert="member"):
    d = pki["cacert"].rsplit("/", 1)[0]
    return (pki["cacert"], "%s/%s.crt" % (d, cert), "%s/%s.key" % (d, cert))


@pytest.fixture(scope="module")
def server(pki):
    """An https /version on loopback that, like etcd with client-cert-auth, wants a client certificate from the CA."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = json.dumps({"etcdserver": "3.5.16", "etcdcluster": "3.5.0"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files_of(pki)[1], files_of(pki)[2])
    ctx.load_verify_locations(pki["cacert"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield "https://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_the_files_come_from_the_arguments_and_all_three_are_needed():
    argv = ["--etcd", "u", "--cacert", "/c", "--cert", "/m", "--key", "/k", "--wait", "5"]
    assert etcd_tls.split_args(argv) == (["--etcd", "u", "--wait", "5"], ("/c", "/m", "/k"))
    with pytest.raises(ValueError, match="missing --key"):
        etcd_tls.split_args(["--etcd", "u", "--cacert", "/c", "--cert", "/m", "--wait", "5"])
    assert etcd_tls.etcdctl_flags(("/c", "/m", "/k")) == ["--cacert=/c", "--cert=/m", "--key=/k"]


def test_the_member_certificate_is_let_in_and_none_or_a_strangers_is_refused(server, pki):
    assert etcd_ready.read_version(server, tls=etcd_tls.context(files_of(pki)))["etcdcluster"] == "3.5.0"
    # No client certificate, or one from another CA: the handshake fails, read_version sees no answer.
    no_cert = ssl.create_default_context(cafile=pki["cacert"])
    assert etcd_ready.read_version(server, tls=no_cert) is None
    assert etcd_ready.read_version(server, tls=etcd_tls.context(files_of(pki, "stranger"))) is None


def test_etcd_ready_reads_with_the_files_it_is_given(server, pki, capsys):
    c, m, k = files_of(pki)
    assert etcd_ready.main(["--etcd", server, "--cacert", c, "--cert", m, "--key", k, "--wait", "1"]) == 0
    assert "cluster version 3.5.0" in capsys.readouterr().out
    # Without the files it says how to call it; with files it cannot read, what is wrong.
    assert etcd_ready.main(["--etcd", server, "--wait", "1"]) == 2
    assert etcd_ready.main(["--etcd", server, "--cacert", c, "--cert", m, "--key", "/nonexistent", "--wait", "1"]) == 1
    assert "etcd's TLS files" in capsys.readouterr().err


def test_the_leader_tool_calls_etcdctl_with_the_member_certificate():
    command = etcd_leader.etcdctl_command("https://127.0.0.1:2379", ("/c", "/m", "/k"))
    assert command[:2] == ["etcdctl", "--endpoints=https://127.0.0.1:2379"]
    assert {"--cacert=/c", "--cert=/m", "--key=/k"} <= set(command)
    # move-leader reuses it without the JSON output flags.
    assert command[-2:] == ["-w", "json"]
    assert etcd_leader.main(["--patroni", "p", "--etcd", "e", "--every", "5"]) == 2
