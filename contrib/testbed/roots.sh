#!/bin/bash
# Today's Slurm releases from Debian roots (issue 14): a cluster of one node
# in each of two Debian roots built with debootstrap, next to (and
# independent of) the single-node and multi-node testbeds.
#
#   roots.sh up|down|status
#
#   root                         Slurm    ports (ctld, slurmd, slurmrestd)
#   /var/lib/scrun-roots/trixie  24.11    7017  7018  127.0.0.1:7020
#   /var/lib/scrun-roots/forky   26.05    7117  7118  127.0.0.1:7120
#
# Isolation: every cluster lives on the host's network (loopback, its own
# ports) and uts namespace, and in its own root: munged (the root's own key
# and socket, /run/munge in the root), slurmctld, slurmd and slurmrestd (JWT,
# `-s openapi/slurmctld`) read the root's /etc/slurm, /etc/passwd and
# /etc/munge and keep their pid files (/run), state (/var/lib/slurm) and logs
# (/var/log/slurm) in it. Each daemon starts in a private mount namespace
# pivoted into the root (unshare -m --propagation private; mount --rbind
# ROOT ROOT; pivot_root), with the host's /proc, /dev and /dev/pts bound,
# /sys bound recursively (runc needs /sys/fs/cgroup) and a fresh tmpfs on
# /dev/shm; slurmd gets a fresh tmpfs on /tmp too. A plain chroot would not
# do for slurmd: unprivileged user namespaces (rootless runc in jobs) are
# refused inside one. So the node sees none of the host's /home, /tmp,
# /run/user or container storage: a cluster without a shared filesystem,
# where the bundle transfer brings a container's rootfs.
# There is one pid namespace for all: daemons are known by their pid file
# in the root, their name and the root they see (/etc/scrun-root, the
# build stamp, read through /proc/PID/root), never by name alone.
#
# Building: debootstrap --variant=minbase --include=ROOT_PACKAGES from the
# Debian mirror apt uses here (forky with debootstrap's sid script: Debian
# 12 has none of its name), about a minute a root. A root whose stamp
# (/etc/scrun-root: suite and package list) is as wanted is not rebuilt;
# one that is not is built anew beside it and swapped in.
#
# For the test users (TB_USER, TB_OTHER_USER, TB_BARE_USER, TB_DEV_USERS):
# their passwd and group lines in each root, and a config (RestUrl,
# TunnelHost, JwtFile) with a 30-day token in ~/.config/scrun-rest-RELEASE/.
# The runtime wrapper $TB_STATE/roots/RELEASE/scrun-rest runs
# /opt/scrun-rest with that config (SCRUN_REST_CONF), or, for a caller
# without one (root: docker, rootful podman), with
# $TB_STATE/roots/RELEASE/root.conf (JwtKeyFile: root mints its own tokens).
# Facts for tests: $TB_STATE/roots.env (root only: it holds tokens).
#
# Each root is a submit host too (submit_up, below): rootless podman 5 of the
# root as TB_USER, and its docker as root (its dockerd runs there), with
# scrun-rest installed from this checkout into a venv of the root's python3,
# against the root's cluster:
#   $TB_STATE/roots/RELEASE/submit-host podman --runtime scrun-rest run ...
#   $TB_STATE/roots/RELEASE/submit-host-root docker run --runtime scrun-rest ...
# Slurm commands against a cluster: chroot /var/lib/scrun-roots/RELEASE sinfo
#
# Environment: TB_ROOTS (releases to bring up, default "trixie forky"),
# TB_ROOTS_DIR (where the roots are built, default /var/lib/scrun-roots).
# shellcheck disable=SC2016  # the sh -c scripts expand their own arguments
set -euo pipefail
_tb_t0=$(date +%s.%N)
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
umask 022

ROOTS_DIR=${TB_ROOTS_DIR:-/var/lib/scrun-roots}
read -r -a RELEASES <<<"${TB_ROOTS:-$TB_ROOT_RELEASES}"
ROOTS_STATE=$TB_ROOTS_STATE
ROOTS_ENV=$TB_STATE/roots.env
ROOT_PACKAGES=(
    slurmctld slurmd slurmrestd slurm-client slurm-wlm-jwt-plugin slurm-wlm-basic-plugins
    munge python3 runc crun podman conmon uidmap docker.io containerd lua-json
    ca-certificates
)
# Per release: debootstrap script (empty: the suite's own), the first two
# digits of its ports, the first job id (the release in it), the API
# version `check` is expected to pick.
declare -A R_SCRIPT=([trixie]="" [forky]=/usr/share/debootstrap/scripts/sid)
declare -A R_PORTS=([trixie]=70 [forky]=71)
declare -A R_FIRST_JOB_ID=([trixie]=2411000 [forky]=2605000)
declare -A R_API=([trixie]=v0.0.42 [forky]=v0.0.45)
START_TIMEOUT=${TB_START_TIMEOUT:-60}
TOKEN_LIFESPAN=$((30 * 86400))

