#!/bin/bash
# Start, stop or check the testbed daemons one by one (there is no systemd).
#
#   daemons.sh start|stop|restart|status [NAME...]
#
# NAME: munge slurmctld slurmd slurmrestd containerd dockerd dockerd-overlay2
# (the second dockerd, overlay2 storage, on the same containerd), or the groups
# slurm (munge..slurmrestd), docker (containerd and both dockerds), all (default).
# start waits until the daemon answers and fails if it does not; it is a
# no-op for a daemon that is already running. Daemons are detached (own
# session, stdio on log files), so callers such as pytest are not held up.
# Must run as root. Fault tests use e.g. `daemons.sh stop slurmrestd`.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

START_TIMEOUT=${TB_START_TIMEOUT:-60}
ALL=(munge slurmctld slurmd slurmrestd containerd dockerd dockerd-overlay2)

pidfile_of() {
    case $1 in
        munge) echo /run/munge/munged.pid ;;
        slurmctld) echo /run/slurmctld.pid ;;
        slurmd) echo /run/slurmd.pid ;;
        *) echo "$TB_RUN/$1.pid" ;;
    esac
}

comm_of() {
    case $1 in
        munge) echo munged ;;
        dockerd-overlay2) echo dockerd ;;
        *) echo "$1" ;;
    esac
}

# The pid of a running daemon, from its pid file, checked against its name.
pid_of() {
    local file pid
    file=$(pidfile_of "$1")
    [[ -r $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid ]] && alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$(comm_of "$1")" ]] || return 1
    echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

# dockerd refuses to start while its own pid file names a live process, even
# an unrelated one that reuses a dead dockerd's pid.
clear_stale_docker_pid() {
    local old
    old=$(tr -dc 0-9 2>/dev/null <"$1" || true)
    if [[ -n $old && $(cat "/proc/$old/comm" 2>/dev/null) != dockerd ]]; then
        rm -f "$1"
    fi
}


# Run a non-forking daemon in its own session, pid in TB_RUN, output in LOG.
# From /: a daemon restarted by a test would otherwise keep the checkout as
# its working directory, and slurmrestd fails every submit once that is gone
# ("getcwd failed").
spawn() {
    local name=$1 log=$2
    shift 2
    mkdir -p "$TB_RUN" "$(dirname "$log")"
    rm -f "$TB_RUN/$name.pid"
    (
        close_inherited_fds
        # shellcheck disable=SC2016  # the sh -c script expands its own arguments
        exec setsid sh -c 'cd / && echo $$ >"$0" && exec "$@"' "$TB_RUN/$name.pid" "$@"
    ) </dev/null >>"$log" 2>&1 &
}

node_ready() {
    local state
    state=$(sinfo -h -n "$TB_NODE" -o %t 2>/dev/null | head -n1)
    [[ $state =~ ^(idle|mix|alloc|comp)$ ]]
}

ctld_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

start_one() {
    local name=$1
    if is_running "$name"; then
        note "$name already running (pid $(pid_of "$name"))"
        return 0
    fi
    case $name in
        munge)
            install -d -o munge -g munge -m 0755 /run/munge
            install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
            runuser -u munge -- /usr/sbin/munged </dev/null
            wait_for "$START_TIMEOUT" munged sh -c 'munge -n | unmunge'
            ;;
        slurmctld)
            install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld "$TB_LOG"
            /usr/sbin/slurmctld -i </dev/null
            wait_for "$START_TIMEOUT" "slurmctld (scontrol ping)" ctld_up
            ;;
        slurmd)
            install -d -m 0755 /var/lib/slurm/slurmd
            /usr/sbin/slurmd -N "$TB_NODE" </dev/null
            if ! wait_for 10 "node $TB_NODE" node_ready; then
                # A node left DOWN by an unclean stop comes back with a resume.
                scontrol update nodename="$TB_NODE" state=resume 2>/dev/null || true
                wait_for "$START_TIMEOUT" "node $TB_NODE idle in sinfo" node_ready
            fi
            ;;
        slurmrestd)
            ctld_up || die "slurmrestd needs slurmctld"
            spawn slurmrestd "$TB_LOG/slurmrestd.log" \
                setpriv --reuid=slurmrestd --regid=slurmrestd --init-groups \
                env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SLURM_JWT=daemon \
                /usr/sbin/slurmrestd -a rest_auth/jwt -s "$TB_REST_VERSIONS" "$TB_REST_ADDR"
            wait_for "$START_TIMEOUT" "slurmrestd ping at $TB_REST_URL" rest_ping
            ;;
        containerd)
            spawn containerd /var/log/containerd.log /usr/bin/containerd
            wait_for "$START_TIMEOUT" containerd ctr version
            ;;
        dockerd)
            is_running containerd || die "dockerd needs containerd"
            clear_stale_docker_pid /var/run/docker.pid
            spawn dockerd /var/log/dockerd.log /usr/sbin/dockerd \
                --containerd=/run/containerd/containerd.sock
            wait_for "$START_TIMEOUT" "dockerd (docker info)" /usr/bin/docker info
            ;;
        dockerd-overlay2)
            # Everything else (storage, roots, socket, namespace) is in its
            # config file (setup.sh).
            is_running containerd || die "dockerd-overlay2 needs containerd"
            [[ -f $TB_DOCKER_OVERLAY2_CONF ]] || die "no $TB_DOCKER_OVERLAY2_CONF: run setup.sh"
            clear_stale_docker_pid "$TB_DOCKER_OVERLAY2_PIDFILE"
            spawn dockerd-overlay2 /var/log/dockerd-overlay2.log /usr/sbin/dockerd \
                --config-file="$TB_DOCKER_OVERLAY2_CONF"
            wait_for "$START_TIMEOUT" "dockerd-overlay2 (docker -H $TB_DOCKER_OVERLAY2_HOST info)" \
                /usr/bin/docker -H "$TB_DOCKER_OVERLAY2_HOST" info
            ;;
        *) die "unknown daemon $name" ;;
    esac
    note "$name started (pid $(pid_of "$name" || echo '?'))"
}

