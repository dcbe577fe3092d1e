"""slurmrestd client: one RestClient per URL, normalised jobs, one error type.

    client = RestClient(config, TokenSource(config))
    job_id = client.submit({"script": "#!/bin/sh\n...", "environment": {...}})
    info = client.job(job_id)          # JobInfo, state a JobState
    client.signal(job_id, "TERM"); client.cancel(job_id)
"""
from .client import RestClient
from .errors import (AuthRejected, InvalidField, JobNotFound, RestError, RestUnreachable,
                     UnsupportedField)
from .model import Controller, JobInfo, JobState

__all__ = [
    "RestClient", "RestError", "RestUnreachable", "AuthRejected", "JobNotFound",
    "UnsupportedField", "InvalidField", "JobState", "JobInfo", "Controller",
]
