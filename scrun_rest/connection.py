"""A user's connection to Slurm: config, token, REST client, staging script.

Heavy modules (requests, jwt, lupa) are imported here, only by commands
that talk to Slurm.
"""
import os

from scrun_rest.config import Config
from scrun_rest.errors import UserError

# The job's own environment: enough to find srun and python3 on the node.
JOB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SlurmConnection:
    def __init__(self, config):
        self.config = config
        self._tokens = None
        self._client = None

    @classmethod
    def load(cls):
        return cls(Config.load())

    @property
    def tokens(self):
        if self._tokens is None:
            from scrun_rest.auth import TokenSource
            self._tokens = TokenSource(self.config)
        return self._tokens

    def user(self):
        self.tokens.token()  # refuses an expired token with its expiry time
        return self.tokens.user

    def rest_client(self):
        if self._client is None:
            from scrun_rest.rest.client import RestClient
            self.config.require("RestUrl")
            self._client = RestClient(self.config, self.tokens)
        return self._client

    def tunnel_host(self):
        from scrun_rest.anchor import tunnel_address
        return tunnel_address.choose(self.config.get("TunnelHost"), self.config.get("RestUrl"))

    def load_staging(self, setup):
        path = self.config.get("LuaScript")
        if not path or not os.path.exists(path):
            return None
        from scrun_rest.lua.staging import Staging
        return Staging.load(path, setup)

    def job_request(self, options, setup):
        """The normalised job description for rest/; the anchor adds the script."""
        request = {
            "name": "scrun-rest",
            "environment": dict(setup.output_env(), PATH=JOB_PATH),
            "current_working_directory": "/tmp",
            "standard_output": self.config.get("JobOutput"),
            "standard_error": self.config.get("JobOutput"),
            "standard_input": "/dev/null",
            "requeue": False,
        }
        request.update(options.fields)
        # A version that cannot express a setting fails now, naming the
        # variable, not after the job is submitted.
        from scrun_rest.rest.errors import UnsupportedField
        client = self.rest_client()
        try:
            # The anchor writes the real script; any text checks the rest.
            client.check_request(dict(request, script="#!/bin/sh\n"))
        except UnsupportedField as exc:
            raise UserError("%s cannot be expressed by slurmrestd API %s" % (
                options.variable_for(exc.field), client.api_version))
        return request


def rest_client_from_config():
    return SlurmConnection.load().rest_client()
