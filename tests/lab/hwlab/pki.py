"""The lab's certificates, made with the openssl command line: a lab CA, the API server's
serving certificate, the control plane's client certificates (the admin, kube-proxy,
CoreDNS), the ServiceAccount token signing key, and for each Ingress host a valid, an expired and (shared) a wrong-host
certificate. `openssl x509 -req` cannot back-date a certificate, so the expired ones come
from `openssl ca` with explicit start and end dates."""

import calendar
import os
import time

from .netns import run

EXPIRED_START, EXPIRED_END = "20240101000000Z", "20240201000000Z"
WRONG_HOST = "other.example.net"

CA_CNF = """[ca]
default_ca = lab
[lab]
dir = {dir}
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir
default_md = sha256
policy = anything
copy_extensions = copy
unique_subject = no
[anything]
commonName = supplied
"""


class Pki:
    def __init__(self, directory):
        self.dir = directory

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self):
        os.makedirs(self.dir, exist_ok=True)
        if not os.path.exists(self.path("ca.crt")):
            run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", self.path("ca.key"), "-out", self.path("ca.crt"), "-days", "3650",
                 "-subj", "/CN=hopwatch lab CA"])
        return self.path("ca.crt")

    def _csr(self, name, cn, sans):
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.path(name + ".key"), "-out", self.path(name + ".csr"), "-subj", f"/CN={cn}",
             "-addext", "subjectAltName=" + ",".join(sans)])

    def leaf(self, name, sans, days=365):
        """A certificate for `sans` (like DNS:a.example.com, IP:10.96.0.1), signed by the lab CA."""
        crt = self.path(name + ".crt")
        if os.path.exists(crt):
            return crt
        cn = sans[0].split(":", 1)[1]
        self._csr(name, cn, sans)
        return self._sign(name, f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\n", days)

    def client(self, name, cn, org=None):
        """A client certificate: the API server takes CN as the user name and O as its group."""
        crt = self.path(name + ".crt")
        if os.path.exists(crt):
            return crt
        subject = (f"/O={org}" if org else "") + f"/CN={cn}"
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", self.path(name + ".key"), "-out", self.path(name + ".csr"), "-subj", subject])
        return self._sign(name, "extendedKeyUsage=clientAuth\n", 365)

    def _sign(self, name, extensions, days):
        crt, ext = self.path(name + ".crt"), self.path(name + ".ext")
        with open(ext, "w", encoding="ascii") as f:
            f.write(extensions + "basicConstraints=CA:FALSE\n")
        run(["openssl", "x509", "-req", "-in", self.path(name + ".csr"), "-CA", self.path("ca.crt"),
             "-CAkey", self.path("ca.key"), "-CAcreateserial", "-days", str(days), "-out", crt, "-extfile", ext])
        return crt

    def signing_key(self, name):
        """An EC key pair (`name`.key, `name`.pub): the API server signs ServiceAccount tokens
        with the private key (ES256) and checks them with the public one."""
        key, pub = self.path(name + ".key"), self.path(name + ".pub")
        if not os.path.exists(pub):
            run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
            run(["openssl", "ec", "-in", key, "-pubout", "-out", pub])
        return key, pub

    def expired(self, name, sans):
        """A certificate for `sans` that was valid in January 2024 only."""
        crt = self.path(name + ".crt")
        if os.path.exists(crt):
            return crt
        db = self.path("ca-db")
        os.makedirs(db, exist_ok=True)
        for f, init in (("index.txt", ""), ("serial", "1000\n")):
            if not os.path.exists(os.path.join(db, f)):
                with open(os.path.join(db, f), "w", encoding="ascii") as fh:
                    fh.write(init)
        cnf = self.path("ca.cnf")
        with open(cnf, "w", encoding="ascii") as f:
            f.write(CA_CNF.format(dir=db))
        self._csr(name, sans[0].split(":", 1)[1], sans)
        run(["openssl", "ca", "-batch", "-config", cnf, "-cert", self.path("ca.crt"), "-keyfile", self.path("ca.key"),
             "-in", self.path(name + ".csr"), "-out", crt, "-startdate", EXPIRED_START, "-enddate", EXPIRED_END,
             "-notext"])
        return crt


def not_after(crt):
    """The certificate's notAfter as Unix seconds."""
    out = run(["openssl", "x509", "-noout", "-enddate", "-in", crt]).stdout.strip()
    stamp = out.split("=", 1)[1]
    return calendar.timegm(time.strptime(stamp, "%b %d %H:%M:%S %Y %Z"))
