"""Everything `create` worked out, handed to the anchor it forks."""
import json
import os
import socket
import time

from scrun_rest import terminal


class AnchorSetup:
    def __init__(self, **values):
        self.container_id = None
        self.bundle = None
        self.config_doc = None
        self.config_file = None
        self.oci_version = "1.0.2"
        self.annotations = {}
        self.spool = None
        self.root = None
        self.pid_file = None
        self.status_fd = None
        self.stdio = None
        self.terminal = False
        self.job_request = None
        self.step_args = []
        self.ntasks = 1
        self.labelio = False
        self.settings = {}
        self.tunnel_host = "127.0.0.1"
        self.port_range = (0, 0)
        self.tunnel_tls = False
        self.heartbeat = 5
        self.create_timeout = 200
        self.agent_python = "python3"
        self.staging = None
        self.make_rest_client = None
        self.user_name = None
        self.log_settings = None
        # SCRUN_* that config.json set but may not (job_options.FROM_CONTAINER).
        self.ignored_variables = []
        self.created = time.time()
        self.submission_bundle = None
        self.submission_config_file = None
        self.submission_rootfs = None
        # What the nodes may need copies of (bundle_plan.py); None: nothing.
        self.bundle_plan = None
        self.rootfs_staged = False
        self._bundle_offer = None
        self.__dict__.update(values)

    @property
    def rootfs(self):
        root = (self.config_doc.get("root") or {}).get("path", "rootfs")
        return root if root.startswith("/") else os.path.join(self.bundle, root)

    def compute_config(self):
        """config.json as the node should run it: with an absolute rootfs."""
        config = dict(self.config_doc)
        config["root"] = dict(config.get("root") or {}, path=self.rootfs)
        return config

    def reload_bundle(self, bundle, root_path=None):
        """After Lua moved the bundle: read its (edited) config.json."""
        self.bundle = bundle
        self.config_file = os.path.join(bundle, "config.json")
        with open(self.config_file, encoding="utf-8") as handle:
            self.config_doc = json.load(handle)
        if root_path:
            self.config_doc.setdefault("root", {})["path"] = root_path
        # The site's stage_in put the rootfs where its nodes see it.
        self.rootfs_staged = True

    def bundle_offer(self):
        """The items for the container's setup, probed once."""
        if self._bundle_offer is None:
            self._bundle_offer = self.bundle_plan.offered(
                self.compute_config(), self.rootfs, self.rootfs_staged) \
                if self.bundle_plan else []
        return self._bundle_offer

    def window_size(self):
        return terminal.window_size(self.stdio.get("tty") if self.stdio else None)

    def output_env(self, job_env=None):
        """scrun(1)'s OUTPUT ENVIRONMENT VARIABLES, for Lua and the job."""
        job_env = job_env or {}
        env = {
            "SCRUN_OCI_VERSION": self.oci_version,
            "SCRUN_CONTAINER_ID": self.container_id,
            "SCRUN_PID": str(os.getpid()),
            "SCRUN_BUNDLE": self.bundle,
            "SCRUN_SUBMISSION_BUNDLE": self.submission_bundle or self.bundle,
            "SCRUN_PID_FILE": self.pid_file or "",
            "SCRUN_SOCKET": self.spool.socket_path,
            "SCRUN_SPOOL_DIR": self.spool.dir,
            "SCRUN_SUBMISSION_CONFIG_FILE": self.submission_config_file or self.config_file,
            "SCRUN_USER": job_env.get("SCRUN_REST_USER") or self.user_name or "",
            "SCRUN_ROOT": self.root,
            "SCRUN_ROOTFS_PATH": self.rootfs,
            "SCRUN_SUBMISSION_ROOTFS_PATH": self.submission_rootfs or self.rootfs,
            "SCRUN_LOG_FILE": self._log_file(),
            "SCRUN_LOG_FORMAT": self.log_settings.log_format if self.log_settings else "text",
        }
        for key in ("SCRUN_USER_ID", "SCRUN_GROUP", "SCRUN_GROUP_ID"):
            if job_env.get(key.replace("SCRUN_", "SCRUN_REST_")):
                env[key] = job_env[key.replace("SCRUN_", "SCRUN_REST_")]
        for name, value in (self.annotations or {}).items():
            env["SCRUN_ANNOTATION_" + _env_name(name)] = value
        return env

    def _log_file(self):
        """Where the anchor logs: --log, SCRUN_LOG_FILE, else the spool dir."""
        default = os.path.join(self.spool.dir, "anchor.log") if self.spool else None
        if self.log_settings is None:
            return default or ""
        return self.log_settings.effective_file(default) or ""

    def container_env(self):
        """Slurm's variables for the container, beside the image's own."""
        return {
            "SLURM_CONTAINER": self.bundle,
            "SLURM_CONTAINER_ID": self.container_id,
            "SLURM_SUBMIT_HOST": socket.gethostname(),
        }


def _env_name(annotation):
    return "".join(c if c.isalnum() else "_" for c in annotation).upper()
