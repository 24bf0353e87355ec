#!/usr/bin/python3
"""Test servers for the image tests, on 127.0.0.1 only.

token: the token service of a real docker-registry in token-auth mode. It
  signs RS256 JWTs whose x5c names a self-signed certificate it writes for
  the registry's rootcertbundle. Basic credentials, when given, must match;
  anonymous callers get pull access except under private/.
redirect: a front for blobs that answers 307 to a second port of its own,
  which serves them from an OCI layout and logs whether an Authorization
  header came along; manifests are served on the first port behind a
  Bearer token it issues itself. It can throttle blobs, cut the first
  transfer of each blob short, and answer 429 once.

Every request is logged, one line each, to --log.
"""
import argparse, base64, datetime, hashlib, json, os, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_LOCK = threading.Lock()


def log(path, line):
    with LOG_LOCK, open(path, "a") as f:
        f.write(line + "\n")


def token_server(args):
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paddock-test-token")])
    now = datetime.datetime.utcnow()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(args.cert_out, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = urllib.parse.parse_qs(url.query)
            user = ""
            auth = self.headers.get("Authorization", "")
            if auth.startswith("Basic "):
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                if user != args.user or password != args.password:
                    log(args.log, "token refused user=%s" % user)
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"errors":[{"code":"UNAUTHORIZED","message":"wrong user name or password"}]}')
                    return
            access = []
            for scope in q.get("scope", []):
                kind, _, rest = scope.partition(":")
                repo, _, actions = rest.rpartition(":")
                wanted = actions.split(",")
                granted = [a for a in wanted if user or (a == "pull" and not repo.startswith("private/"))]
                access.append({"type": kind, "name": repo, "actions": granted})
            t = int(time.time())
            claims = {"iss": args.issuer, "sub": user, "aud": q.get("service", [""])[0], "iat": t, "nbf": t - 10,
                      "exp": t + args.ttl, "jti": os.urandom(8).hex(), "access": access}
            token = jwt.encode(claims, key, algorithm="RS256", headers={"x5c": x5c})
            log(args.log, "token user=%s scope=%s" % (user or "-", ",".join(q.get("scope", []))))
            body = json.dumps({"token": token, "expires_in": args.expires_in}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    serve(args.port, Handler)


def redirect_server(args):
    layout = args.layout
    served = {}  # blob digest -> transfers started
    lock = threading.Lock()

    def blob_path(digest):
        algo, _, hexd = digest.partition(":")
        return os.path.join(layout, "blobs", algo, hexd) if algo == "sha256" and len(hexd) == 64 else None

    def manifest_for(ref):
        if ref.startswith("sha256:"):
            p = blob_path(ref)
            return open(p, "rb").read() if p and os.path.exists(p) else None
        index = json.load(open(os.path.join(layout, "index.json")))
        for m in index["manifests"]:
            if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
                return open(blob_path(m["digest"]), "rb").read()
        return None

    class Api(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, body=b"", headers=()):
            self.send_response(code)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):
            path = urllib.parse.urlparse(self.path).path
            auth = self.headers.get("Authorization", "")
            log(args.log, "api %s %s auth=%s" % (self.command, path, "yes" if auth else "no"))
            if path == "/token":
                body = json.dumps({"token": "secret-token", "expires_in": 300}).encode()
                return self.reply(200, body, [("Content-Type", "application/json")])
            if auth != "Bearer secret-token":
                challenge = 'Bearer realm="http://127.0.0.1:%d/token",service="redirect"' % args.port
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}',
                                  [("WWW-Authenticate", challenge), ("Content-Type", "application/json")])
            parts = path.split("/")
            if len(parts) >= 5 and parts[-2] == "manifests":
                body = manifest_for(parts[-1])
                if body is None:
                    return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
                media = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
                return self.reply(200, body, [("Content-Type", media)])
            if len(parts) >= 5 and parts[-2] == "blobs":
                if args.rate_limit_once:
                    with lock:
                        first = ("429", parts[-1]) not in served
                        served[("429", parts[-1])] = True
                    if first:
                        return self.reply(429, b"slow down", [("Retry-After", "1")])
                location = "http://127.0.0.1:%d/blobs/%s" % (args.blob_port, parts[-1])
                return self.reply(307, b"", [("Location", location)])
            self.reply(404)

        do_HEAD = do_GET

    class Blobs(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_GET(self):
            digest = self.path.rsplit("/", 1)[-1]
            p = blob_path(digest)
            auth = self.headers.get("Authorization", "")
            rng = self.headers.get("Range", "")
            log(args.log, "blob GET %s auth=%s range=%s" % (digest, "yes" if auth else "no", rng or "-"))
            if not p or not os.path.exists(p):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = open(p, "rb").read()
            start = 0
            if rng.startswith("bytes="):
                start = int(rng[6:].split("-")[0])
            with lock:
                served[digest] = served.get(digest, 0) + 1
                first = served[digest] == 1
            self.send_response(206 if start else 200)
            if start:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            body = data[start:]
            if args.cut_first and first and len(body) > 1024:
                self.wfile.write(body[: len(body) // 2])  # then the connection drops
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            step = max(1, args.throttle_bps // 20) if args.throttle_bps else len(body)
            for i in range(0, len(body), step):
                self.wfile.write(body[i:i + step])
                if args.throttle_bps:
                    self.wfile.flush()
                    time.sleep(0.05)

    threading.Thread(target=serve, args=(args.blob_port, Blobs), daemon=True).start()
    serve(args.port, Api)


def serve(port, handler):
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("token")
    t.add_argument("--port", type=int, required=True)
    t.add_argument("--cert-out", required=True)
    t.add_argument("--issuer", default="paddock-test-issuer")
    t.add_argument("--user", default="alice")
    t.add_argument("--password", default="wonderland")
    t.add_argument("--ttl", type=int, default=300, help="seconds from issue to the JWT's exp (may be negative)")
    t.add_argument("--expires-in", type=int, default=300, help="what the answer claims")
    t.add_argument("--log", required=True)
    r = sub.add_parser("redirect")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--blob-port", type=int, required=True)
    r.add_argument("--layout", required=True)
    r.add_argument("--throttle-bps", type=int, default=0)
    r.add_argument("--cut-first", action="store_true")
    r.add_argument("--rate-limit-once", action="store_true")
    r.add_argument("--log", required=True)
    args = p.parse_args()
    (token_server if args.mode == "token" else redirect_server)(args)


if __name__ == "__main__":
    main()
