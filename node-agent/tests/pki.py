"""Test certificates as the program makes them for etcd (components/database.ts), with openssl."""
import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(d):
    """In directory d: a CA, a certificate for 127.0.0.1 signed by it (server and client), and a
    stranger's (another CA's, stranger.crt/.key). Returns the spec's etcdTls for the first."""
    for ca in ("ca", "stranger-ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", ca + ".key", "-out", ca + ".crt", "-subj", "/CN=" + ca, "-days", "2",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    (d / "ext.cnf").write_text("basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"
                               "subjectAltName=IP:127.0.0.1,DNS:db-1\n")
    for name, ca in (("member", "ca"), ("stranger", "stranger-ca")):
        openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key", "-CAcreateserial",
                "-out", name + ".crt", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    return {"cacert": str(d / "ca.crt"), "cert": str(d / "member.crt"), "key": str(d / "member.key")}
