#!/bin/bash
# The multi-node testbed: a Slurm cluster of two nodes and a login host that
# can reach slurmrestd and nothing else of Slurm, all in network namespaces
# on this machine, next to (and independent of) the single-node testbed.
#
#   multinode.sh up|down|status
#
#   bridge scrunmn0 (no address) in the root namespace, 10.199.77.0/24
#   unreachable from the root namespace; one veth per namespace:
#     ctl   10.199.77.2   slurmctld (port 6917), slurmrestd (JWT, port 6920)
#     n1    10.199.77.11  slurmd -N n1 (port 6918), Features=n1
#     n2    10.199.77.12  slurmd -N n2 (port 6918), Features=n2
#     login 10.199.77.20  no Slurm at all; its firewall lets out only
#                         slurmrestd's port and replies (jobs dial in freely)
#   /etc/slurm-multi/ (slurm.conf, cgroup.conf, JWT key), state in
#   /var/lib/slurm-multi, logs in /var/log/slurm-multi, pid files in
#   /run/slurm-multi; munged is the single-node testbed's (its socket in
#   /run/munge is a file, which network namespaces do not hide).
#   For the test users (TB_USER, TB_DEV_USERS, TB_MN_USERS): a token and a
#   config of RestUrl, TunnelHost and JwtFile in ~/.config/scrun-rest-multinode/,
#   used through the runtime wrapper $MN_DIR/scrun-rest (podman passes the
#   runtime no environment to choose a config file with).
#   Facts for tests: /var/lib/scrun-testbed/multinode.env.
#
# The compute nodes do not share the submit host's files (issue 13): each
# slurmd starts in a private mount namespace of its own (unshare --mount
# --propagation private) where a fresh empty tmpfs, one per node, covers
#   /home /tmp /var/tmp /run/user /root, podman's /var/lib/containers and
#   /run/containers, docker's and containerd's /var/lib/docker /run/docker
#   /var/lib/containerd /run/containerd (those of them the host has)
# before slurmd is exec'd; /tmp and /var/tmp are mode 1777, the others keep
# the host directory's mode. Jobs inherit the namespace, so a container's
# files reach a node only through the tunnel. Still the host's: /etc, /usr
# (python3, runc), /opt, /var/lib/scrun-testbed, /proc, /sys (with
# /sys/fs/cgroup), /dev (with /dev/shm), /run/munge (munged's socket) and this testbed's own /etc/slurm-multi, /var/lib/slurm-multi
# (SlurmdSpoolDir), /var/log/slurm-multi and /run/slurm-multi. The mounts go
# with the namespace when slurmd and its steps are gone: a restarted slurmd
# gets empty ones. `up` restarts a slurmd found sharing the host's files.
# The login host (podman and the runtime) sees the host's files as before.
#   "Scratch is small", for fault tests: on each node another tmpfs of 8 MB,
#   mode 1777, at /var/lib/scrun-testbed-scratch-small (an empty directory on
#   the host); point the runtime's node scratch there to fill it.
#   In multinode.env: MN_SHARED_FS=no (every slurmd seen in its own mount
#   namespace), MN_NODE_PRIVATE (the directories covered), MN_SMALL_SCRATCH
#   and MN_SMALL_SCRATCH_SIZE.
#
# Daemons run in their namespace with their own host name:
#   nsenter --net=/run/netns/NS unshare --uts sh -c 'hostname NAME && exec ...'
# slurmd with `unshare --uts --mount --propagation private` and its tmpfs
# mounted by that sh before the hostname.
# (not `ip netns exec`, which remounts /sys and leaves /sys/fs/cgroup empty:
# rootless runc in jobs then fails with "no cgroup mount found in mountinfo").
# Run Slurm commands against this cluster with
#   nsenter --net=/run/netns/ctl env SLURM_CONF=/etc/slurm-multi/slurm.conf squeue
# shellcheck disable=SC2016  # the sh -c scripts expand their own arguments
set -euo pipefail
_tb_t0=$(date +%s.%N)
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

