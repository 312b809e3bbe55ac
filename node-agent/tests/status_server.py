# A node's rollout status server as the tests run it: a real TCP server on a loopback address
# that answers each connection with `status` as JSON and closes, as the socket unit does on the
# mesh; while `status` is None it accepts and never answers (a node that hangs). `answer`, when
# given, makes each connection's bytes instead (a node's real status code).
import json
import socketserver
import threading
import time


class StatusServer:
    def __init__(self, address, port=0, status=(), answer=None):
        self.status = {} if status == () else status
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer.connections += 1
                if answer is not None:
                    self.request.sendall(answer())
                    return
                if outer.status is None:
                    time.sleep(2)
                    return
                self.request.sendall(json.dumps(outer.status).encode())

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        socketserver.ThreadingTCPServer.daemon_threads = True
        self.server = socketserver.ThreadingTCPServer((address, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
