"""Adapt the container's config.json so rootless runc can run it on this node.

podman and docker write configs for their own host: id mappings through
newuidmap, cgroup paths of their cgroup manager, hooks that only exist on
the submit host, rlimits of the submit host. scrun's man page does these
edits by hand in Lua; we do them for every container. Python 3.6+.
"""
import copy
import os
import resource

# Hooks name programs on the submit host (podman's network setup and the
# like); they cannot run on a compute node.
HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer",
              "poststart", "poststop")
ID_OPTIONS = ("uid=", "gid=")


def adapt(config, uid, gid, extra_env, terminal, disable_hooks=True):
    config = copy.deepcopy(config)
    process = config.setdefault("process", {})
    process["terminal"] = bool(terminal)
    process.pop("consoleSize", None)
    _merge_env(process, extra_env)
    _cap_rlimits(process)
    user = process.setdefault("user", {"uid": 0, "gid": 0})
    user.pop("additionalGids", None)
    linux = config.setdefault("linux", {})
    _rootless_namespaces(linux, uid, gid, user)
    # Slurm confines the job; runc cannot join the submit host's cgroups.
    linux.pop("cgroupsPath", None)
    linux.pop("resources", None)
    # Sysctls such as ping_group_range name ids and settings of the submit
    # host; inside a one-id user namespace the kernel refuses them.
    linux.pop("sysctl", None)
    if disable_hooks:
        hooks = config.get("hooks") or {}
        for kind in HOOK_KINDS:
            hooks.pop(kind, None)
        if not hooks:
            config.pop("hooks", None)
    for mount in config.get("mounts") or []:
        _check_source(mount)
    config["mounts"] = [_without_id_options(m) for m in config.get("mounts") or []]
    return config


def _merge_env(process, extra_env):
    """Add the job's variables without overriding the container's own."""
    env = list(process.get("env") or [])
    present = {entry.split("=", 1)[0] for entry in env}
    for key in sorted(extra_env):
        if key not in present:
            env.append("%s=%s" % (key, extra_env[key]))
    process["env"] = env


def _cap_rlimits(process):
    kept = []
    for limit in process.get("rlimits") or []:
        name = str(limit.get("type", "")).replace("RLIMIT_", "")
        number = getattr(resource, "RLIMIT_" + name, None)
        if number is None:
            continue
        _, node_hard = resource.getrlimit(number)
        if node_hard != resource.RLIM_INFINITY:
            limit["hard"] = min(int(limit.get("hard", node_hard)), node_hard)
            limit["soft"] = min(int(limit.get("soft", node_hard)), limit["hard"])
        kept.append(limit)
    if kept:
        process["rlimits"] = kept
    else:
        process.pop("rlimits", None)


def _rootless_namespaces(linux, uid, gid, user):
    namespaces = []
    for namespace in linux.get("namespaces") or []:
        namespace = dict(namespace)
        # A namespace path names the submit host's namespace (podman's netns,
        # a pod's): missing here, or owned by another user namespace that a
        # fresh rootless container cannot join. Start a fresh one instead.
        namespace.pop("path", None)
        namespaces.append(namespace)
    if not any(ns.get("type") == "user" for ns in namespaces):
        namespaces.append({"type": "user"})
    linux["namespaces"] = namespaces
    # Without newuidmap on the node only our own id can be mapped; map it to
    # the id the container process runs as.
    linux["uidMappings"] = [{"containerID": int(user.get("uid", 0)), "hostID": uid, "size": 1}]
    linux["gidMappings"] = [{"containerID": int(user.get("gid", 0)), "hostID": gid, "size": 1}]


def _without_id_options(mount):
    options = mount.get("options")
    if options:
        mount = dict(mount)
        mount["options"] = [o for o in options if not o.startswith(ID_OPTIONS)]
    return mount


def _check_source(mount):
    """A bind mount whose source this node lacks would reach the container
    as nothing at all: refuse it, naming it (BundleTransfer copies what the
    node lacks; never, or a SharedPaths that is not shared, leaves it)."""
    options = mount.get("options") or []
    if mount.get("type") == "bind" or "bind" in options or "rbind" in options:
        source = mount.get("source", "")
        if not os.path.lexists(source):
            raise ValueError("the source %s of the bind mount at %s does not exist on "
                             "this node" % (source, mount.get("destination")))