MN_NET=10.199.77
MN_CIDR=$MN_NET.0/24
MN_BRIDGE=scrunmn0
declare -A MN_ADDR=([ctl]=$MN_NET.2 [n1]=$MN_NET.11 [n2]=$MN_NET.12 [login]=$MN_NET.20)
MN_NAMESPACES=(ctl n1 n2 login)
MN_NODES=(n1 n2)
MN_ETC=/etc/slurm-multi
MN_CONF=$MN_ETC/slurm.conf
MN_JWT_KEY=$MN_ETC/jwt_hs256.key
MN_VAR=/var/lib/slurm-multi
MN_LOG=/var/log/slurm-multi
MN_RUN=/run/slurm-multi
MN_CTLD_PORT=6917
MN_SLURMD_PORT=6918
MN_REST_PORT=6920
MN_REST_URL=http://${MN_ADDR[ctl]}:$MN_REST_PORT
MN_FIRST_JOB_ID=500000
MN_DIR=$TB_STATE/multinode
MN_RUNTIME=$MN_DIR/scrun-rest
MN_ENV=$TB_STATE/multinode.env
MN_USER_CONF_DIR=.config/scrun-rest-multinode
# What a node covers with its own empty tmpfs (those the host has).
MN_NODE_PRIVATE=(/home /tmp /var/tmp /run/user /root /var/lib/containers /run/containers
                 /var/lib/docker /run/docker /var/lib/containerd /run/containerd
                 "$TB_DOCKER_OVERLAY2_DATA" "$TB_DOCKER_OVERLAY2_EXEC")
MN_SMALL_SCRATCH=/var/lib/scrun-testbed-scratch-small
MN_SMALL_SCRATCH_SIZE=8m
START_TIMEOUT=${TB_START_TIMEOUT:-30}

in_ns() {  # NS COMMAND...: run in a namespace's network, nothing else changed
    local ns=$1
    shift
    nsenter --net="/run/netns/$ns" "$@"
}

slurm() {  # a Slurm client command against this cluster, from the ctl namespace
    in_ns ctl env SLURM_CONF="$MN_CONF" "$@"
}

# ---------------------------------------------------------------------------
# network
net_up() {
    if ! ip link show "$MN_BRIDGE" >/dev/null 2>&1; then
        ip link add "$MN_BRIDGE" type bridge
        note "created bridge $MN_BRIDGE"
    fi
    ip link set "$MN_BRIDGE" up
    # Nothing for the testbed's /24 may leave through the default route.
    ip route replace unreachable "$MN_CIDR"
    # Bridged frames pass the root namespace's FORWARD chain (br_netfilter).
    iptables -C FORWARD -i "$MN_BRIDGE" -o "$MN_BRIDGE" -j ACCEPT 2>/dev/null \
        || iptables -I FORWARD -i "$MN_BRIDGE" -o "$MN_BRIDGE" -j ACCEPT
    local ns host_if
    for ns in "${MN_NAMESPACES[@]}"; do
        [[ -e /run/netns/$ns ]] || { ip netns add "$ns"; note "created namespace $ns"; }
        host_if=mn-$ns
        if ! ip link show "$host_if" >/dev/null 2>&1; then
            ip link add "$host_if" type veth peer name eth0 netns "$ns"
        fi
        ip link set "$host_if" master "$MN_BRIDGE" up
        in_ns "$ns" ip link set lo up
        in_ns "$ns" ip link set eth0 up
        in_ns "$ns" ip addr replace "${MN_ADDR[$ns]}/24" dev eth0
    done
    login_firewall
}

# The login host may open connections only to slurmrestd; replies to the
# connections jobs open towards it (the tunnel) are let out. Anything else is
# refused at once (REJECT), so a Slurm client there fails fast, not after
# its connect timeouts.
login_firewall() {
    local rules
    rules=$(in_ns login iptables -S OUTPUT)
    if grep -q -- "--dport $MN_REST_PORT" <<<"$rules" && grep -q -- '-j REJECT' <<<"$rules" &&
            grep -q -- '-P OUTPUT DROP' <<<"$rules"; then
        return 0
    fi
    in_ns login iptables -F OUTPUT
    in_ns login iptables -A OUTPUT -o lo -j ACCEPT
    in_ns login iptables -A OUTPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    in_ns login iptables -A OUTPUT -p tcp -d "${MN_ADDR[ctl]}" --dport "$MN_REST_PORT" -j ACCEPT
    in_ns login iptables -A OUTPUT -j REJECT
    in_ns login iptables -P OUTPUT DROP
    note "login firewall: out only to ${MN_ADDR[ctl]}:$MN_REST_PORT and replies"
}

