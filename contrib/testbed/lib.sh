# Shared settings and helpers for the single-node scrun-rest testbed.
# shellcheck disable=SC2034  # settings used by the scripts that source this file
# Sourced by setup.sh, daemons.sh, install-runtime.sh and run-tests.sh.
# shellcheck shell=bash

TESTBED_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR_DEFAULT=$(cd "$TESTBED_DIR/../.." && pwd)

# Everything a test may want to know about the testbed, in one place.
TB_VENV=/opt/scrun-rest
TB_REST_ADDR=127.0.0.1:6820
TB_REST_URL=http://$TB_REST_ADDR
TB_REST_VERSIONS=openapi/v0.0.38,openapi/v0.0.37
TB_JWT_KEY=/etc/slurm/jwt_hs256.key
TB_NODE=localhost
TB_USER=scruntest
TB_UID=2000
TB_OTHER_USER=scrunother
TB_OTHER_UID=2001
# A user who never logs in: no /run/user/UID, as on a compute node where
# the user has no session (slurmd does not make it).
TB_BARE_USER=scrunbare
TB_BARE_UID=2002
# Extra test users ("name:uid ..."), so several developers can run the
# end-to-end suite at once without seeing each other's jobs.
TB_DEV_USERS=${TB_DEV_USERS:-}
TB_IMAGE=localhost/busybox
TB_ROOTFS=/var/lib/scrun-testbed/busybox-rootfs
TB_STATE=/var/lib/scrun-testbed
TB_RUN=/run/scrun-testbed          # our pid files
# A second dockerd with docker's default storage driver (overlay2), beside
# the vfs one: its own data, exec root, socket and containerd namespace, on
# the same containerd.
TB_DOCKER_OVERLAY2_CONF=/etc/docker/daemon-overlay2.json
TB_DOCKER_OVERLAY2_HOST=unix:///run/docker-overlay2.sock
TB_DOCKER_OVERLAY2_DATA=/var/lib/docker-overlay2
TB_DOCKER_OVERLAY2_EXEC=/run/docker-overlay2
TB_DOCKER_OVERLAY2_PIDFILE=/run/docker-overlay2.pid
TB_DOCKER_OVERLAY2_NAMESPACE=moby-overlay2
TB_LOG=/var/log/slurm
# The Debian roots with today's Slurm releases (roots.sh); each has a
# runtime wrapper TB_ROOTS_STATE/RELEASE/scrun-rest, registered with docker
# as scrun-rest-RELEASE.
TB_ROOT_RELEASES="trixie forky"
TB_ROOTS_STATE=$TB_STATE/roots
# Root's engines on this host (rootful podman, dockerd) reach the multi-node
# testbed (multinode.sh) through this wrapper, registered with docker as
# scrun-rest-multinode.
TB_MN_ROOT_RUNTIME=$TB_STATE/multinode/scrun-rest-root

export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

_tb_t0=${_tb_t0:-$(date +%s.%N)}

tb_elapsed() {
    awk -v a="$_tb_t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# A header per stage, with the seconds since the script started.
stage() {
    printf '\n==== [%6ss] %s\n' "$(tb_elapsed)" "$*"
}

note() { printf '     %s\n' "$*"; }

die() {
    printf 'testbed: ERROR: %s\n' "$*" >&2
    exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.2 s.
wait_for() {
    local timeout=$1 what=$2
    shift 2
    local deadline=$(( $(date +%s) + timeout ))
    while :; do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        if (( $(date +%s) >= deadline )); then
            printf 'testbed: timed out after %ss waiting for %s\n' "$timeout" "$what" >&2
            return 1
        fi
        sleep 0.2
    done
}

# Run a command as the rootless test user, with the environment a login gives.
as_user() {
    local user=$1
    shift
    local uid home
    uid=$(id -u "$user")
    home=$(getent passwd "$user" | cut -d: -f6)
    (cd / && runuser -u "$user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
        HOME="$home" USER="$user" LOGNAME="$user" XDG_RUNTIME_DIR="/run/user/$uid" "$@")
}

# A token for USER, just the JWT (scontrol prints SLURM_JWT=...).
mint_token() {
    local user=$1 lifespan=${2:-3600} out
    out=$(scontrol token username="$user" lifespan="$lifespan") || return 1
    printf '%s\n' "${out#SLURM_JWT=}"
}

# Install stdin as DEST only if it differs; returns 0 when it changed.
write_if_changed() {  # DEST MODE OWNER < content
    local dest=$1 mode=$2 owner=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        return 1
    fi
    install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$tmp" "$dest"
    rm -f "$tmp"
    note "wrote $dest"
}

# A process that exited is gone even while it waits, as a zombie, for pid 1
# to reap it (pid 1 in these VMs reaps only every two seconds or so).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ ${stat%% *} != Z ]]
}

# TERM to PID, KILL if it is still there after 10 s.
end_pid() {
    local i
    kill -TERM "$1" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$1" || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

# COMMAND... in the background, in a session of its own, with none of our
# descriptors but 0-2: a daemon that kept one would hold the lock of a
# caller's `flock FILE setup.sh` for as long as it runs.
detach() {
    (
        close_inherited_fds
        exec setsid "$@"
    ) &
}

rest_ping() {
    local token
    token=$(mint_token root 300) || return 1
    curl -fsS --max-time 5 -H "X-SLURM-USER-NAME: root" -H "X-SLURM-USER-TOKEN: $token" \
        "$TB_REST_URL/slurm/v0.0.38/ping" | grep -q '"ping": *"UP"'
}

# The slurm.conf lines both testbeds (setup.sh, multinode.sh) share: plugins
# light enough for a VM, no accounting, and the timings the tests rely on.
slurm_conf_common() {
    cat <<'EOF'
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Batch jobs are only ever started by slurmctld's background loop, which
# wakes once a second; batch_sched_delay=0 lets every wake-up start them (the
# default of 3 s adds up to 3 s). Submit -> running is then 0.1-1.0 s.
SchedulerParameters=batch_sched_delay=0
MailProg=/bin/true
ReturnToService=2
MinJobAge=3600
KillWait=5
MessageTimeout=10
InactiveLimit=0
Waittime=0
SlurmdTimeout=300
EOF
}

# Close every descriptor but 0-2 of this (sub)shell: a daemon started from
# it must not keep open a caller's `flock FILE ...` lock file, or every
# later e2e run waits on that lock for as long as the daemon lives.
close_inherited_fds() {
    local fd
    for fd in /proc/self/fd/*; do
        fd=${fd##*/}
        if ((fd > 2)); then exec {fd}>&-; fi
    done
}
