#!/usr/bin/env python3
"""Validates ../nginx.conf with a real nginx and checks every route it promises.

    scripts/check-nginx-conf.py [NGINX_CONF]

The file names its upstreams by their Kubernetes Service names (designer, discovery, cloud-broker), which do not
resolve outside a cluster, and nginx refuses (even with `nginx -t`) a configuration whose upstream hosts do not
resolve. So the check runs on a COPY in which exactly these lines are replaced:

    server designer:8080;      -> server 127.0.0.1:<port of a local test upstream "designer">;
    server discovery:8090;     -> server 127.0.0.1:<port of a local test upstream "discovery">;
    server cloud-broker:8070;  -> server 127.0.0.1:<port of a local test upstream "broker">;
    listen 80 default_server;  -> listen 127.0.0.1:<free port> default_server;
    access_log /dev/stdout;    -> a file in the temp dir

plus the temp paths and pid file inside a temp prefix (so nginx needs no system directories). Every other line is
checked as written: `nginx -t`, then a real nginx in the foreground serving requests for each route (the answer
must come from the right upstream with the path unchanged), header pass-through (Fiware-Service,
Fiware-Correlator, Link, NGSILD-Tenant), the 1 MiB body limit and nginx's own /nginx-health. Standard library only;
the only address used is 127.0.0.1. Exit code 0 when all checks pass.
"""

import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONF = os.path.join(HERE, "..", "nginx.conf")
UPSTREAMS = {"designer": "designer:8080", "discovery": "discovery:8090", "broker": "cloud-broker:8070"}
BODY_LIMIT = 1024 * 1024  # client_max_body_size 1m == broker.max_body_bytes default


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers every request with JSON naming the upstream and echoing method, raw path, headers, body size."""

    protocol_version = "HTTP/1.1"

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        received = 0
        while received < length:
            chunk = self.rfile.read(min(65536, length - received))
            if not chunk:
                break
            received += len(chunk)
        body = json.dumps({
            "upstream": self.server.name,
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_bytes": received,
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Fiware-Correlator", self.headers.get("Fiware-Correlator", ""))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args):
        pass


def start_upstream(name):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.name = name
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def replace_once(text, old, new):
    count = text.count(old)
    if count != 1:
        sys.exit(f"check-nginx-conf: expected `{old}` exactly once in the config, found it {count} times")
    return text.replace(old, new)


def request(port, method, path, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def main():
    conf_path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CONF
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        sys.exit("check-nginx-conf: nginx not found (apt-get install -y nginx)")
    with open(conf_path) as handle:
        text = handle.read()

    servers = {name: start_upstream(name) for name in UPSTREAMS}
    nginx_port = free_port()
    prefix = tempfile.mkdtemp(prefix="fogflow-nginx-")
    os.chmod(prefix, 0o755)  # worker processes run as `nobody` when started as root
    failures = []
    process = None
    try:
        for name, target in UPSTREAMS.items():
            text = replace_once(text, f"server {target};", f"server 127.0.0.1:{servers[name].server_address[1]};")
        text = replace_once(text, "listen 80 default_server;", f"listen 127.0.0.1:{nginx_port} default_server;")
        text = replace_once(text, "access_log /dev/stdout;", f"access_log {prefix}/access.log;")
        temp_paths = "".join(
            f"    {kind}_temp_path {prefix}/{kind}_temp;\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        text = replace_once(text, "http {\n", "http {\n" + temp_paths)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as handle:
            handle.write(text)
        base = [nginx, "-p", prefix + "/", "-c", conf, "-e", os.path.join(prefix, "error.log")]
        pid_directive = f"pid {prefix}/nginx.pid;"

        test = subprocess.run(base + ["-t", "-g", pid_directive], capture_output=True, text=True)
        print(test.stderr.strip())
        if test.returncode != 0:
            sys.exit(f"check-nginx-conf: nginx -t failed with exit code {test.returncode}")

        process = subprocess.Popen(base + ["-g", "daemon off; " + pid_directive])
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", nginx_port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("check-nginx-conf: nginx did not start listening")
                time.sleep(0.05)

        def check(what, condition, detail=""):
            print(("ok   " if condition else "FAIL ") + what + ("" if condition else f": {detail}"))
            if not condition:
                failures.append(what)

        routes = [
            ("GET", "/", "designer"),
            ("GET", "/index.html", "designer"),
            ("GET", "/topology", "designer"),
            ("POST", "/ngsi9/discoverContextAvailability", "discovery"),
            ("GET", "/ngsi9/registration/Device.temp001", "discovery"),
            ("POST", "/ngsi10/updateContext", "broker"),
            ("GET", "/ngsi10/entity/Device.temp001", "broker"),
            ("GET", "/ngsi10/entity/a%2Fb%20c", "broker"),
            ("GET", "/ngsi-ld/v1/entities/urn:ngsi-ld:Device:001", "broker"),
            ("GET", "/v2/entities?type=Temperature", "broker"),
            ("POST", "/v1/updateContext", "broker"),
        ]
        for method, path, upstream in routes:
            body = b"{}" if method == "POST" else None
            status, _, raw = request(nginx_port, method, path, {"Content-Type": "application/json"}, body)
            answer = json.loads(raw) if status == 200 else {}
            check(
                f"{method} {path} -> {upstream}",
                status == 200 and answer.get("upstream") == upstream and answer.get("path") == path,
                f"status {status}, answer {raw[:200]!r}",
            )

        passed = {
            "Fiware-Service": "smartcity",
            "Fiware-ServicePath": "/heidelberg",
            "Fiware-Correlator": "corr-42",
            "NGSILD-Tenant": "tenant1",
            "Require-Reliability": "true",
            "Link": '<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.3.jsonld>; rel="http://www.w3.org/ns/json-ld#context"',
        }
        status, headers, raw = request(nginx_port, "POST", "/ngsi10/subscribeContext", passed, b"{}")
        seen = json.loads(raw).get("headers", {}) if status == 200 else {}
        for name, value in passed.items():
            check(f"request header {name} reaches the broker", seen.get(name.lower()) == value, f"saw {seen}")
        check("response header Fiware-Correlator comes back", headers.get("Fiware-Correlator") == "corr-42", headers)
        check("X-Forwarded-For is set", seen.get("x-forwarded-for") == "127.0.0.1", seen)

        status, _, raw = request(nginx_port, "POST", "/ngsi10/updateContext", {}, b"x" * BODY_LIMIT)
        received = json.loads(raw).get("body_bytes") if status == 200 else None
        check("a 1 MiB body is forwarded", status == 200 and received == BODY_LIMIT, f"status {status}")
        status, _, _ = request(nginx_port, "POST", "/ngsi10/updateContext", {}, b"x" * (BODY_LIMIT + 1))
        check("a body over 1 MiB is refused with 413", status == 413, f"status {status}")

        status, _, raw = request(nginx_port, "GET", "/nginx-health")
        check("GET /nginx-health", status == 200 and raw == b"ok\n", f"status {status}, {raw!r}")
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for server in servers.values():
            server.shutdown()
            server.server_close()
        shutil.rmtree(prefix, ignore_errors=True)

    if failures:
        sys.exit(f"check-nginx-conf: {len(failures)} check(s) failed: {', '.join(failures)}")
    print(f"check-nginx-conf: {conf_path} is valid and routes as documented")


if __name__ == "__main__":
    main()