net_down() {
    local ns
    for ns in "${MN_NAMESPACES[@]}"; do
        [[ -e /run/netns/$ns ]] && ip netns del "$ns"
        ip link del "mn-$ns" 2>/dev/null || true
    done
    ip link del "$MN_BRIDGE" 2>/dev/null || true
    ip route del unreachable "$MN_CIDR" 2>/dev/null || true
    while iptables -D FORWARD -i "$MN_BRIDGE" -o "$MN_BRIDGE" -j ACCEPT 2>/dev/null; do :; done
}

# ---------------------------------------------------------------------------
# Slurm configuration

conf_up() {
    install -d -m 0755 "$MN_ETC" "$MN_DIR"
    install -d -o slurm -g slurm -m 0755 "$MN_VAR" "$MN_VAR/ctld" "$MN_LOG" "$MN_RUN"
    if [[ ! -s $MN_JWT_KEY ]]; then
        dd if=/dev/urandom of="$MN_JWT_KEY" bs=32 count=1 status=none
        note "created $MN_JWT_KEY"
    fi
    chown slurm:slurm "$MN_JWT_KEY"
    chmod 0600 "$MN_JWT_KEY"
    local ncpu changed=1 node
    ncpu=$(nproc)
    {
        cat <<EOF
# scrun-rest multi-node testbed: written by contrib/testbed/multinode.sh.
ClusterName=multinode
SlurmctldHost=ctl(${MN_ADDR[ctl]})
SlurmctldPort=$MN_CTLD_PORT
SlurmdPort=$MN_SLURMD_PORT
FirstJobId=$MN_FIRST_JOB_ID
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$MN_JWT_KEY
StateSaveLocation=$MN_VAR/ctld
SlurmdSpoolDir=$MN_VAR/slurmd-%n
SlurmctldPidFile=$MN_RUN/slurmctld.pid
SlurmdPidFile=$MN_RUN/slurmd-%n.pid
SlurmctldLogFile=$MN_LOG/slurmctld.log
SlurmdLogFile=$MN_LOG/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
EOF
        slurm_conf_common
        for node in "${MN_NODES[@]}"; do
            echo "NodeName=$node NodeAddr=${MN_ADDR[$node]} CPUs=$ncpu RealMemory=1000 Features=$node State=UNKNOWN"
        done
        echo "PartitionName=multi Nodes=$(IFS=,; echo "${MN_NODES[*]}") Default=YES MaxTime=INFINITE OverSubscribe=FORCE:8 State=UP"
    } | write_if_changed "$MN_CONF" 0644 root:root || changed=0
    write_if_changed "$MN_ETC/cgroup.conf" 0644 root:root <<<"CgroupPlugin=autodetect" || true
    return $((1 - changed))
}

# ---------------------------------------------------------------------------
# daemons: pid files in MN_RUN, each checked against its name and namespace

daemon_pid() {  # NAME COMM NS: the pid of a running daemon
    local file=$MN_RUN/$1.pid pid
    [[ -r $file ]] || return 1
    pid=$(tr -dc 0-9 <"$file")
    [[ -n $pid ]] && alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
    [[ $(readlink "/proc/$pid/ns/net") == "$(ns_inode "$3")" ]] || return 1
    echo "$pid"
}

ns_inode() { echo "net:[$(stat -L -c %i "/run/netns/$1" 2>/dev/null)]"; }

# name comm namespace, in start order
DAEMONS=("slurmctld slurmctld ctl" "slurmd-n1 slurmd n1" "slurmd-n2 slurmd n2"
         "slurmrestd slurmrestd ctl")

