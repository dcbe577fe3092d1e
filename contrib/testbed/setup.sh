#!/bin/bash
# Bring up the single-node scrun-rest testbed on a Debian 12 machine without
# systemd, and check every part of it. Run as root; idempotent and re-runnable
# (a second run only checks, re-mints the test user's token and reinstalls the
# runtime from this checkout).
#
#   Slurm 22.05: munged, slurmctld, slurmd (node "localhost", partitions
#     debug (default) and other), slurmrestd on 127.0.0.1:6820 with JWT auth
#   users scruntest (2000) and scrunother (2001), with subuids and /run/user/UID;
#     scrunbare (2002) without /run/user/UID, as a user who never logged in
#   rootless podman for scruntest, rootful podman, docker (dockerd + containerd,
#     vfs storage) and a second dockerd with docker's default overlay2 storage
#     (socket $TB_DOCKER_OVERLAY2_HOST, same containerd, its own namespace),
#     each with the image localhost/busybox and the runtime "scrun-rest"
#   /opt/scrun-rest: the runtime's venv (install-runtime.sh)
#   /etc/scrun-rest/scrun-rest.conf and ~scruntest/.config/scrun-rest/
#
# Then multinode.sh up and roots.sh up (TB_SKIP_MULTINODE=1, TB_SKIP_ROOTS=1).
# Environment: TB_SKIP_DOCKER=1 skips docker; TB_REQUIRE_DOCKER=1 makes a docker
# failure fatal (by default it is reported and setup goes on);
# TB_SKIP_CHECKS=1 skips the slower end-to-end checks at the end.
# Daemons: daemons.sh start|stop|status NAME; stop.sh stops them all.
set -euo pipefail
_tb_t0=$(date +%s.%N)
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

[[ $(id -u) -eq 0 ]] || die "run setup.sh as root"
# On failure, show the end of every daemon's log.
on_exit() {
    local rc=$? f
    ((rc == 0)) && return
    for f in "$TB_LOG"/slurmctld.log "$TB_LOG"/slurmd.log "$TB_LOG"/slurmrestd.log \
             /var/log/containerd.log /var/log/dockerd.log /var/log/dockerd-overlay2.log; do
        [[ -s $f ]] || continue
        printf '\n---- last lines of %s\n' "$f" >&2
        tail -n 15 "$f" >&2
    done
    printf '\ntestbed: setup.sh failed (exit %d) after %ss\n' "$rc" "$(tb_elapsed)" >&2
}
trap on_exit EXIT
DAEMONS="$TESTBED_DIR/daemons.sh"
REPO_DIR=${1:-$REPO_DIR_DEFAULT}
mkdir -p "$TB_STATE" "$TB_RUN"

PACKAGES=(
    munge slurmctld slurmd slurmrestd slurm-client slurm-wlm-jwt-plugin
    slurm-wlm-basic-plugins
    podman runc conmon uidmap containerd docker.io slirp4netns fuse-overlayfs
    busybox-static rsync python3 python3-venv tmux iproute2 procps curl ca-certificates
    golang-github-opencontainers-specs-dev hyperfine
)

# ---------------------------------------------------------------------------
stage "packages"
missing=()
for p in "${PACKAGES[@]}"; do
    if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) != ii* ]]; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    note "installing: ${missing[*]}"
    # The packages' maintainer scripts must not try to start services.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    ((created_policy)) && rm -f "$policy"
else
    note "all ${#PACKAGES[@]} packages installed"
fi

