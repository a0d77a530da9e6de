"""A scripted OpenAI-compatible HTTP server on 127.0.0.1 (stdlib): answers request n with ``script(n, body)``.

A real HTTP server, not a mock of the client; used where the real `transformers serve` cannot be told to fail
on cue (timeouts, 5xx, malformed bodies).
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port


class Trickle:
    """A response body sent one byte every ``interval`` seconds (a server that never quite stops answering)."""

    def __init__(self, data: bytes, interval: float):
        self.data, self.interval = data, interval


class Scripted:
    """Answers request n with ``script(n, body)`` -> (status, body, headers); ``times`` holds each request's
    arrival (time.monotonic), so tests can check waits between attempts from the server's side."""

    def __init__(self, script):
        self.script, self.bodies, self.times, self.lock = script, [], [], threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with outer.lock:
                    n = len(outer.bodies)
                    outer.bodies.append(body)
                    outer.times.append(time.monotonic())
                status, payload, headers = outer.script(n, body)
                trickle = payload if isinstance(payload, Trickle) else None
                data = trickle.data if trickle else payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                if trickle is None:
                    self.wfile.write(data)
                    return
                for i in range(len(data)):
                    try:
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                    except OSError:  # the client hung up
                        return
                    time.sleep(trickle.interval)

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
