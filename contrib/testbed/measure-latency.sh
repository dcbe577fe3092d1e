#!/bin/bash
# Time from `POST job/submit` (slurmrestd, v0.0.38, as the test user) until the
# batch script runs, for N trivial jobs submitted one after another.
#
#   measure-latency.sh [N]     (default 5; prints one line per job and a summary)
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

n=${1:-5}
user=${TB_LATENCY_USER:-$TB_USER}
token=$(mint_token "$user" 600)
dir=$(mktemp -d /tmp/scrun-latency.XXXXXX)
chmod 0777 "$dir"
trap 'rm -rf "$dir"' EXIT
times=()
for ((i = 1; i <= n; i++)); do
    mark=$dir/started.$i
    body=$(printf '{"script":"#!/bin/sh\\ndate +%%s.%%N >%s.tmp && mv %s.tmp %s\\n","job":{"name":"latency-probe","environment":{"PATH":"/usr/bin:/bin"},"current_working_directory":"/tmp","standard_output":"/dev/null","standard_error":"/dev/null","time_limit":1}}' "$mark" "$mark" "$mark")
    t0=$(date +%s.%N)
    reply=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
        -H "X-SLURM-USER-NAME: $user" -H "X-SLURM-USER-TOKEN: $token" \
        -d "$body" "$TB_REST_URL/slurm/v0.0.38/job/submit") || die "submit failed"
    t1=$(date +%s.%N)
    job=$(sed -n 's/.*"job_id": *\([0-9]*\).*/\1/p' <<<"$reply")
    [[ -n $job ]] || die "no job id in reply: $reply"
    wait_for 60 "job $job to start" test -s "$mark" || die "job $job did not start"
    t2=$(<"$mark")
    lat=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
    post=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
    times+=("$lat")
    note "job $job: POST ${post} ms, submit -> script running ${lat} s"
done
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1; s += $1 }
    END { printf "     submit -> running over %d jobs: min %.3f s, median %.3f s, max %.3f s, mean %.3f s\n",
          NR, a[1], a[int((NR + 1) / 2)], a[NR], s / NR }'