# ---------------------------------------------------------------------------
# the nodes' own filesystem
node_private_dirs() {  # the MN_NODE_PRIVATE directories this host has
    local dir
    for dir in "${MN_NODE_PRIVATE[@]}"; do
        [[ -d $dir && ! -L $dir ]] && echo "$dir"
    done
    return 0
}

node_mounts() {  # DIR:OPTIONS for each tmpfs a node mounts, one a line
    local dir mode
    for dir in $(node_private_dirs); do
        case $dir in
            /tmp | /var/tmp) mode=1777 ;;
            *) mode=$(stat -c %a "$dir") ;;
        esac
        echo "$dir:mode=$mode,nosuid,nodev"
    done
    echo "$MN_SMALL_SCRATCH:size=$MN_SMALL_SCRATCH_SIZE,mode=1777,nosuid,nodev"
}

# A slurmd in a mount namespace other than ours, with the small scratch mounted.
node_isolated() {  # PID: its own mounts over every private dir (a list that grew restarts it)
    [[ $(readlink "/proc/$1/ns/mnt") != "$(readlink /proc/self/ns/mnt)" ]] &&
        awk -v dirs="$MN_SMALL_SCRATCH $(node_private_dirs | tr '\n' ' ')" '
            BEGIN { wanted = split(dirs, list, " "); for (i in list) want[list[i]] = 1 }
            ($5 in want) && !seen[$5]++ { found++ }
            END { exit found != wanted }' "/proc/$1/mountinfo" 2>/dev/null
}

shared_fs() {  # "no" when every node's slurmd has its own filesystem
    local node pid
    for node in "${MN_NODES[@]}"; do
        if ! pid=$(daemon_pid "slurmd-$node" slurmd "$node") || ! node_isolated "$pid"; then
            echo yes
            return 0
        fi
    done
    echo no
}

ctld_up() { slurm scontrol ping 2>/dev/null | grep -q 'is UP'; }

nodes_ready() {
    local states
    states=$(slurm sinfo -h -N -o '%N %t' 2>/dev/null) || return 1
    local node
    for node in "${MN_NODES[@]}"; do
        grep -Eq "^$node (idle|mix|alloc|comp)$" <<<"$states" || return 1
    done
}

rest_ping() {
    local token
    token=$(slurm scontrol token username=root lifespan=60 2>/dev/null) || return 1
    in_ns ctl curl -fsS --max-time 3 -H "X-SLURM-USER-NAME: root" \
        -H "X-SLURM-USER-TOKEN: ${token#SLURM_JWT=}" \
        "$MN_REST_URL/slurm/v0.0.38/ping" | grep -q '"ping": *"UP"'
}


start_daemon() {  # NAME COMM NS
    local name=$1 comm=$2 ns=$3 pid
    if pid=$(daemon_pid "$name" "$comm" "$ns"); then
        if [[ $comm != slurmd ]] || node_isolated "$pid"; then
            return 0
        fi
        note "$name (pid $pid) lacks its own mounts over the private dirs: restarting it with them"
        stop_daemon "$name" "$comm" "$ns"
    fi
    # Daemons must not keep the caller's directory (a checkout that may go).
    cd /
    # The host name a daemon sees is its node's; slurmctld insists on it.
    local host=$ns
    case $name in
        slurmctld)
            in_ns ctl unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host" \
                /usr/sbin/slurmctld -f "$MN_CONF" -i </dev/null >/dev/null 2>&1
            wait_for "$START_TIMEOUT" "slurmctld of the multi-node cluster" ctld_up
            ;;
        slurmd-*)
            install -d -m 0755 "$MN_VAR/slurmd-$ns" "$MN_SMALL_SCRATCH"
            local mounts
            mapfile -t mounts < <(node_mounts)
            # Mount errors reach the caller; slurmd's own output is in its log.
            in_ns "$ns" unshare --uts --mount --propagation private sh -c '
                set -e
                while [ "$1" != -- ]; do
                    mount -t tmpfs -o "${1#*:}" "tmpfs-$0" "${1%%:*}"
                    shift
                done
                shift
                hostname "$0"
                exec "$@" >/dev/null 2>&1' "$host" "${mounts[@]}" -- \
                /usr/sbin/slurmd -N "$ns" -f "$MN_CONF" </dev/null
            pid=$(wait_for "$START_TIMEOUT" "slurmd of $ns" daemon_pid "$name" "$comm" "$ns" &&
                daemon_pid "$name" "$comm" "$ns") || die "slurmd of $ns did not start"
            node_isolated "$pid" || die "slurmd of $ns (pid $pid) has no filesystem of its own"
            ;;
        slurmrestd)
            rm -f "$MN_RUN/slurmrestd.pid"
            detach nsenter --net=/run/netns/ctl unshare --uts sh -c \
                'hostname "$0" && echo $$ >"$1" && shift && exec "$@"' "$host" \
                "$MN_RUN/slurmrestd.pid" \
                setpriv --reuid=slurmrestd --regid=slurmrestd --init-groups \
                env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SLURM_JWT=daemon SLURM_CONF="$MN_CONF" \
                /usr/sbin/slurmrestd -a rest_auth/jwt -s "$TB_REST_VERSIONS" \
                "${MN_ADDR[ctl]}:$MN_REST_PORT" </dev/null >>"$MN_LOG/slurmrestd.log" 2>&1
            wait_for "$START_TIMEOUT" "slurmrestd at $MN_REST_URL" rest_ping
            ;;
    esac
    note "$name started in namespace $ns"
}