known_release() { [[ -v R_PORTS[$1] ]] || die "unknown release '$1' (want: ${!R_PORTS[*]})"; }
root_of() { echo "$ROOTS_DIR/$1"; }
rest_addr() { echo "127.0.0.1:${R_PORTS[$1]}20"; }
rest_url() { echo "http://$(rest_addr "$1")"; }
user_conf_dir() { echo ".config/scrun-rest-$1"; }

# The Debian mirror apt uses here (deb822 .sources or one-line lists).
apt_mirror() {
    local url
    url=$(awk 'tolower($1) == "uris:" { u = $2 }
               tolower($1) == "suites:" && u != "" && $0 !~ /security/ { print u; exit }
               /^$/ { u = "" }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    if [[ -z $url ]]; then
        url=$(awk '$1 == "deb" && $0 !~ /security/ && $2 ~ /debian/ { print $2; exit }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
    fi
    echo "${url:-http://deb.debian.org/debian}"
}

# What a root is built from; kept in it as /etc/scrun-root.
stamp_text() {
    printf 'scrun-rest testbed root %s (contrib/testbed/roots.sh)\npackages: %s\n' \
        "$1" "${ROOT_PACKAGES[*]}"
}

# ---------------------------------------------------------------------------
# building
unmount_under() {  # DIR: whatever is mounted at or below it, deepest first
    local target
    while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done < <(awk -v d="$1" '$5 == d || index($5, d "/") == 1 { print $5 }' \
        /proc/self/mountinfo | sort -r)
}

remove_tree() {  # DIR: a root that no daemon uses, with no mounts left
    [[ -e $1 ]] || return 0
    unmount_under "$1"
    rm -rf --one-file-system "$1"
}

built() {  # RELEASE: its root is there, built as wanted
    local stamp
    stamp=$(root_of "$1")/etc/scrun-root
    [[ -f $stamp && $(cat "$stamp") == "$(stamp_text "$1")" ]]
}

build_root() {  # RELEASE
    local rel=$1 root want t log script=()
    root=$(root_of "$rel")
    want=$(stamp_text "$rel")
    [[ -z ${R_SCRIPT[$rel]} ]] || script=("${R_SCRIPT[$rel]}")
    remove_tree "$root.new"
    log=$ROOTS_DIR/$rel.debootstrap.log
    note "building $root (debootstrap $rel from $(apt_mirror), log $log)"
    t=$(date +%s.%N)
    if ! debootstrap --variant=minbase --include="$(IFS=,; echo "${ROOT_PACKAGES[*]}")" \
            "$rel" "$root.new" "$(apt_mirror)" "${script[@]}" >"$log" 2>&1; then
        tail -n 15 "$log" >&2
        unmount_under "$root.new"
        die "debootstrap of $rel failed (see $log)"
    fi
    unmount_under "$root.new"
    # The downloaded packages (150 MB); the package lists stay for apt-get.
    chroot "$root.new" apt-get clean
    printf '%s\n' "$want" >"$root.new/etc/scrun-root"
    if [[ -e $root ]]; then
        cluster_down "$rel"
        mv "$root" "$root.old"
    fi
    mv "$root.new" "$root"
    remove_tree "$root.old"
    note "built $root in $(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }') s" \
        "($(du -sh --one-file-system "$root" | cut -f1))"
}

# ---------------------------------------------------------------------------
# configuration inside a root
root_id() {  # ROOT NAME: a user's uid in the root's own /etc/passwd
    awk -F: -v n="$2" '$1 == n { print $3; found = 1 } END { exit !found }' "$1/etc/passwd"
}

test_users() {
    local entry
    printf '%s\n' "$TB_USER" "$TB_OTHER_USER" "$TB_BARE_USER"
    for entry in $TB_DEV_USERS; do echo "${entry%%:*}"; done
}

# The host's passwd and group lines of the test users, so slurmd knows them.
root_users() {  # ROOT
    local root=$1 user line group
    for user in $(test_users); do
        line=$(getent passwd "$user") || continue
        grep -qxF "$line" "$root/etc/passwd" || {
            sed -i "/^$user:/d" "$root/etc/passwd"
            echo "$line" >>"$root/etc/passwd"
        }
        group=$(getent group "$(id -g "$user")") || continue
        grep -qxF "$group" "$root/etc/group" || {
            sed -i "/^${group%%:*}:/d" "$root/etc/group"
            echo "$group" >>"$root/etc/group"
        }
    done
    root_id "$root" slurmrestd >/dev/null ||
        chroot "$root" useradd --system --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin slurmrestd
}

# Returns 0 when slurm.conf or cgroup.conf changed.
conf_up() {  # RELEASE
    local rel=$1 root slurm changed=1 ncpu ports
    root=$(root_of "$rel")
    ports=${R_PORTS[$rel]}
    slurm=$(root_id "$root" slurm):$(root_id "$root" slurm)
    install -d -m 0755 "$root/.oldroot"
    write_if_changed "$root/etc/hosts" 0644 root:root </etc/hosts || true
    root_users "$root"
    # munge made its key on install; a root never shares it.
    if [[ ! -s $root/etc/munge/munge.key ]]; then
        dd if=/dev/urandom of="$root/etc/munge/munge.key" bs=1024 count=1 status=none
    fi
    chown "$(root_id "$root" munge):$(root_id "$root" munge)" "$root/etc/munge/munge.key"
    chmod 0400 "$root/etc/munge/munge.key"
    if [[ ! -s $root/etc/slurm/jwt_hs256.key ]]; then
        install -d -m 0755 "$root/etc/slurm"
        dd if=/dev/urandom of="$root/etc/slurm/jwt_hs256.key" bs=32 count=1 status=none
        note "created $root/etc/slurm/jwt_hs256.key"
    fi
    chown "$slurm" "$root/etc/slurm/jwt_hs256.key"
    chmod 0600 "$root/etc/slurm/jwt_hs256.key"
    install -d -m 0755 -o "${slurm%:*}" -g "${slurm#*:}" "$root/var/lib/slurm" \
        "$root/var/lib/slurm/slurmctld" "$root/var/log/slurm"
    install -d -m 0755 "$root/var/lib/slurm/slurmd"
    ncpu=$(nproc)
    {
        cat <<EOF
# scrun-rest testbed, Debian $rel root: written by contrib/testbed/roots.sh.
ClusterName=$rel
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=${ports}17
SlurmdPort=${ports}18
FirstJobId=${R_FIRST_JOB_ID[$rel]}
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=/etc/slurm/jwt_hs256.key
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
EOF
        slurm_conf_common
        cat <<EOF
NodeName=$rel NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=$rel Default=YES MaxTime=INFINITE OverSubscribe=FORCE:8 State=UP
EOF
    } | write_if_changed "$root/etc/slurm/slurm.conf" 0644 root:root || changed=0
    write_if_changed "$root/etc/slurm/cgroup.conf" 0644 root:root \
        <<<"CgroupPlugin=autodetect" && changed=1
    return $((1 - changed))
}

# ---------------------------------------------------------------------------
# daemons
# name, its comm, its pid file in the root; in start order
DAEMONS=("munged munged /run/munge/munged.pid" "slurmctld slurmctld /run/slurmctld.pid"
         "slurmd slurmd /run/slurmd.pid" "slurmrestd slurmrestd /run/slurmrestd.pid")
# The submit host's (docker_up): started after the cluster, stopped before it.
SUBMIT_DAEMONS=("dockerd dockerd /run/docker.pid")

daemon_entry() {  # NAME: its DAEMONS line
    local entry
    for entry in "${DAEMONS[@]}" "${SUBMIT_DAEMONS[@]}"; do
        [[ ${entry%% *} == "$1" ]] && { echo "$entry"; return 0; }
    done
    return 1
}

# The pid of RELEASE's daemon NAME: from its pid file in the root, checked
# against its name and against the root it sees (the stamp in it).
daemon_pid() {  # RELEASE NAME
    local root pid name comm file
    root=$(root_of "$1")
    read -r name comm file < <(daemon_entry "$2")
    [[ -r $root$file ]] || return 1
    pid=$(tr -dc 0-9 <"$root$file")
    [[ -n $pid ]] && alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
    cmp -s "/proc/$pid/root/etc/scrun-root" "$root/etc/scrun-root" || return 1
    echo "$pid"
}

# The command line that runs COMMAND... pivoted into ROOT, in a private mount
# namespace; with "node", /tmp is a fresh tmpfs of its own as well; with
# "submit", the submit host's own /opt, /home and /run/user (submit_up) are
# bound over the root's, which the node keeps seeing empty.
PIVOT='set -e
r=$1 kind=$2
shift 2
mount --rbind "$r" "$r"
mount --bind /proc "$r/proc"
mount --bind /dev "$r/dev"
mount --bind /dev/pts "$r/dev/pts"
mount --rbind /sys "$r/sys"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
if [ "$kind" = node ]; then mount -t tmpfs -o mode=1777,nosuid,nodev node-tmp "$r/tmp"; fi
if [ "$kind" = submit ]; then
    mount --bind "$1/opt" "$r/opt"
    mount --bind "$1/home" "$r/home"
    mount --bind "$2" "$r/run/user"
    shift 2
fi
cd "$r"
pivot_root . .oldroot
cd /
umount -l /.oldroot
# Rootless podman warns on every new user namespace when / is not shared.
if [ "$kind" = submit ]; then mount --make-rshared /; fi
exec "$@"'
# ROOT daemon|node COMMAND..., or ROOT submit SUBMIT_DIR RUN_USER_DIR COMMAND...
IN_ROOT=(unshare --mount --propagation private sh -c "$PIVOT" sh)

slurm_cmd() {  # RELEASE COMMAND...: a Slurm client command against its cluster
    local root
    root=$(root_of "$1")
    shift
    chroot "$root" "$@"
}

ctld_up() { slurm_cmd "$1" scontrol ping 2>/dev/null | grep -q 'is UP'; }

node_ready() {
    local state
    state=$(slurm_cmd "$1" sinfo -h -n "$1" -o %t 2>/dev/null | head -n1)
    [[ $state =~ ^(idle|mix|alloc|comp)$ ]]
}

token_for() {  # RELEASE USER [LIFESPAN]
    local out
    out=$(slurm_cmd "$1" scontrol token username="$2" lifespan="${3:-300}") || return 1
    printf '%s\n' "${out#SLURM_JWT=}"
}

rest_answers() {  # RELEASE: slurmrestd takes a token (openapi/v3 needs no slurmctld)
    local token
    token=$(token_for "$1" root 60) || return 1
    curl -fsS --max-time 3 -o /dev/null -H "X-SLURM-USER-NAME: root" \
        -H "X-SLURM-USER-TOKEN: $token" "$(rest_url "$1")/openapi/v3"
}

munge_up() { slurm_cmd "$1" sh -c 'munge -n | unmunge' >/dev/null 2>&1; }

start_daemon() {  # RELEASE NAME
    local rel=$1 name=$2 root pid
    root=$(root_of "$rel")
    if pid=$(daemon_pid "$rel" "$name"); then
        return 0
    fi
    # Daemons must not keep the caller's directory (a checkout that may go).
    cd /
    case $name in
        munged)
            install -d -m 0755 -o "$(root_id "$root" munge)" -g "$(root_id "$root" munge)" \
                "$root/run/munge"
            detach "${IN_ROOT[@]}" "$root" daemon setpriv --reuid=munge --regid=munge --init-groups \
                /usr/sbin/munged </dev/null >/dev/null 2>&1
            wait_for "$START_TIMEOUT" "munged of $rel" munge_up "$rel"
            ;;
        slurmctld)
            detach "${IN_ROOT[@]}" "$root" daemon /usr/sbin/slurmctld -i </dev/null >/dev/null 2>&1
            wait_for "$START_TIMEOUT" "slurmctld of $rel" ctld_up "$rel"
            ;;
        slurmd)
            detach "${IN_ROOT[@]}" "$root" node /usr/sbin/slurmd -N "$rel" </dev/null >/dev/null 2>&1
            wait_for "$START_TIMEOUT" "slurmd of $rel" daemon_pid "$rel" slurmd
            if ! wait_for 10 "node $rel idle" node_ready "$rel"; then
                # A node left DOWN by an unclean stop comes back with a resume.
                slurm_cmd "$rel" scontrol update nodename="$rel" state=resume 2>/dev/null || true
                wait_for "$START_TIMEOUT" "node $rel idle" node_ready "$rel"
            fi
            ;;
        slurmrestd)
            rm -f "$root/run/slurmrestd.pid"
            detach "${IN_ROOT[@]}" "$root" daemon sh -c 'echo $$ >/run/slurmrestd.pid && exec "$@"' sh \
                setpriv --reuid=slurmrestd --regid=slurmrestd --init-groups \
                env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SLURM_JWT=daemon \
                /usr/sbin/slurmrestd -a rest_auth/jwt -s openapi/slurmctld "$(rest_addr "$rel")" \
                </dev/null >>"$root/var/log/slurm/slurmrestd.log" 2>&1
            wait_for "$START_TIMEOUT" "slurmrestd of $rel at $(rest_url "$rel")" rest_answers "$rel"
            ;;
    esac
    note "$rel: $name started (pid $(daemon_pid "$rel" "$name" || echo '?'))"
}

