#!/bin/sh
# A non-Node app: a Python HTTP server that reports readiness the systemd way,
# with READY=1 on the datagram socket named by NOTIFY_SOCKET.
exec python3 -c '
import http.server, os, socket, sys
port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
server = http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler)
path = os.environ.get("NOTIFY_SOCKET")
if path:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect("\0" + path[1:] if path.startswith("@") else path)
    s.send(b"READY=1")
server.serve_forever()
' "$@"
