"""A configured API key never reaches the screen, the logs or the records, even when the
server echoes the bearer token back in its error text."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import sim_main

KEY = "sk-tiplab-test-0123456789abcdef"


class EchoingServer(BaseHTTPRequestHandler):
    """Rejects every request (403), quoting its Authorization header back."""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps(
            {"error": {"message": f"bad request from {self.headers['Authorization']}"}}
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that hangs up mid-reply is no failure of this server; the trace it
        would print runs in the test's process and would mix into the run's stderr."""


@pytest.fixture
def echoing_url():
    server = QuietServer(("127.0.0.1", 0), EchoingServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()


@pytest.mark.parametrize("mode", ["generate", "score"])
def test_the_key_a_server_echoes_is_redacted(tmp_path, monkeypatch, echoing_url, mode):
    pytest.importorskip("openai")
    monkeypatch.setenv("TIPLAB_SECRET_KEY", KEY)
    run_dir = tmp_path / "run"
    out = sim_main(
        "backend=openai",
        f"backend.base_url={echoing_url}",
        "backend.model=m",
        "backend.api_key_env=TIPLAB_SECRET_KEY",
        "backend.max_retries=0",
        f"decide.mode={mode}",
        "run.progress=false",
        "run.report=false",
        "run.rounds=1",
        f"hydra.run.dir={run_dir}",
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and "[redacted]" in out.stderr, out.stderr
    assert KEY not in out.stdout + out.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
