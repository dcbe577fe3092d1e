"""Which way the task shim runs a container: create/start by
default (the container holds its stdio; runc copies nothing), run mode for
terminals, and a user's own runtime command never mixed with our defaults."""
from scrun_rest.config import Config


def runtime_keys(values):
    return sorted(k for k in Config(values).oci_settings() if k.startswith("RunTime"))


def test_defaults_offer_both_ways():
    assert runtime_keys({}) == ["RunTimeCreate", "RunTimeDelete", "RunTimeKill",
                                "RunTimeQuery", "RunTimeRun", "RunTimeStart"]


def test_a_users_run_command_is_not_overtaken_by_our_create_start():
    settings = Config({"RunTimeRun": "crun run %n"}).oci_settings()
    assert settings["RunTimeRun"] == "crun run %n"
    assert "RunTimeCreate" not in settings and "RunTimeStart" not in settings


def test_a_users_create_start_drops_our_run_command():
    settings = Config({"RunTimeCreate": "crun create %n", "RunTimeStart": "crun start %n"})
    assert "RunTimeRun" not in settings.oci_settings()


def test_other_runtime_keys_keep_both_defaults():
    assert "RunTimeCreate" in Config({"RunTimeKill": "runc kill %n"}).oci_settings()