# ---------------------------------------------------------------------------
stage "users, subordinate ids, /run/user, /dev/net/tun"
if ! id slurmrestd >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin slurmrestd
fi
add_user() {  # name uid subid-start [no-runtime-dir]
    local name=$1 uid=$2 sub=$3 runtime_dir=${4:-yes}
    if ! id "$name" >/dev/null 2>&1; then
        useradd --uid "$uid" --user-group --create-home --home-dir "/home/$name" \
            --shell /bin/bash "$name"
    fi
    [[ $(id -u "$name") == "$uid" ]] || die "user $name exists with uid $(id -u "$name"), want $uid"
    local f
    for f in /etc/subuid /etc/subgid; do
        touch "$f"
        grep -q "^$name:" "$f" || echo "$name:$sub:65536" >>"$f"
    done
    [[ $runtime_dir == no-runtime-dir ]] ||
        install -d -o "$name" -g "$name" -m 0700 "/run/user/$uid"
    # Slurm jobs start in the submit directory; keep it reachable.
    chmod 0755 "/home/$name"
}
add_user "$TB_USER" "$TB_UID" 200000
add_user "$TB_OTHER_USER" "$TB_OTHER_UID" 300000
# Far above the TB_DEV_USERS ranges (400000 on, 65536 each).
add_user "$TB_BARE_USER" "$TB_BARE_UID" 1000000 no-runtime-dir
sub=400000
for entry in $TB_DEV_USERS; do
    add_user "${entry%%:*}" "${entry##*:}" "$sub"
    sub=$((sub + 65536))
done
if [[ ! -c /dev/net/tun ]]; then
    mkdir -p /dev/net
    mknod /dev/net/tun c 10 200 || note "mknod /dev/net/tun failed"
fi
chmod 0666 /dev/net/tun 2>/dev/null || true
# A name with an IPv6 and an IPv4 loopback address, for the tunnel-address
# tests (a node tries the IPv6 one first).
for address in ::1 127.0.0.1; do
    grep -qE "^${address}[[:space:]]+scrun-dualstack\$" /etc/hosts ||
        printf '%s scrun-dualstack\n' "$address" >>/etc/hosts
done
note "users $TB_USER=$(id -u "$TB_USER") $TB_OTHER_USER=$(id -u "$TB_OTHER_USER") slurmrestd=$(id -u slurmrestd)"

# ---------------------------------------------------------------------------
stage "munge and Slurm configuration"
# Install FILE from stdin only if it changed; return 0 when it changed.
install_if_changed() {
    local dest=$1 owner=$2 mode=$3 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
        rm -f "$tmp"
        chown "$owner" "$dest"
        chmod "$mode" "$dest"
        return 1
    fi
    install -D -o "${owner%:*}" -g "${owner#*:}" -m "$mode" "$tmp" "$dest"
    rm -f "$tmp"
    note "wrote $dest"
    return 0
}

if [[ ! -s /etc/munge/munge.key ]]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    note "created /etc/munge/munge.key"
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if [[ ! -s $TB_JWT_KEY ]]; then
    dd if=/dev/urandom of="$TB_JWT_KEY" bs=32 count=1 status=none
    note "created $TB_JWT_KEY"
fi
chown slurm:slurm "$TB_JWT_KEY"
chmod 0600 "$TB_JWT_KEY"

HOST=$(hostname -s)
NCPU=$(nproc)
# Leave some memory to the host so slurmd never finds less than configured.
MEM_MB=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
slurm_changed=0
{
    cat <<EOF
# scrun-rest testbed: one node, no accounting database, JWT for slurmrestd.
# Written by contrib/testbed/setup.sh; edits are overwritten.
ClusterName=testbed
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$TB_JWT_KEY
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$TB_LOG/slurmctld.log
SlurmdLogFile=$TB_LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
EOF
    slurm_conf_common
    cat <<EOF
NodeName=$TB_NODE NodeHostname=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$TB_NODE Default=YES MaxTime=INFINITE OverSubscribe=FORCE:8 State=UP
PartitionName=other Nodes=$TB_NODE Default=NO MaxTime=INFINITE OverSubscribe=FORCE:8 State=UP
EOF
} | install_if_changed /etc/slurm/slurm.conf root:root 0644 && slurm_changed=1
install_if_changed /etc/slurm/cgroup.conf root:root 0644 <<EOF && slurm_changed=1
CgroupPlugin=autodetect
EOF
install -d -o slurm -g slurm -m 0755 /var/lib/slurm/slurmctld "$TB_LOG"

