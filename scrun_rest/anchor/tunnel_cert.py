"""A throw-away certificate for one container's TLS tunnel (TunnelTls=yes, the default).

Self-signed and pinned by fingerprint in the job script, so no CA and no
host name matter. Made with the openssl command (no Python crypto package
is needed on the submit host); the key lives only in the 0700 spool dir
until the anchor has loaded it, then both files are removed.
"""
import os
import ssl
import subprocess

from scrun_rest.errors import UserError
from scrun_rest.tunnel import tls

OPENSSL = "openssl"
LIFETIME_DAYS = "3650"  # the pin, not the expiry, decides; jobs may pend long


def make_server_context(spool_dir):
    """(ssl context, SHA-256 fingerprint) for a fresh certificate."""
    key = os.path.join(spool_dir, "tunnel-key.pem")
    cert = os.path.join(spool_dir, "tunnel-cert.pem")
    old_umask = os.umask(0o077)
    try:
        done = subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
             "-days", LIFETIME_DAYS, "-subj", "/CN=scrun-rest-tunnel", "-batch"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            timeout=30)
        if done.returncode != 0:
            detail = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise UserError("TunnelTls: openssl could not make a certificate%s"
                            % (": " + detail[-1][:200] if detail else ""))
        context = tls.server_context(cert, key)
        with open(cert, encoding="ascii") as handle:
            der = ssl.PEM_cert_to_DER_cert(handle.read())
        return context, tls.fingerprint(der)
    except FileNotFoundError as exc:
        if exc.filename not in (OPENSSL, None):
            raise UserError("TunnelTls: cannot make a certificate: %s: %s"
                            % (exc.filename, exc.strerror))
        raise UserError("TunnelTls=yes (the default) needs the openssl command, which is "
                        "not on PATH: install openssl, or set TunnelTls=no "
                        "(docs/security.md says what that gives up)")
    except OSError as exc:
        raise UserError("TunnelTls: cannot make a certificate: %s" % (exc.strerror or exc))
    except subprocess.TimeoutExpired:
        raise UserError("TunnelTls: openssl did not finish within 30 s")
    finally:
        os.umask(old_umask)
        for path in (key, cert):
            try:
                os.unlink(path)
            except OSError:
                pass
