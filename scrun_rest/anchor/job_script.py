"""The batch script: the stdlib-only agent plus how to reach the anchor.

It holds the tunnel address and the one-use agent secret. Slurm shows a
batch script only to its owner and the operators; the secret admits a
single agent connection, after which it is worthless. No JWT is here.
"""
import os

import scrun_rest
from scrun_rest.tunnel import loopback

# Modules the agent runs on compute nodes, as importable names.
AGENT_MODULES = (
    "scrun_rest.agent.entry",
    "scrun_rest.agent.job",
    "scrun_rest.agent.task",
    "scrun_rest.agent.task_bundle",
    "scrun_rest.agent.detached",
    "scrun_rest.agent.pipes",
    "scrun_rest.agent.pty_streams",
    "scrun_rest.agent.leftovers",
    "scrun_rest.agent.oci_conf",
    "scrun_rest.agent.runtime_root",
    "scrun_rest.agent.node_config",
    "scrun_rest.agent.task_boot",
    "scrun_rest.agent.runtime_hooks",
    "scrun_rest.agent.bundle_fetch",
    "scrun_rest.agent.node_cache",
    "scrun_rest.bundle.manifest",
    "scrun_rest.bundle.dirfd_walk",
    "scrun_rest.bundle.errors",
    "scrun_rest.bundle.pack",
    "scrun_rest.bundle.python_tar",
    "scrun_rest.bundle.relpaths",
    "scrun_rest.bundle.safe_extract",
    "scrun_rest.bundle.tar_input",
    "scrun_rest.bundle.tree_changes",
    "scrun_rest.bundle.tree_probe",
    "scrun_rest.tunnel.wire",
    "scrun_rest.tunnel.loopback",
    "scrun_rest.tunnel.tls",
    "scrun_rest.tunnel.messages",
    "scrun_rest.conf_lines",
    "scrun_rest.pipe_size",
    "scrun_rest.oci.rootfs_lookup",
)
PACKAGES = ("scrun_rest", "scrun_rest.agent", "scrun_rest.bundle", "scrun_rest.oci",
            "scrun_rest.tunnel")
# Exec'd once per process (SOURCES['@boot']), never imported: not a module.
BOOT_SCRIPT = "scrun_rest.agent.bootstrap"

_SOURCES = None


def agent_sources():
    """Module name -> source text, read once from the installed package."""
    global _SOURCES
    if _SOURCES is None:
        base = os.path.dirname(os.path.dirname(os.path.abspath(scrun_rest.__file__)))
        sources = {name: "" for name in PACKAGES}
        for name in AGENT_MODULES:
            sources[name] = _read_module(base, name)
        sources["@boot"] = _read_module(base, BOOT_SCRIPT)
        _SOURCES = sources
    return _SOURCES


def _read_module(base, name):
    with open(os.path.join(base, *name.split(".")) + ".py", encoding="utf-8") as handle:
        return handle.read()


def build(container_id, host, port, secret_hex, python="python3",
          heartbeat=5, dial_timeout=30, tls_pin=None):
    shebang = python if python.startswith("/") else "/usr/bin/env " + python
    params = {"host": host, "port": port, "secret": secret_hex,
              "heartbeat": heartbeat, "dial_timeout": dial_timeout,
              "container": container_id}
    if tls_pin:
        # The certificate's fingerprint: public, it only lets the agent
        # recognise the real anchor.
        params["tls"] = tls_pin
    if loopback.is_loopback(host):
        # Lets a node that is not this host refuse the address.
        params["place"] = loopback.this_place()
    return "".join((
        "#!%s\n" % shebang,
        "# scrun-rest %s agent for container %s\n" % (scrun_rest.__version__, container_id),
        "SOURCES = %r\n" % (agent_sources(),),
        "PARAMS = %r\n" % (params,),
        "exec(compile(SOURCES['@boot'], '<scrun-rest boot>', 'exec'),\n"
        "     {'__name__': '__scrun_boot__', 'SOURCES': SOURCES, 'PARAMS': PARAMS})\n",
    ))