# ---------------------------------------------------------------------------
stage "Slurm daemons"
if ((slurm_changed)); then
    # A daemon running with an older configuration: restart it.
    for d in slurmrestd slurmd slurmctld; do
        if "$DAEMONS" status "$d" >/dev/null 2>&1; then
            "$DAEMONS" stop "$d"
        fi
    done
fi
"$DAEMONS" start munge slurmctld slurmd slurmrestd
sinfo -o '     %P %a %D %t %N %c' | sed 's/^ *PARTITION/     PARTITION/'

# ---------------------------------------------------------------------------
stage "busybox image rootfs"
ROOTFS_TAR=$TB_STATE/busybox.tar
if [[ ! -s $ROOTFS_TAR || ! -x $TB_ROOTFS/bin/busybox ]]; then
    tmp=$(mktemp -d "$TB_STATE/rootfs.XXXXXX")
    mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,proc,sys,dev,run,var,tmp}
    chmod 1777 "$tmp/tmp"
    chmod 0700 "$tmp/root"
    cp /bin/busybox "$tmp/bin/busybox"
    while read -r applet; do
        [[ -n $applet && ! -e $tmp/$applet ]] && ln -s /bin/busybox "$tmp/$applet"
    done < <(/bin/busybox --list-full)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$tmp/etc/passwd"
    printf 'root:x:0:\nnobody:x:65534:\n' >"$tmp/etc/group"
    tar --numeric-owner -C "$tmp" -cf "$ROOTFS_TAR.tmp" .
    mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$TB_ROOTFS"
    mv "$tmp" "$TB_ROOTFS"
    chmod 0755 "$TB_ROOTFS" "$TB_STATE"
    chmod 0644 "$ROOTFS_TAR"
    note "built $TB_ROOTFS ($(busybox --list | wc -l) applets) and $ROOTFS_TAR"
else
    note "$TB_ROOTFS exists"
fi

