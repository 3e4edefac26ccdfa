#!/bin/sh
# A non-Node app: a Python HTTP server that reports readiness the systemd way,
# with READY=1 on the datagram socket named by NOTIFY_SOCKET.
#
# Every instance binds the same port with SO_REUSEPORT, so during a restart
# the new instance listens next to the old one and no request is refused.
exec python3 -c '
import http.server, os, socket, sys

port = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ.get("PORT", "8000"))

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from %d\n" % os.getpid()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)

class Server(http.server.ThreadingHTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

server = Server(("127.0.0.1", port), Handler)
print("listening on %d" % port, flush=True)
path = os.environ.get("NOTIFY_SOCKET")
if path:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect("\0" + path[1:] if path.startswith("@") else path)
    s.send(b"READY=1")
server.serve_forever()
' "$@"
