#!/bin/bash
# Check that the test user can run a rootless runc container in a Slurm job
# step, the way scrun-rest's agent does: sbatch (as the user) -> srun -> runc.
# The bundle is `runc spec --rootless` on the busybox rootfs, with only
# process.terminal=false and the command changed.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

user=${1:-$TB_USER}
uid=$(id -u "$user")
tar=$TB_STATE/busybox.tar
[[ -r $tar ]] || die "$tar is missing: run setup.sh"
[[ -d /run/user/$uid ]] || die "/run/user/$uid is missing"

bundle=$(as_user "$user" mktemp -d /tmp/runc-check.XXXXXX)
trap 'rm -rf "$bundle"' EXIT
as_user "$user" sh -ec "
    cd '$bundle'
    mkdir rootfs
    tar -C rootfs --no-same-owner -xf '$tar'
    runc spec --rootless
    /usr/bin/python3 - <<'EOF'
import json
with open('config.json') as f:
    c = json.load(f)
c['process']['terminal'] = False
c['process']['args'] = ['sh', '-c', 'echo hello-from-runc uid=\$(id -u) in \$(hostname)']
with open('config.json', 'w') as f:
    json.dump(c, f, indent=1)
EOF
"
id=testbed-check-$$
t=$(date +%s.%N)
if ! as_user "$user" sh -c "cd '$bundle' && sbatch --quiet --wait -o '$bundle/out' -e '$bundle/out' \
        -J runc-check --wrap 'srun -n1 runc --rootless=true --root=/run/user/$uid/ run -b $bundle $id && srun -n1 --overlap true'"; then
    cat "$bundle/out" >&2 || true
    die "rootless runc in a Slurm job failed"
fi
grep -q '^hello-from-runc uid=0 in runc$' "$bundle/out" || {
    cat "$bundle/out" >&2
    die "unexpected output from runc in a Slurm job"
}
note "ok: $(head -n1 "$bundle/out") ($(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}') s, sbatch --wait -> srun -> runc --rootless)"
