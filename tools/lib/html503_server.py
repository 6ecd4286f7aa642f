"""A server that is not SQS: every POST gets an HTML 503 page; GET /count says how many POSTs came.

Usage: html503_server.py PORT. Binds 127.0.0.1 only. tools/test starts it for the SQS client's bad-input tests.
"""
import http.server
import sys

count = 0


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        count += 1
        self._answer(503, "text/html", b"<html><body><h1>503 Service Unavailable</h1></body></html>")

    def do_GET(self):
        self._answer(200, "text/plain", str(count).encode())

    def _answer(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
