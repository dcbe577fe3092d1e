"""`create`: check everything, fork the anchor, return once the job runs.

Everything that can be refused is refused here, before a job exists: the
id, the bundle, config.json, the settings, the token. Then the anchor is
forked (anchor/daemon.py); it submits the job and tells us over a pipe
whether the container is ready (anchor/create_report.py). A job that pends longer than CreateTimeout does not hold create
up (podman allows 240 s): create returns and `start` waits for the job.
"""
import os

from scrun_rest import job_options
from scrun_rest.anchor.anchor_setup import AnchorSetup
from scrun_rest.anchor.daemon import CreateFailed, fork_anchor
from scrun_rest.anchor.spool import Spool
from scrun_rest.cli import args
from scrun_rest.oci import validate
from scrun_rest.oci.state_doc import check_container_id

SPEC = args.Spec(
    values=("--bundle", "--console-socket", "--pid-file", "--preserve-fds"),
    flags=("--no-pivot", "--no-new-keyring"),
    aliases={"-b": "--bundle"},
)


def run(argv, globals_):
    parsed = args.parse(argv, SPEC, "create")
    container_id = check_container_id(parsed.positionals[0])
    bundle = os.path.abspath(parsed.get("--bundle") or os.getcwd())
    config_doc = validate.load_config(bundle)
    validate.validate_config(config_doc)
    setup = prepare(container_id, bundle, config_doc, parsed, globals_)
    return fork_anchor(setup, parsed.get("--console-socket"))


def prepare(container_id, bundle, config_doc, parsed, globals_):
    from scrun_rest.anchor.bundle_plan import BundlePlan
    from scrun_rest.connection import SlurmConnection
    from scrun_rest.oci.rootfs_lookup import check_executable

    process = config_doc.get("process") or {}
    connection = SlurmConnection.load()
    values, ignored = job_options.collect(connection.config.input_variables(), os.environ,
                                          process.get("env"))
    options = job_options.parse(values)
    log_settings = globals_.log_settings(options.settings)
    log_settings.apply()  # Lua logs while loading; never onto conmon's stderr
    setup = AnchorSetup(
        container_id=container_id, bundle=bundle, config_doc=config_doc,
        config_file=os.path.join(bundle, "config.json"),
        oci_version=str(config_doc.get("ociVersion") or "1.0.2"),
        annotations=config_doc.get("annotations") or {},
        root=globals_.resolved_root(), pid_file=_absolute(parsed.get("--pid-file")),
        terminal=bool(process.get("terminal")), step_args=options.step_args,
        ntasks=options.ntasks, labelio=options.labelio, log_settings=log_settings,
        settings=connection.config.oci_settings(), tunnel_host=connection.tunnel_host(),
        port_range=connection.config.port_range(),
        tunnel_tls=connection.config.get_bool("TunnelTls"),
        heartbeat=connection.config.get_int("TunnelHeartbeat", minimum=1),
        create_timeout=connection.config.get_int("CreateTimeout", minimum=0),
        agent_python=connection.config.get("AgentPython"),
        ignored_variables=ignored,
    )
    setup.submission_bundle = bundle
    setup.submission_config_file = setup.config_file
    setup.submission_rootfs = setup.rootfs
    problem = check_executable(setup.rootfs, process)
    if problem:
        raise CreateFailed(problem[1], problem[0])
    setup.bundle_plan = BundlePlan.from_config(connection.config)
    setup.bundle_plan.check_volumes(setup.compute_config(), setup.rootfs)
    setup.user_name = connection.user()
    setup.make_rest_client = connection.rest_client
    setup.spool = Spool(setup.root, container_id)
    setup.staging = connection.load_staging(setup)
    setup.job_request = connection.job_request(options, setup)
    return setup


def _absolute(path):
    return os.path.abspath(path) if path else None
