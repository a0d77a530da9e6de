"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 (stdlib): answers request n with ``script(n, body)``.

A real HTTP server, not a mock of the client; used where the real `transformers serve` cannot be told to fail
on cue (timeouts, 5xx, malformed bodies).
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port


class Scripted:
    """Answers request n with ``script(n, body)`` -> (status, body, headers)."""

    def __init__(self, script):
        self.script, self.bodies, self.lock = script, [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.lock:
                    n = len(outer.bodies)
                    outer.bodies.append(body)
                status, payload, headers = outer.script(n, body)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
