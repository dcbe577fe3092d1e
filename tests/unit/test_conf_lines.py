"""The one Key=Value parser (conf_lines) and the three files read with it:
scrun-rest.conf (config.py, tested in test_config.py), the node's oci.conf
and the node's slurm.conf for KillWait."""
import pytest

from scrun_rest import conf_lines
from scrun_rest.agent import oci_conf, task


def test_settings_keep_keys_as_written_and_lines_in_order():
    text = "# head\n\n  Alpha = 1  \nbeta=two words\nALPHA=3 # trailing\n"
    assert list(conf_lines.settings(text)) == [
        (3, "Alpha", "1"), (4, "beta", "two words"), (5, "ALPHA", "3")]


@pytest.mark.parametrize("written,value", [
    ('"a b"', "a b"),
    ("'a # not a comment'", "a # not a comment"),
    ('"a b" # comment after quotes', "a b"),
    ('"--x \\"y\\""', '--x "y"'),
    ('""', ""),
    ("a#b", "a#b"),
    ("key=value=more", "key=value=more"),
])
def test_values(written, value):
    assert list(conf_lines.settings("K=" + written)) == [(1, "K", value)]


@pytest.mark.parametrize("text,reason", [
    ("just words", "expected Key=Value, got 'just words'"),
    ('K="unterminated', "No closing quotation"),
    ('K="a" "b"', "text after the quoted value"),
])
def test_a_malformed_line_says_which_and_why(text, reason):
    with pytest.raises(conf_lines.MalformedLine) as info:
        list(conf_lines.settings("A=1\n" + text + "\nB=2"))
    assert info.value.lineno == 2 and reason in info.value.reason


def test_lines_before_a_malformed_one_come_first():
    found = conf_lines.settings("A=1\nnonsense\n")
    assert next(found) == (1, "A", "1")
    with pytest.raises(conf_lines.MalformedLine):
        next(found)


def test_skipping_malformed_lines():
    text = 'A=1\nInclude /etc/slurm/other.conf\nB="open\nC=3'
    assert [key for _, key, _ in conf_lines.settings(text, skip_malformed=True)] == ["A", "C"]


def test_by_lowercase_key_lets_the_last_win():
    assert conf_lines.by_lowercase_key("Key=1\nkEY=2\nOther=x") == {"key": "2", "other": "x"}


def test_node_oci_conf(tmp_path):
    path = tmp_path / "oci.conf"
    path.write_text('RunTimeRun="crun run %n" # ours\nIgnoreFileConfigJson=true\nbroken\n')
    assert oci_conf.read_node_conf(str(path)) == {
        "runtimerun": "crun run %n", "ignorefileconfigjson": "true"}
    assert oci_conf.read_node_conf(str(tmp_path / "absent.conf")) is None


@pytest.mark.parametrize("text,seconds", [
    ("KillWait=45\n", 45),
    ("ClusterName=c\nkillwait=12 MinJobAge=300\n", 12),
    ("KillWait=0\n", 1),
    ("KillWait=soon\n", 30),
    ("KillWait=\n", 30),
    ("ClusterName=c\n", 30),
    ('KillWait="7\n', 30),
])
def test_kill_wait_from_slurm_conf(tmp_path, monkeypatch, text, seconds):
    path = tmp_path / "slurm.conf"
    path.write_text(text)
    monkeypatch.setenv("SLURM_CONF", str(path))
    assert task._kill_wait() == seconds


def test_kill_wait_without_slurm_conf(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "absent.conf"))
    assert task._kill_wait() == 30