stop_daemon() {  # RELEASE NAME
    local pid
    pid=$(daemon_pid "$1" "$2") || return 0
    end_pid "$pid"
    note "$1: $2 stopped (was pid $pid)"
}

# Whatever else still runs in the root: job steps left by a stopped slurmd.
stop_root_processes() {  # RELEASE
    local root p pids=()
    root=$(root_of "$1")
    [[ -f $root/etc/scrun-root ]] || return 0
    for p in /proc/[0-9]*; do
        cmp -s "$p/root/etc/scrun-root" "$root/etc/scrun-root" 2>/dev/null && pids+=("${p#/proc/}")
    done
    ((${#pids[@]})) || return 0
    kill -KILL "${pids[@]}" 2>/dev/null || true
    note "$1: killed what still ran in the root: ${pids[*]}"
}

cluster_up() {  # RELEASE
    local rel=$1 entry
    if conf_up "$rel"; then
        # Daemons running with an older configuration: restart them.
        cluster_down "$rel"
    fi
    for entry in "${DAEMONS[@]}"; do
        start_daemon "$rel" "${entry%% *}"
    done
}

cluster_down() {  # RELEASE
    local i
    stop_daemon "$1" dockerd
    for ((i = ${#DAEMONS[@]} - 1; i >= 0; i--)); do
        stop_daemon "$1" "${DAEMONS[i]%% *}"
    done
    stop_root_processes "$1"
    # Its submit host's podman state died with those processes, as at a reboot.
    rm -rf "$(submit_run_dir "$1")"
}

# ---------------------------------------------------------------------------
# the submit side: wrappers, configs and tokens on the host
runtime_up() {  # RELEASE
    local rel=$1 dir root
    dir=$ROOTS_STATE/$rel
    root=$(root_of "$rel")
    install -d -m 0755 "$ROOTS_STATE" "$dir"
    write_if_changed "$dir/scrun-rest" 0755 root:root <<EOF || true
#!/bin/sh
# scrun-rest against the Slurm cluster of the Debian $rel root (roots.sh): with
# the caller's config for it, else root's (docker, rootful podman). podman
# passes a runtime HOME but nothing to pick a config file with.
conf=\$HOME/$(user_conf_dir "$rel")/scrun-rest.conf
[ -n "\$HOME" ] && [ -r "\$conf" ] || conf=$dir/root.conf
SCRUN_REST_CONF=\$conf exec $TB_VENV/bin/scrun-rest "\$@"
EOF
    write_if_changed "$dir/root.conf" 0644 root:root <<EOF || true
# scrun-rest for root against the Debian $rel root's cluster (roots.sh): mints
# its own tokens.
RestUrl=$(rest_url "$rel")
TunnelHost=127.0.0.1
JwtKeyFile=$root/etc/slurm/jwt_hs256.key
JwtUser=root
EOF
    local user home
    for user in $(test_users); do
        id "$user" >/dev/null 2>&1 || continue
        home=$(getent passwd "$user" | cut -d: -f6)
        install -d -o "$user" -g "$user" -m 0700 "$home/.config"
        user_conf "$rel" "$user" "$home/$(user_conf_dir "$rel")" "$home/$(user_conf_dir "$rel")"
    done
}

# USER's scrun-rest.conf and a 30-day token in DIR, which USER sees as SEEN_AS.
user_conf() {  # RELEASE USER DIR SEEN_AS
    local rel=$1 user=$2 conf=$3 seen=$4 token tmp
    install -d -o "$user" -g "$user" -m 0700 "$conf"
    write_if_changed "$conf/scrun-rest.conf" 0600 "$user:$user" <<EOF || true
# scrun-rest for $user against the Debian $rel root's cluster (roots.sh).
RestUrl=$(rest_url "$rel")
TunnelHost=127.0.0.1
JwtFile=$seen/jwt
EOF
    token=$(token_for "$rel" "$user" "$TOKEN_LIFESPAN") ||
        die "$rel: scontrol token for $user failed"
    tmp=$(mktemp "$conf/.jwt.XXXXXX")
    printf '%s\n' "$token" >"$tmp"
    chown "$user:$user" "$tmp"
    chmod 0600 "$tmp"
    mv "$tmp" "$conf/jwt"
}

# ---------------------------------------------------------------------------
# the root as a submit host: its own podman 5 and scrun-rest, rootless as TB_USER
#
# A submit host runs pivoted into the root (IN_ROOT ... submit), with three
# dirs of its own bound over the root's empty ones, so the node still sees
# none of them: /opt (the venv /opt/scrun-rest, made with the root's python3
# from the checkout holding this script), /home (TB_USER's podman storage and
# configs) and /run/user (on the host's /run, cleared at boot as a real one).
# $TB_ROOTS_STATE/RELEASE/submit-host COMMAND... runs COMMAND there as TB_USER,
# submit-host-root as root (the root's docker: dockerd runs there, docker_up).
SUBMIT_PACKAGES=(python3-venv docker-cli)
SUBMIT_VENV=/opt/scrun-rest
SUBMIT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
SUBMIT_IMAGE_TAR=$TB_STATE/busybox.tar
submit_dir() { echo "$ROOTS_DIR/submit/$1"; }
submit_run_dir() { echo "/run/scrun-roots/$1"; }
submit_host() { echo "$ROOTS_STATE/$1/submit-host"; }  # as TB_USER
submit_host_root() { echo "$ROOTS_STATE/$1/submit-host-root"; }  # as root (docker)

in_submit_host() {  # RELEASE COMMAND...: as root, pivoted into its submit host
    local rel=$1
    shift
    (cd / && "${IN_ROOT[@]}" "$(root_of "$rel")" submit "$(submit_dir "$rel")" \
        "$(submit_run_dir "$rel")" env -i PATH="$SUBMIT_PATH" HOME=/root "$@")
}

submit_packages() {  # ROOT: what a submit host needs beyond ROOT_PACKAGES
    local root=$1 pkg missing=()
    for pkg in "${SUBMIT_PACKAGES[@]}"; do
        chroot "$root" dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' ||
            missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    # Added to the built root, not to ROOT_PACKAGES: a root is not rebuilt for them.
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 \
        --no-install-recommends "${missing[@]}" >/dev/null
    chroot "$root" apt-get clean
    note "installed in $root: ${missing[*]}"
}

# The venv is made once per root build and python3; scrun-rest is
# reinstalled from the checkout on every run, its dependencies only when missing.
venv_up() {  # RELEASE
    local rel=$1 root venv want work
    root=$(root_of "$rel")
    venv=$(submit_dir "$rel")$SUBMIT_VENV
    # pip reaches the registry through a certificate only the host's bundle has.
    write_if_changed "$root/etc/ssl/certs/ca-certificates.crt" 0644 root:root \
        </etc/ssl/certs/ca-certificates.crt || true
    if [[ -f /etc/pip.conf ]]; then
        write_if_changed "$root/etc/pip.conf" 0644 root:root </etc/pip.conf || true
    fi
    want="$(cat "$root/etc/scrun-root") $(readlink "$root/usr/bin/python3")"
    if [[ ! -f $venv/.root-stamp || $(cat "$venv/.root-stamp") != "$want" ]]; then
        in_submit_host "$rel" python3 -m venv --clear "$SUBMIT_VENV"
        in_submit_host "$rel" "$SUBMIT_VENV/bin/pip" install -q --disable-pip-version-check \
            --no-cache-dir "setuptools>=68" wheel
        printf '%s\n' "$want" >"$venv/.root-stamp"
        note "$rel: created $SUBMIT_VENV ($(readlink "$root/usr/bin/python3"))" \
            "in $(submit_dir "$rel")"
    fi
    # A private copy in the root's /tmp, which the submit host sees: a build in
    # place would leave build/ and *.egg-info in the checkout.
    work=$(mktemp -d "$root/tmp/scrun-rest-src.XXXXXX")
    tar -C "$REPO_DIR_DEFAULT" --exclude=.git --exclude='*.egg-info' --exclude=build \
        --exclude=dist --exclude=__pycache__ --exclude=.pytest_cache --exclude=.hypothesis \
        -cf - . | tar -C "$work" -xf -
    # pip always reinstalls a local directory.
    if ! in_submit_host "$rel" "$SUBMIT_VENV/bin/pip" install -q --disable-pip-version-check \
            --no-build-isolation --no-cache-dir "/tmp/${work##*/}"; then
        rm -rf "$work"
        die "$rel: installing scrun-rest into the submit host's $SUBMIT_VENV failed"
    fi
    rm -rf "$work"
    chmod -R a+rX "$venv"
}

# USER's subordinate ids, as on this host, for the root's newuidmap.
root_subids() {  # ROOT USER
    local root=$1 user=$2 file line
    for file in subuid subgid; do
        line=$(grep "^$user:" "/etc/$file") || die "no /etc/$file entry for $user"
        touch "$root/etc/$file"
        grep -qxF "$line" "$root/etc/$file" && continue
        sed -i "/^$user:/d" "$root/etc/$file"
        echo "$line" >>"$root/etc/$file"
    done
}

submit_user_up() {  # RELEASE: TB_USER's home and /run/user/UID on the submit host
    local rel=$1 user=$TB_USER root uid home run
    root=$(root_of "$rel")
    uid=$(root_id "$root" "$user")
    home=$(submit_dir "$rel")/home/$user
    run=$(submit_run_dir "$rel")
    root_subids "$root" "$user"
    install -d -o "$user" -g "$user" -m 0700 "$run/$uid" "$home" "$home/.config"
    install -d -o "$user" -g "$user" -m 0755 "$home/.config/containers"
    write_if_changed "$home/.config/containers/containers.conf" 0644 "$user:$user" <<EOF || true
# scrun-rest testbed, the Debian $rel root's submit host (roots.sh)
[containers]
# No pasta in the root: containers that want a network ask for one.
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"

[engine.runtimes]
scrun-rest = ["$SUBMIT_VENV/bin/scrun-rest"]
EOF
    # The default config path: podman gives its runtime no way to pick another.
    user_conf "$rel" "$user" "$home/.config/scrun-rest" "/home/$user/.config/scrun-rest"
}

submit_wrapper() {  # RELEASE USER WRAPPER
    local rel=$1 user=$2 wrapper=$3 root uid login podman docker
    root=$(root_of "$rel")
    podman=$(chroot "$root" dpkg-query -W -f '${Version}' podman)
    docker=$(chroot "$root" dpkg-query -W -f '${Version}' docker.io)
    uid=$(root_id "$root" "$user")
    login="HOME=/home/$user USER=$user LOGNAME=$user XDG_RUNTIME_DIR=/run/user/$uid"
    [[ $user == root ]] && login="HOME=/root USER=root LOGNAME=root"
    write_if_changed "$wrapper" 0755 root:root <<EOF || true
#!/bin/sh
# COMMAND... as $user on the Debian $rel root's submit host (roots.sh): pivoted
# into $root with the submit host's /opt, /home and /run/user; its podman
# $podman and docker $docker run scrun-rest from $SUBMIT_VENV. Run it as root.
cd /
exec unshare --mount --propagation private sh $ROOTS_STATE/pivot.sh $root submit \\
    $(submit_dir "$rel") $(submit_run_dir "$rel") \\
    setpriv --reuid=$user --regid=$user --init-groups \\
    env -i PATH=$SUBMIT_PATH $login \\
    PODMAN_IGNORE_CGROUPSV1_WARNING=1 "\$@"
EOF
}

# dockerd of the root, as root on its submit host, beside this host's: its
# own socket, data root (/opt/docker), exec root and containerd (which
# dockerd starts, as the root has no /run/containerd), and no bridge or
# iptables rules, as it shares this host's network.
DOCKERD_ARGS=(--host unix:///run/docker.sock --pidfile /run/docker.pid --data-root /opt/docker
    --bridge=none --iptables=false --ip6tables=false --ip-forward=false
    --exec-opt native.cgroupdriver=cgroupfs --storage-driver overlay2
    --add-runtime scrun-rest=/opt/scrun-rest-root)

docker_up() {  # RELEASE
    local rel=$1 dir args
    dir=$(submit_dir "$rel")
    write_if_changed "$dir/opt/scrun-rest-root.conf" 0600 root:root <<EOF || true
# scrun-rest for root (dockerd) on the Debian $rel root's submit host (roots.sh).
RestUrl=$(rest_url "$rel")
TunnelHost=127.0.0.1
JwtKeyFile=/etc/slurm/jwt_hs256.key
JwtUser=root
EOF
    write_if_changed "$dir/opt/scrun-rest-root" 0755 root:root <<EOF || true
#!/bin/sh
# scrun-rest with root's config: dockerd gives its runtimes no way to pick one.
SCRUN_REST_CONF=/opt/scrun-rest-root.conf exec $SUBMIT_VENV/bin/scrun-rest "\$@"
EOF
    args="${DOCKERD_ARGS[*]} --cgroup-parent=/scrun-roots-$rel"
    # Started with other arguments: restarted with these.
    if daemon_pid "$rel" dockerd >/dev/null &&
            [[ $(cat "$dir/dockerd.args" 2>/dev/null) != "$args" ]]; then
        stop_daemon "$rel" dockerd
    fi
    if ! daemon_pid "$rel" dockerd >/dev/null; then
        printf '%s\n' "$args" >"$dir/dockerd.args"
        cd /
        # shellcheck disable=SC2086  # the arguments, one a word
        detach "${IN_ROOT[@]}" "$(root_of "$rel")" submit "$dir" "$(submit_run_dir "$rel")" \
            env -i PATH="$SUBMIT_PATH" HOME=/root /usr/sbin/dockerd $args \
            </dev/null >>"$dir/dockerd.log" 2>&1
        wait_for "$START_TIMEOUT" "dockerd of $rel's submit host (log $dir/dockerd.log)" \
            in_submit_host "$rel" docker info
        note "$rel: dockerd started on the submit host" \
            "(pid $(daemon_pid "$rel" dockerd || echo '?'))"
    fi
    if ! in_submit_host "$rel" docker image inspect "$TB_IMAGE" >/dev/null 2>&1; then
        in_submit_host "$rel" docker import - "$TB_IMAGE" <"$SUBMIT_IMAGE_TAR" >/dev/null
        note "$rel: imported $TB_IMAGE for dockerd on the submit host"
    fi
}

submit_up() {  # RELEASE
    local rel=$1 t
    t=$(date +%s.%N)
    submit_packages "$(root_of "$rel")"
    # The root's own three are the mount points, empty.
    install -d -m 0755 "$(submit_dir "$rel")" "$(submit_dir "$rel")/opt" \
        "$(submit_dir "$rel")/home" "$(submit_run_dir "$rel")" "$(root_of "$rel")/run/user"
    venv_up "$rel"
    submit_user_up "$rel"
    submit_wrapper "$rel" "$TB_USER" "$(submit_host "$rel")"
    submit_wrapper "$rel" root "$(submit_host_root "$rel")"
    [[ -s $SUBMIT_IMAGE_TAR ]] ||
        die "no $SUBMIT_IMAGE_TAR to import $TB_IMAGE from (setup.sh makes it)"
    if ! "$(submit_host "$rel")" podman image exists "$TB_IMAGE"; then
        "$(submit_host "$rel")" podman import -q - "$TB_IMAGE" <"$SUBMIT_IMAGE_TAR" >/dev/null
        note "$rel: imported $TB_IMAGE for $TB_USER on the submit host"
    fi
    docker_up "$rel"
    note "$rel: submit host: $("$(submit_host "$rel")" podman --version)," \
        "$SUBMIT_VENV ($(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s)"
}

env_lines() {  # RELEASE: its lines of roots.env
    local rel=$1 root key version
    root=$(root_of "$rel")
    key=${rel^^}
    version=$(slurm_cmd "$rel" sinfo --version | awk '{ print $2 }')
    cat <<EOF
ROOTS_${key}_ROOT=$root
ROOTS_${key}_REST_URL=$(rest_url "$rel")
ROOTS_${key}_JWT_KEY=$root/etc/slurm/jwt_hs256.key
ROOTS_${key}_TOKEN=$(cat "$(getent passwd "$TB_USER" | cut -d: -f6)/$(user_conf_dir "$rel")/jwt")
ROOTS_${key}_SLURM_VERSION=$version
ROOTS_${key}_API=${R_API[$rel]}
ROOTS_${key}_NODE=$rel
ROOTS_${key}_RUNTIME=$ROOTS_STATE/$rel/scrun-rest
ROOTS_${key}_ROOT_CONF=$ROOTS_STATE/$rel/root.conf
ROOTS_${key}_USER_CONF_DIR=$(user_conf_dir "$rel")
ROOTS_${key}_DOCKER_RUNTIME=scrun-rest-$rel
ROOTS_${key}_SUBMIT_HOST=$(submit_host "$rel")
ROOTS_${key}_SUBMIT_RUN_DIR=$(submit_run_dir "$rel")
ROOTS_${key}_SUBMIT_VENV=$SUBMIT_VENV
ROOTS_${key}_SUBMIT_HOST_ROOT=$(submit_host_root "$rel")
ROOTS_${key}_SUBMIT_DOCKER_STATE=$root/run/docker/runtime-runc/moby
ROOTS_${key}_PACKAGES=$(chroot "$root" dpkg-query -W -f '${Package}=${Version} ' \
    podman docker.io containerd runc crun python3 | sed 's/ $//')
EOF
}

write_env() {
    local rel
    {
        echo "ROOTS_RELEASES=${RELEASES[*]}"
        echo "ROOTS_USER=$TB_USER"
        for rel in "${RELEASES[@]}"; do env_lines "$rel"; done
    } >"$ROOTS_ENV.tmp"
    chmod 0600 "$ROOTS_ENV.tmp"
    mv "$ROOTS_ENV.tmp" "$ROOTS_ENV"
}

# ---------------------------------------------------------------------------
up() {
    local rel
    for rel in "${RELEASES[@]}"; do known_release "$rel"; done
    stage "Debian roots: ${RELEASES[*]} in $ROOTS_DIR"
    local pids=() failed=0 pid
    for rel in "${RELEASES[@]}"; do
        if built "$rel"; then
            note "$(root_of "$rel"): built"
            continue
        fi
        if ! command -v debootstrap >/dev/null; then
            apt-get update -qq
            apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
        fi
        install -d -m 0755 "$ROOTS_DIR"
        # Side by side: two builds take little longer than one.
        build_root "$rel" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "building a root failed"
    for rel in "${RELEASES[@]}"; do
        stage "Debian root $rel: Slurm cluster"
        cluster_up "$rel"
        runtime_up "$rel"
        note "$rel: $(slurm_cmd "$rel" sinfo --version), node $rel" \
            "$(slurm_cmd "$rel" sinfo -h -n "$rel" -o %t), REST $(rest_url "$rel")"
    done
    stage "Debian roots as submit hosts: ${RELEASES[*]}"
    write_if_changed "$ROOTS_STATE/pivot.sh" 0644 root:root <<<"$PIVOT" || true
    # Side by side: pip and apt-get wait on the network more than on the CPU.
    pids=()
    for rel in "${RELEASES[@]}"; do
        submit_up "$rel" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    ((failed == 0)) || die "making a root a submit host failed"
    write_env
    stage "Debian roots ready (settings in $ROOTS_ENV)"
}

down() {
    local rel
    for rel in "${RELEASES[@]}"; do
        known_release "$rel"
        cluster_down "$rel"
    done
    rm -f "$ROOTS_ENV"
    note "Debian roots' clusters down ($(tb_elapsed) s; the roots stay in $ROOTS_DIR)"
}

status() {
    local rel entry pid rc=0
    for rel in "${RELEASES[@]}"; do
        known_release "$rel"
        if [[ ! -f $(root_of "$rel")/etc/scrun-root ]]; then
            printf '%s: no root in %s\n' "$rel" "$(root_of "$rel")"
            rc=1
            continue
        fi
        printf '%-7s root %s (%s)\n' "$rel" "$(root_of "$rel")" \
            "$(du -sh --one-file-system "$(root_of "$rel")" | cut -f1)"
        for entry in "${DAEMONS[@]}" "${SUBMIT_DAEMONS[@]}"; do
            if pid=$(daemon_pid "$rel" "${entry%% *}"); then
                printf '%-7s %-11s running (pid %s)\n' "$rel" "${entry%% *}" "$pid"
            else
                printf '%-7s %-11s stopped\n' "$rel" "${entry%% *}"
                rc=1
            fi
        done
        if [[ -d $(submit_run_dir "$rel") &&
                -x $(submit_dir "$rel")$SUBMIT_VENV/bin/scrun-rest ]]; then
            printf '%-7s %-11s ready (%s)\n' "$rel" submit-host "$(submit_host "$rel")"
        else
            printf '%-7s %-11s not made\n' "$rel" submit-host
            rc=1
        fi
    done
    return $rc
}

[[ $(id -u) -eq 0 ]] || die "run roots.sh as root"
case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    *) die "usage: $0 up|down|status" ;;
esac
