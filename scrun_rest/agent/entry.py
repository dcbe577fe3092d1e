"""Entry point of the agent: the batch-job agent or one task of a step."""
import sys


def main(argv, sources, params):
    if params is not None:
        from scrun_rest.agent.job import run_job_agent
        return run_job_agent(params, sources)
    if argv[:1] == ["task"]:
        from scrun_rest.agent.task import run_task
        return run_task()
    sys.stderr.write("scrun-rest agent: unknown mode %r\n" % (argv,))
    return 2