# ---------------------------------------------------------------------------
stage "podman: rootful (root) and rootless ($TB_USER, $TB_OTHER_USER)"
# Root lacks CAP_SYS_RESOURCE in these VMs and the hard limits are below
# podman's rootful defaults (1048576), so rootful containers get the limits
# podman itself runs with: the hard nofile limit, and nproc lowered to
# kernel.pid_max (podman sets its own RLIMIT_NPROC to that at start).
# Rootless podman picks working limits by itself.
NOFILE_MAX=$(ulimit -Hn)
NPROC_MAX=$(ulimit -Hu)
[[ $NOFILE_MAX == unlimited ]] && NOFILE_MAX=1048576
[[ $NPROC_MAX == unlimited ]] && NPROC_MAX=1048576
PID_MAX=$(cat /proc/sys/kernel/pid_max)
((PID_MAX < NPROC_MAX)) && NPROC_MAX=$PID_MAX
install_if_changed /etc/containers/containers.conf root:root 0644 <<EOF || true
# scrun-rest testbed (contrib/testbed/setup.sh)
[containers]
default_ulimits = ["nofile=$NOFILE_MAX:$NOFILE_MAX", "nproc=$NPROC_MAX:$NPROC_MAX"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
scrun-rest = ["$TB_VENV/bin/scrun-rest"]
EOF
if ! podman image exists "$TB_IMAGE"; then
    podman import -q - "$TB_IMAGE" <"$ROOTFS_TAR" >/dev/null
    note "imported $TB_IMAGE for root"
fi

# Rootless podman's default network (slirp4netns) needs /dev/net/tun; it is
# probed once and replaced by no network if it does not work.
NETNS_FILE=$TB_STATE/rootless-netns
rootless_podman_setup() {
    local user=$1 home conf out
    home=$(getent passwd "$user" | cut -d: -f6)
    conf=$home/.config/containers
    install -d -o "$user" -g "$user" -m 0700 "$home/.config"
    install -d -o "$user" -g "$user" -m 0755 "$conf"
    install_if_changed "$conf/storage.conf" "$user:$user" 0644 <<EOF || true
[storage]
driver = "vfs"
EOF
    if ! as_user "$user" podman image exists "$TB_IMAGE"; then
        as_user "$user" podman import -q - "$TB_IMAGE" <"$ROOTFS_TAR" >/dev/null
        note "imported $TB_IMAGE for $user"
    fi
    if [[ ! -s $NETNS_FILE ]]; then
        if out=$(as_user "$user" podman --cgroup-manager=cgroupfs --events-backend=file \
                run --rm --runtime runc --network=slirp4netns "$TB_IMAGE" true 2>&1); then
            echo slirp4netns >"$NETNS_FILE"
        else
            note "rootless podman with slirp4netns failed: ${out:0:300}"
            echo none >"$NETNS_FILE"
        fi
    fi
    local netns_line=""
    [[ $(cat "$NETNS_FILE") == none ]] && netns_line='netns = "none"'
    install_if_changed "$conf/containers.conf" "$user:$user" 0644 <<EOF || true
# scrun-rest testbed (contrib/testbed/setup.sh)
[containers]
# Drop the rootful limits of /etc/containers/containers.conf.
default_ulimits = []
$netns_line

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
scrun-rest = ["$TB_VENV/bin/scrun-rest"]
EOF
}
rootless_podman_setup "$TB_USER"
rootless_podman_setup "$TB_OTHER_USER"
for entry in $TB_DEV_USERS; do rootless_podman_setup "${entry%%:*}"; done
note "rootless default network: $(cat "$NETNS_FILE")"

since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }
check_podman() {  # who, then the command prefix
    local who=$1 t out
    shift
    t=$(date +%s.%N)
    out=$("$@" podman run --rm --runtime runc "$TB_IMAGE" echo hello 2>&1) \
        || die "$who podman run failed: $out"
    [[ $out == hello ]] || die "$who podman run printed: $out"
    note "$who: podman run --rm --runtime runc $TB_IMAGE echo hello: ok ($(since "$t") s)"
}
check_podman "rootless $TB_USER" as_user "$TB_USER"
check_podman "rootless $TB_OTHER_USER" as_user "$TB_OTHER_USER"
check_podman "rootful" env

