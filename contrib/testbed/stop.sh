#!/bin/bash
# Stop every testbed daemon (dockerd, containerd, slurmrestd, slurmd, slurmctld, munged).
exec "$(dirname "$(readlink -f "$0")")/daemons.sh" stop all
