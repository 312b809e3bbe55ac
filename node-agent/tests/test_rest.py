import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from vpsha.rest import patroni_yml, request, rest_auth


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        status = 401 if self.path == "/secret" and not self.headers.get("Authorization") else 200
        text = json.dumps({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"),
                           "type": self.headers.get("Content-Type"), "body": body})
        self.send_response(status)
        self.end_headers()
        self.wfile.write(text.encode())

    do_GET = do_PATCH = do_POST = answer


@pytest.fixture
def server():
    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_json_in_with_basic_authentication(server):
    status, body = request(server + "/config", "PATCH", {"ttl": 30}, ("patroni", "s3cret"))
    seen = json.loads(body)
    assert status == 200
    assert (seen["method"], seen["path"], json.loads(seen["body"])) == ("PATCH", "/config", {"ttl": 30})
    assert seen["auth"] == "Basic " + base64.b64encode(b"patroni:s3cret").decode()
    assert seen["type"] == "application/json"


def test_an_http_error_is_its_status_and_body(server):
    status, body = request(server + "/secret")
    assert status == 401 and json.loads(body)["auth"] is None


def test_nothing_answering_is_no_status():
    status, why = request("http://127.0.0.1:9/config", timeout=2)
    assert status is None and why


def test_rest_credentials_from_patroni_yml(tmp_path):
    path = tmp_path / "patroni.yml"
    path.write_text("restapi:\n  connect_address: 10.77.0.5:8008\n"
                    "  authentication:\n    username: patroni\n    password: 'x: y'\n")
    config = patroni_yml(str(path))
    assert config["restapi"]["connect_address"] == "10.77.0.5:8008"
    assert rest_auth(config) == ("patroni", "x: y")
