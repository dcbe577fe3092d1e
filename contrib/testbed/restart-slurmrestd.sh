#!/bin/bash
# Restart slurmrestd alone (fault tests): `restart-slurmrestd.sh [stop|start|restart]`.
exec "$(dirname "$(readlink -f "$0")")/daemons.sh" "${1:-restart}" slurmrestd
