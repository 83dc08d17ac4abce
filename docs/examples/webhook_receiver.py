"""A minimal gexbot webhook receiver: verifies the signature, ignores repeats, prints alerts.

Usage: GEXBOT_WEBHOOK_SECRET=... python webhook_receiver.py [PORT]   (standard library only)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ.get("GEXBOT_WEBHOOK_SECRET", "").encode()
SEEN: set[str] = set()  # a real receiver keeps these in its database


def verify(secret: bytes, header: str, body: bytes, tolerance: float = 300) -> bool:
    """True when X-Gexbot-Signature matches the raw body and is at most `tolerance` s old."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not fields.get("t", "").isdigit():
        return False
    expected = hmac.new(secret, f"{fields['t']}.".encode() + body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(fields["t"])) <= tolerance
    return fresh and hmac.compare_digest(expected, fields.get("v1", ""))


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if SECRET and not verify(SECRET, self.headers.get("X-Gexbot-Signature", ""), body):
            self.send_response(401)  # a 4xx other than 408/429: gexbot does not retry it
            self.end_headers()
            return
        key = self.headers.get("Idempotency-Key", "")
        if key not in SEEN:  # a retry of a delivery already handled: acknowledge, do nothing
            SEEN.add(key)
            event = json.loads(body)
            print(f"{event['kind']:>8}  {event['title']}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep stdout to the alerts


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