stop_daemon() {  # NAME COMM NS
    local pid
    pid=$(daemon_pid "$@") || return 0
    end_pid "$pid"
    note "$1 stopped (was pid $pid)"
}

daemons_up() {
    local entry
    for entry in "${DAEMONS[@]}"; do
        # shellcheck disable=SC2086
        start_daemon $entry
    done
    if ! wait_for 10 "nodes ${MN_NODES[*]} idle" nodes_ready; then
        # A node left DOWN by an unclean stop comes back with a resume.
        slurm scontrol update nodename="$(IFS=,; echo "${MN_NODES[*]}")" state=resume 2>/dev/null || true
        wait_for "$START_TIMEOUT" "nodes ${MN_NODES[*]} idle" nodes_ready
    fi
}

daemons_down() {
    local i
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        # shellcheck disable=SC2086
        stop_daemon ${DAEMONS[i]}
    done
}

# Whatever else runs in the namespaces: job steps, the login host's podman.
stop_namespace_processes() {
    local ns pids
    for ns in "${MN_NAMESPACES[@]}"; do
        [[ -e /run/netns/$ns ]] || continue
        pids=$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')
        [[ -n ${pids// } ]] || continue
        # shellcheck disable=SC2086
        kill -KILL $pids 2>/dev/null || true
        note "killed what still ran in $ns: $pids"
    done
}

# ---------------------------------------------------------------------------
# the login host's side for each test user: a config and a token
login_users() {
    local entry
    echo "$TB_USER"
    for entry in $TB_DEV_USERS ${TB_MN_USERS:-}; do echo "${entry%%:*}"; done
}

users_up() {
    write_if_changed "$MN_RUNTIME" 0755 root:root <<EOF || true
#!/bin/sh
# scrun-rest as the multi-node testbed's login host runs it: with the login
# host's config (podman passes a runtime HOME but nothing to pick a file with).
exec $TB_VENV/bin/scrun-rest -f "\$HOME/$MN_USER_CONF_DIR/scrun-rest.conf" "\$@"
EOF
    write_if_changed "$TB_MN_ROOT_RUNTIME" 0755 root:root <<EOF || true
#!/bin/sh
# scrun-rest for root's engines on this host (rootful podman, dockerd): in the
# login host's network, the one the nodes reach, with root's login config.
exec nsenter --net=/run/netns/login $TB_VENV/bin/scrun-rest -f /root/$MN_USER_CONF_DIR/scrun-rest.conf "\$@"
EOF
    local user home dir token tmp group
    for user in $( (login_users; echo root) | sort -u); do
        id "$user" >/dev/null 2>&1 || { note "no user $user: skipped"; continue; }
        home=$(getent passwd "$user" | cut -d: -f6)
        group=$(id -gn "$user")
        dir=$home/$MN_USER_CONF_DIR
        install -d -o "$user" -g "$group" -m 0700 "$home/.config" "$dir"
        write_if_changed "$dir/scrun-rest.conf" 0600 "$user:$group" <<EOF || true
# scrun-rest on the multi-node testbed's login host (multinode.sh): slurmrestd
# is all it can reach of Slurm.
RestUrl=$MN_REST_URL
TunnelHost=${MN_ADDR[login]}
JwtFile=$dir/jwt
EOF
        token=$(slurm scontrol token username="$user" lifespan=$((30 * 86400))) \
            || die "scontrol token for $user failed"
        tmp=$(mktemp "$dir/.jwt.XXXXXX")
        printf '%s\n' "${token#SLURM_JWT=}" >"$tmp"
        chown "$user:$group" "$tmp"
        chmod 0600 "$tmp"
        mv "$tmp" "$dir/jwt"
    done
    note "login configs and 30-day tokens for: $( (login_users; echo root) | sort -u | tr '\n' ' ')"
}

write_env() {
    cat >"$MN_ENV.tmp" <<EOF
MN_REST_URL=$MN_REST_URL
MN_CONF=$MN_CONF
MN_JWT_KEY=$MN_JWT_KEY
MN_RUNTIME=$MN_RUNTIME
MN_USER_CONF_DIR=$MN_USER_CONF_DIR
MN_NODES=${MN_NODES[*]}
MN_CTL_ADDR=${MN_ADDR[ctl]}
MN_N1_ADDR=${MN_ADDR[n1]}
MN_N2_ADDR=${MN_ADDR[n2]}
MN_LOGIN_ADDR=${MN_ADDR[login]}
MN_REST_PORT=$MN_REST_PORT
MN_FIRST_JOB_ID=$MN_FIRST_JOB_ID
MN_LOG=$MN_LOG
MN_VENV=$TB_VENV
MN_SHARED_FS=$(shared_fs)
MN_NODE_PRIVATE=$(node_private_dirs | tr '\n' ' ' | sed 's/ $//')
MN_SMALL_SCRATCH=$MN_SMALL_SCRATCH
MN_SMALL_SCRATCH_SIZE=$MN_SMALL_SCRATCH_SIZE
EOF
    chmod 0644 "$MN_ENV.tmp"
    mv "$MN_ENV.tmp" "$MN_ENV"
}

# ---------------------------------------------------------------------------
up() {
    stage "multi-node testbed: network namespaces ${MN_NAMESPACES[*]} on $MN_BRIDGE ($MN_CIDR)"
    "$TESTBED_DIR/daemons.sh" start munge >/dev/null
    net_up
    if conf_up; then
        # A daemon running with an older configuration: restart it.
        daemons_down
    fi
    stage "multi-node testbed: Slurm daemons"
    daemons_up
    slurm sinfo -N -o '     %N %P %t %f' | sed 's/^ *NODELIST/     NODELIST/'
    users_up
    write_env
    stage "multi-node testbed ready ($MN_REST_URL; settings in $MN_ENV)"
}

down() {
    daemons_down
    stop_namespace_processes
    net_down
    rm -f "$MN_ENV"
    note "multi-node testbed down ($(tb_elapsed) s)"
}

status() {
    local entry rc=0 pid files
    for entry in "${DAEMONS[@]}"; do
        # shellcheck disable=SC2086
        set -- $entry
        if pid=$(daemon_pid "$@"); then
            files=
            if [[ $2 == slurmd ]]; then
                files="; SHARES the host's filesystem"
                node_isolated "$pid" && files="; own filesystem"
            fi
            printf '%-11s running in %-5s (pid %s%s)\n' "$1" "$3" "$pid" "$files"
        else
            printf '%-11s stopped\n' "$1"
            rc=1
        fi
    done
    if [[ $rc == 0 ]]; then
        slurm sinfo -N -o '%N %P %t %f'
    fi
    return $rc
}

[[ $(id -u) -eq 0 ]] || die "run multinode.sh as root"
case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