# ---------------------------------------------------------------------------
DOCKER_OK=skipped
DOCKER_OVERLAY2_OK=skipped
if [[ ${TB_SKIP_DOCKER:-0} != 1 ]]; then
    stage "docker (containerd + dockerd)"
    # The multi-node testbed and the Debian roots' clusters (multinode.sh,
    # roots.sh) have runtimes of their own; dockerd
    # looks for a runtime's file only when a container asks for it.
    root_runtimes=", \"scrun-rest-multinode\": {\"path\": \"$TB_MN_ROOT_RUNTIME\"}"
    for rel in $TB_ROOT_RELEASES; do
        root_runtimes+=", \"scrun-rest-$rel\": {\"path\": \"$TB_ROOTS_STATE/$rel/scrun-rest\"}"
    done
    # What both dockerds' daemon.json hold besides their storage and paths.
    docker_common=$(cat <<EOF
    "iptables": false,
    "ip6tables": false,
    "bridge": "none",
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": $NOFILE_MAX, "Soft": $NOFILE_MAX}},
    "runtimes": {"scrun-rest": {"path": "$TB_VENV/bin/scrun-rest"}$root_runtimes}
EOF
)
    install_if_changed /etc/docker/daemon.json root:root 0644 <<EOF && "$DAEMONS" stop dockerd
{
    "storage-driver": "vfs",
$docker_common
}
EOF
    # The second dockerd: docker's default storage driver, every path of its
    # own, and its own namespace in the same containerd (so neither daemon
    # sees the other's containers). Its runtime state (the runtime's --root)
    # is then $TB_DOCKER_OVERLAY2_EXEC/runtime-runc/$TB_DOCKER_OVERLAY2_NAMESPACE.
    install_if_changed "$TB_DOCKER_OVERLAY2_CONF" root:root 0644 <<EOF && "$DAEMONS" stop dockerd-overlay2
{
    "storage-driver": "overlay2",
    "data-root": "$TB_DOCKER_OVERLAY2_DATA",
    "exec-root": "$TB_DOCKER_OVERLAY2_EXEC",
    "pidfile": "$TB_DOCKER_OVERLAY2_PIDFILE",
    "hosts": ["$TB_DOCKER_OVERLAY2_HOST"],
    "containerd": "/run/containerd/containerd.sock",
    "containerd-namespace": "$TB_DOCKER_OVERLAY2_NAMESPACE",
    "containerd-plugins-namespace": "plugins.$TB_DOCKER_OVERLAY2_NAMESPACE",
$docker_common
}
EOF
    # docker_setup NAME DRIVER [DOCKER OPTIONS...]: start the daemon, import
    # the image, run a container with runc, and check the storage driver.
    docker_setup() {
        local name=$1 want=$2 t out driver
        shift 2
        "$DAEMONS" start containerd "$name" || return 1
        driver=$(/usr/bin/docker "$@" info -f '{{.Driver}}' 2>&1) || return 1
        [[ $driver == "$want" ]] || { note "$name runs storage driver $driver, not $want"; return 1; }
        if ! /usr/bin/docker "$@" image inspect "$TB_IMAGE" >/dev/null 2>&1; then
            /usr/bin/docker "$@" import - "$TB_IMAGE" <"$ROOTFS_TAR" >/dev/null || return 1
            note "imported $TB_IMAGE for $name"
        fi
        t=$(date +%s.%N)
        out=$(/usr/bin/docker "$@" run --rm --network=none "$TB_IMAGE" echo hello 2>&1) || {
            note "$name: docker run failed: $out"
            return 1
        }
        [[ $out == hello ]] || { note "$name: docker run printed: $out"; return 1; }
        note "$name ($driver): docker run --rm --network=none $TB_IMAGE echo hello (runc): ok ($(since "$t") s)"
    }
    if docker_setup dockerd vfs; then
        DOCKER_OK=yes
    else
        DOCKER_OK=no
        note "docker does not work here; see /var/log/dockerd.log and /var/log/containerd.log"
        [[ ${TB_REQUIRE_DOCKER:-0} == 1 ]] && die "docker is required (TB_REQUIRE_DOCKER=1)"
    fi
    if docker_setup dockerd-overlay2 overlay2 -H "$TB_DOCKER_OVERLAY2_HOST"; then
        DOCKER_OVERLAY2_OK=yes
    else
        DOCKER_OVERLAY2_OK=no
        note "docker with overlay2 does not work here; see /var/log/dockerd-overlay2.log"
        [[ ${TB_REQUIRE_DOCKER:-0} == 1 ]] && die "docker is required (TB_REQUIRE_DOCKER=1)"
    fi
fi

# ---------------------------------------------------------------------------
stage "scrun-rest runtime in $TB_VENV"
"$TESTBED_DIR/install-runtime.sh" "$REPO_DIR"

# ---------------------------------------------------------------------------
stage "scrun-rest configuration and tokens"
install_if_changed /etc/scrun-rest/scrun-rest.conf root:root 0644 <<EOF || true
# scrun-rest for root (docker, rootful podman): mints its own tokens.
RestUrl=$TB_REST_URL
TunnelHost=127.0.0.1
JwtKeyFile=$TB_JWT_KEY
JwtUser=root
EOF
chmod 0755 /etc/scrun-rest
user_scrun_conf() {
    local user=$1 rc token tmp
    rc=$(getent passwd "$user" | cut -d: -f6)/.config/scrun-rest
    install -d -o "$user" -g "$user" -m 0700 "$rc"
    install_if_changed "$rc/scrun-rest.conf" "$user:$user" 0600 <<EOF || true
# scrun-rest for $user: a token minted by setup.sh (scontrol token).
RestUrl=$TB_REST_URL
TunnelHost=127.0.0.1
JwtFile=$rc/jwt
EOF
    token=$(mint_token "$user" $((30 * 86400))) || die "scontrol token for $user failed"
    tmp=$(mktemp "$rc/.jwt.XXXXXX")
    printf '%s\n' "$token" >"$tmp"
    chown "$user:$user" "$tmp"
    chmod 0600 "$tmp"
    mv "$tmp" "$rc/jwt"
    note "minted a 30-day token for $user into $rc/jwt"
}
user_scrun_conf "$TB_USER"
user_scrun_conf "$TB_OTHER_USER"
user_scrun_conf "$TB_BARE_USER"
for entry in $TB_DEV_USERS; do user_scrun_conf "${entry%%:*}"; done

