"""`scrun-rest check`: can this user submit containers through slurmrestd?

Prints what it finds, then one line per problem; exit status 0 only when
a job could be submitted now.
"""
import sys
import time

from scrun_rest.auth import TokenSource, utc_iso
from scrun_rest.errors import UserError
from scrun_rest.rest import AuthRejected, RestClient, RestError, RestUnreachable
from scrun_rest.rest.transport import transport_for


def run_check(config, out=sys.stdout, environ=None, clock=time.time):
    problems = []

    def show(label, value):
        out.write("%-20s %s\n" % (label + ":", value))

    url = config.get("RestUrl")
    show("slurmrestd URL", url or "(RestUrl not set)")
    if not url:
        problems.append("RestUrl is not set in %s" % (config.path or "scrun-rest.conf"))

    tokens = TokenSource(config, environ=environ, clock=clock)
    token_ok = False
    try:
        tokens.token()
        token_ok = True
        show("token user", tokens.user or "(no sun or username claim)")
        show("token expires", "%s (in %s)" % (utc_iso(tokens.expires_at),
                                             _span(tokens.expires_at - clock())))
        show("token source", tokens.origin)
        if not tokens.user:
            problems.append("the token names no user (sun claim); slurmrestd 22.05 needs one")
    except UserError as exc:
        problems.append(str(exc))

    if url and token_ok:
        client = None
        try:
            client = RestClient(config, tokens)
            version = client.discover()  # afresh: the cache may predate an upgrade
            controllers = client.ping()
            show("slurmrestd release", client.release or "(not reported)")
            show("API version", version)
            if client.newer_versions:
                show("newer API", "%s served too, unknown to this scrun-rest; %s is the "
                     "newest both know" % (", ".join(client.newer_versions), version))
            for ctl in controllers:
                show("slurmctld", "%s %s%s%s" % (
                    ctl.hostname or "?", "UP" if ctl.up else "DOWN",
                    " (%s)" % ctl.mode if ctl.mode else "",
                    ": %s" % ctl.status if ctl.status and not ctl.up else ""))
            all_down = bool(controllers) and not any(c.up for c in controllers)
            # From 23.02 ping answers 200 with every controller DOWN for a
            # refused token: only a request that asks slurmctld tells.
            try:
                client.verify_token()
                show("token accepted", "yes, by slurmctld")
            except AuthRejected as exc:
                if all_down and exc.slurm_errno == -1:
                    # 23.02-24.05 say -1 both for a refused token and a dead slurmctld.
                    problems.append("slurmrestd at %s cannot reach any slurmctld, or slurmctld "
                                    "refused the token (HTTP %s, error -1)"
                                    % (client.url, exc.http_status))
                else:
                    problems.append(str(exc))
                all_down = False
            if all_down:
                problems.append("slurmrestd at %s cannot reach any slurmctld" % client.url)
        except (RestUnreachable, AuthRejected, RestError, UserError) as exc:
            problems.append(str(exc))
        finally:
            if client is not None:
                client.close()
    elif url:
        problems.extend(_reachability(config))

    for problem in problems:
        out.write("problem: %s\n" % problem)
    if not problems:
        out.write("ready to submit\n")
    return 1 if problems else 0


def _reachability(config):
    """Without a token nothing can be queried, but a dead server is worth naming."""
    try:
        transport = transport_for(config)
    except UserError as exc:
        return [str(exc)]
    try:
        transport.request("GET", "/openapi/v3")  # any HTTP answer means it is up
    except RestUnreachable as exc:
        return [str(exc)]
    finally:
        transport.close()
    return []


def _span(seconds):
    seconds = int(seconds)
    if seconds < 0:
        return "expired"
    if seconds < 3600:
        return "%d min" % (seconds // 60)
    if seconds < 2 * 86400:
        return "%d h %d min" % (seconds // 3600, seconds // 60 % 60)
    return "%d days" % (seconds // 86400)