stop_one() {
    local name=$1 pid i
    if ! pid=$(pid_of "$name"); then
        note "$name not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        note "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    note "$name stopped (was pid $pid)"
}

status_one() {
    local pid
    if pid=$(pid_of "$1"); then
        printf '%-16s running (pid %s)\n' "$1" "$pid"
    else
        printf '%-16s stopped\n' "$1"
        return 1
    fi
}

expand() {
    local n
    for n in "$@"; do
        case $n in
            all) printf '%s\n' "${ALL[@]}" ;;
            slurm) printf '%s\n' munge slurmctld slurmd slurmrestd ;;
            docker) printf '%s\n' containerd dockerd dockerd-overlay2 ;;
            munge|munged) echo munge ;;
            slurmctld|slurmd|slurmrestd|containerd|dockerd|dockerd-overlay2) echo "$n" ;;
            *) die "unknown daemon '$n' (want: ${ALL[*]} slurm docker all)" ;;
        esac
    done
}

main() {
    [[ $# -ge 1 ]] || die "usage: $0 start|stop|restart|status [NAME...]"
    local action=$1
    shift
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    local names=()
    mapfile -t names < <(expand "${@:-all}")
    # Dependencies first on start, last on stop.
    local ordered=() reversed=() n m
    for n in "${ALL[@]}"; do
        for m in "${names[@]}"; do
            [[ $n == "$m" ]] && { ordered+=("$n"); break; }
        done
    done
    for ((i = ${#ordered[@]} - 1; i >= 0; i--)); do reversed+=("${ordered[i]}"); done
    local rc=0
    case $action in
        start) for n in "${ordered[@]}"; do start_one "$n"; done ;;
        stop) for n in "${reversed[@]}"; do stop_one "$n"; done ;;
        restart)
            for n in "${reversed[@]}"; do stop_one "$n"; done
            for n in "${ordered[@]}"; do start_one "$n"; done
            ;;
        status) for n in "${ordered[@]}"; do status_one "$n" || rc=1; done ;;
        *) die "unknown action $action" ;;
    esac
    return $rc
}

main "$@"