# ---------------------------------------------------------------------------
if [[ ${TB_SKIP_CHECKS:-0} != 1 ]]; then
    stage "check: REST submit -> running latency"
    "$TESTBED_DIR/measure-latency.sh" 3

    stage "check: srun and rootless runc inside a Slurm job (as $TB_USER)"
    "$TESTBED_DIR/check-runc-in-job.sh"
fi

# What tests may want to know, in one sourceable file (also readable by Python).
cat >"$TB_STATE/testbed.env.tmp" <<EOF
TB_REST_URL=$TB_REST_URL
TB_JWT_KEY=$TB_JWT_KEY
TB_NODE=$TB_NODE
TB_PARTITIONS=debug,other
TB_USER=$TB_USER
TB_UID=$TB_UID
TB_OTHER_USER=$TB_OTHER_USER
TB_OTHER_UID=$TB_OTHER_UID
TB_BARE_USER=$TB_BARE_USER
TB_BARE_UID=$TB_BARE_UID
TB_IMAGE=$TB_IMAGE
TB_ROOTFS=$TB_ROOTFS
TB_ROOTFS_TAR=$ROOTFS_TAR
TB_VENV=$TB_VENV
TB_DAEMONS=$DAEMONS
TB_DOCKER=$DOCKER_OK
TB_DOCKER_OVERLAY2=$DOCKER_OVERLAY2_OK
TB_DOCKER_OVERLAY2_HOST=$TB_DOCKER_OVERLAY2_HOST
TB_DOCKER_OVERLAY2_ROOT=$TB_DOCKER_OVERLAY2_EXEC/runtime-runc/$TB_DOCKER_OVERLAY2_NAMESPACE
TB_ROOTLESS_NETNS=$(cat "$NETNS_FILE")
EOF
mv "$TB_STATE/testbed.env.tmp" "$TB_STATE/testbed.env"
chmod 0644 "$TB_STATE/testbed.env"

stage "a container through scrun-rest (as $TB_USER)"
out=$(as_user "$TB_USER" podman --runtime "$TB_VENV/bin/scrun-rest" run --rm "$TB_IMAGE" \
    echo hello 2>&1) || die "podman --runtime scrun-rest run failed: $out"
[[ $out == hello ]] || die "podman --runtime scrun-rest run printed: $out"
echo "$out"

stage "testbed ready (docker: $DOCKER_OK, overlay2: $DOCKER_OVERLAY2_OK; settings in $TB_STATE/testbed.env)"
"$DAEMONS" status || true

# ---------------------------------------------------------------------------
# Multi-node testbed (issue 8; owner: multinode.sh): a second cluster, n1 and
# n2 plus a login host that reaches only slurmrestd, in network namespaces
# beside this one. TB_SKIP_MULTINODE=1 leaves it out.
if [[ ${TB_SKIP_MULTINODE:-0} != 1 ]]; then
    "$TESTBED_DIR/multinode.sh" up
fi

# ---------------------------------------------------------------------------
# Today's Slurm releases (issue 14; owner: roots.sh): 24.11 and 26.05 clusters
# in Debian trixie and forky roots, on ports 7017-7020 and 7117-7120.
# TB_SKIP_ROOTS=1 leaves them out.
if [[ ${TB_SKIP_ROOTS:-0} != 1 ]]; then
    "$TESTBED_DIR/roots.sh" up
fi
