"""Token sources, expiry, permissions, renewal, minting, and never leaking the token."""
import base64
import json
import logging
import os
import sys

import pytest

from scrun_rest.auth import TokenSource, parse_token_text, token_claims, utc_iso
from scrun_rest.config import Config
from scrun_rest.errors import UserError

NOW = 1_700_000_000


def make_token(exp=NOW + 3600, sun="alice", extra=None, signature="c2lnbmF0dXJlLWJ5dGVz"):
    claims = {"exp": exp, "iat": NOW, "sun": sun}
    if sun is None:
        del claims["sun"]
    claims.update(extra or {})

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return "%s.%s.%s" % (part({"alg": "HS256", "typ": "JWT"}), part(claims), signature)


def source(values=None, env=None, now=NOW):
    clock = [now]
    tokens = TokenSource(Config(values or {}, path="/t.conf", environ={}),
                         environ=env or {}, clock=lambda: clock[0])
    return tokens, clock


def private_file(tmp_path, name, content, mode=0o600):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    os.chmod(path, mode)
    return str(path)


# -- parsing -------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "{t}", "{t}\n", "SLURM_JWT={t}\n", "  SLURM_JWT={t}  ", "export SLURM_JWT={t}",
    "SLURM_JWT='{t}'", "some banner\nSLURM_JWT={t}\n",
])
def test_token_text_forms(text):
    token = make_token()
    assert parse_token_text(text.format(t=token), "x") == token


@pytest.mark.parametrize("text", ["", "\n\n", "a\nb\n", "has space"])
def test_unusable_token_text(text):
    with pytest.raises(UserError):
        parse_token_text(text, "x")


def test_claims_decode_without_jwt_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "jwt", None)  # importing it would now fail
    assert token_claims(make_token(sun="bob"))["sun"] == "bob"


@pytest.mark.parametrize("bad", [
    "abc", "a.b", "a.!!!.c", "a.%s.c" % base64.urlsafe_b64encode(b"[1]").decode()])
def test_not_a_jwt(bad):
    with pytest.raises(UserError, match="not a JWT"):
        token_claims(bad)


# -- sources ---------------------------------------------------------------------

def test_env_token_raw_and_prefixed():
    token = make_token(sun="alice")
    for text in (token, "SLURM_JWT=" + token):
        tokens, _ = source(env={"SLURM_JWT": text})
        assert tokens.token() == token
        assert tokens.user == "alice"
        assert tokens.expires_at == NOW + 3600


def test_user_falls_back_to_username_claim_never_uid():
    tokens, _ = source(env={"SLURM_JWT": make_token(sun=None, extra={"username": "carol"})})
    assert tokens.user == "carol"
    tokens, _ = source(env={"SLURM_JWT": make_token(sun=None)})
    assert tokens.user is None


def test_env_wins_over_file(tmp_path):
    env_token, file_token = make_token(sun="env"), make_token(sun="file")
    path = private_file(tmp_path, "jwt", "SLURM_JWT=%s\n" % file_token)
    tokens, _ = source({"JwtFile": path}, env={"SLURM_JWT": env_token})
    assert tokens.token() == env_token
    tokens, _ = source({"JwtFile": path})
    assert tokens.token() == file_token and tokens.user == "file"


def test_expired_env_token_falls_through_to_file(tmp_path):
    path = private_file(tmp_path, "jwt", make_token(sun="file"))
    tokens, _ = source({"JwtFile": path}, env={"SLURM_JWT": make_token(exp=NOW - 5)})
    assert tokens.user == "file"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_readable_jwt_file_is_refused(tmp_path, mode):
    token = make_token()
    path = private_file(tmp_path, "jwt", token, mode)
    tokens, _ = source({"JwtFile": path})
    with pytest.raises(UserError) as info:
        tokens.token()
    assert "readable by others" in str(info.value) and "chmod 600" in str(info.value)
    assert token not in str(info.value)


def test_missing_jwt_file(tmp_path):
    tokens, _ = source({"JwtFile": str(tmp_path / "nope")})
    with pytest.raises(UserError, match="cannot open JwtFile"):
        tokens.token()


def test_no_source_at_all():
    tokens, _ = source()
    with pytest.raises(UserError, match="no Slurm token.*SLURM_JWT.*JwtKeyFile"):
        tokens.token()


# -- expiry ------------------------------------------------------------------------

@pytest.mark.parametrize("exp,verb", [(NOW - 10, "expired"), (NOW + 30, "expires")])
def test_expired_or_nearly_expired_token_names_utc_expiry(exp, verb):
    tokens, _ = source(env={"SLURM_JWT": make_token(exp=exp)})
    with pytest.raises(UserError) as info:
        tokens.token()
    text = str(info.value)
    assert verb in text and utc_iso(exp) in text and text.count("T") >= 1
    assert utc_iso(exp).endswith("Z")


def test_token_without_exp_is_refused():
    token = make_token(extra={"exp": None})
    tokens, _ = source(env={"SLURM_JWT": token})
    with pytest.raises(UserError, match="no expiry"):
        tokens.token()


def test_token_goes_stale_with_time():
    tokens, clock = source(env={"SLURM_JWT": make_token(exp=NOW + 120)})
    tokens.token()
    clock[0] = NOW + 61
    with pytest.raises(UserError, match="expires at"):
        tokens.token()


def test_utc_iso():
    assert utc_iso(0) == "1970-01-01T00:00:00Z"
    assert utc_iso(NOW) == "2023-11-14T22:13:20Z"


# -- JwtCommand ------------------------------------------------------------------------

def test_jwt_command_output_and_renewal(tmp_path):
    counter = tmp_path / "n"
    counter.write_text("0")
    script = tmp_path / "mint.py"
    # Each run prints a token that expires 120 s after the (fake) clock's start
    # plus 100 s per run, so the second run's token is distinguishable.
    script.write_text(
        "import base64, json, sys\n"
        "n = int(open(%r).read()) + 1\n"
        "open(%r, 'w').write(str(n))\n"
        "p = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b'=').decode()\n"
        "print('SLURM_JWT=' + p({'alg': 'HS256'}) + '.' + "
        "p({'sun': 'u%%d' %% n, 'exp': %d + 100 * n}) + '.c2ln')\n"
        % (str(counter), str(counter), NOW + 20))
    tokens, clock = source({"JwtCommand": "%s %s" % (sys.executable, script)})
    first = tokens.token()
    assert tokens.user == "u1" and tokens.expires_at == NOW + 120
    assert tokens.token() == first and counter.read_text() == "1"  # cached while fresh
    clock[0] = NOW + 70  # under 60 s left: run the command again
    assert tokens.token() != first and tokens.user == "u2"
    assert counter.read_text() == "2"


def test_jwt_command_failure_is_scrubbed():
    token = make_token()
    tokens, _ = source({"JwtCommand": "echo 'bad thing %s' >&2; exit 3" % token})
    with pytest.raises(UserError) as info:
        tokens.token()
    assert "exit status 3" in str(info.value) and "bad thing" in str(info.value)
    assert token not in str(info.value)


def test_jwt_command_is_not_in_argv_of_anything_but_sh(tmp_path):
    out = tmp_path / "argv"
    tokens, _ = source({"JwtCommand": "echo \"$0 $*\" > %s; echo %s" % (out, make_token())})
    tokens.token()
    assert make_token() not in out.read_text()


# -- JwtKeyFile minting ---------------------------------------------------------------

def test_key_file_mints_hs256(tmp_path):
    jwt = pytest.importorskip("jwt")
    key = os.urandom(32)
    path = private_file(tmp_path, "jwt_hs256.key", key)
    tokens, clock = source({"JwtKeyFile": path, "JwtLifespan": "600", "JwtUser": "svc"})
    token = tokens.token()
    claims = jwt.decode(token, key, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sun": "svc", "iat": NOW, "exp": NOW + 600}
    assert tokens.user == "svc" and tokens.expires_at == NOW + 600
    clock[0] = NOW + 545  # 55 s left: mint a new one
    assert tokens.token() != token and tokens.expires_at == NOW + 545 + 600


def test_key_file_defaults_to_the_real_user(tmp_path, monkeypatch):
    pytest.importorskip("jwt")
    import pwd
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "0")
    path = private_file(tmp_path, "k", b"k" * 32)
    tokens, _ = source({"JwtKeyFile": path})
    tokens.token()
    assert tokens.user == pwd.getpwuid(0).pw_name
    assert tokens.expires_at == NOW + 86400


def test_readable_key_file_is_refused(tmp_path):
    path = private_file(tmp_path, "k", b"k" * 32, 0o644)
    tokens, _ = source({"JwtKeyFile": path, "JwtUser": "x"})
    with pytest.raises(UserError, match="JwtKeyFile .* is readable by others"):
        tokens.token()


@pytest.mark.parametrize("key,mode", [("JwtFile", 0o620), ("JwtFile", 0o602),
                                      ("JwtKeyFile", 0o620), ("JwtKeyFile", 0o602)],
                         ids=["token-group", "token-world", "key-group", "key-world"])
def test_writable_secret_files_are_refused(tmp_path, key, mode):
    """Others who can write a token file could swap in their own token."""
    path = private_file(tmp_path, "secret", make_token() if key == "JwtFile" else b"k" * 32, mode)
    tokens, _ = source({key: path, "JwtUser": "x"})
    with pytest.raises(UserError) as info:
        tokens.token()
    assert str(info.value) == "%s %s is writable by others (mode %03o); run: chmod 600 %s" % (
        key, path, mode, path)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
STRANGER = 54321  # a uid with no account here


@needs_root
def test_a_token_file_of_another_user_is_refused(tmp_path):
    path = private_file(tmp_path, "jwt", make_token())
    os.chown(path, STRANGER, STRANGER)
    tokens, _ = source({"JwtFile": path})
    with pytest.raises(UserError) as info:
        tokens.token()
    assert str(info.value) == ("JwtFile %s belongs to uid %d, not to you or root, so they "
                               "could replace it" % (path, STRANGER))


@needs_root
def test_root_takes_slurms_own_key_file(tmp_path, monkeypatch):
    """As for /etc/slurm/jwt_hs256.key: slurm:slurm 0600, read by root for docker."""
    pytest.importorskip("jwt")
    monkeypatch.delenv("_CONTAINERS_ROOTLESS_UID", raising=False)
    path = private_file(tmp_path, "jwt_hs256.key", b"k" * 32)
    os.chown(path, STRANGER, STRANGER)
    tokens, _ = source({"JwtKeyFile": path, "JwtUser": "root"})
    assert tokens.token() and tokens.user == "root"


@needs_root
def test_a_rootless_user_does_not_take_a_key_file_of_another(tmp_path, monkeypatch):
    """Mapped root in rootless podman's user namespace is not root."""
    monkeypatch.setenv("_CONTAINERS_ROOTLESS_UID", "2000")
    path = private_file(tmp_path, "k", b"k" * 32)
    os.chown(path, STRANGER, STRANGER)
    tokens, _ = source({"JwtKeyFile": path, "JwtUser": "x"})
    with pytest.raises(UserError, match="JwtKeyFile .* belongs to uid %d, not to you or root"
                       % STRANGER):
        tokens.token()


def test_a_secret_file_in_a_dir_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    path = private_file(shared, "jwt", make_token())
    tokens, _ = source({"JwtFile": path})
    with pytest.raises(UserError) as info:
        tokens.token()
    assert str(info.value) == ("JwtFile %s is in %s, which others can write (mode 777), so "
                               "they could replace it" % (path, shared))


def test_a_sticky_shared_dir_is_fine(tmp_path):
    """Like /tmp: others cannot rename or remove a file they do not own."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    tokens, _ = source({"JwtFile": private_file(shared, "jwt", make_token())})
    assert tokens.token() == make_token()


def test_short_lifespan_is_refused(tmp_path):
    path = private_file(tmp_path, "k", b"k" * 32)
    tokens, _ = source({"JwtKeyFile": path, "JwtUser": "x", "JwtLifespan": "60"})
    with pytest.raises(UserError, match="JwtLifespan=60 is below 120"):
        tokens.token()


# -- the token never leaks ----------------------------------------------------------

def test_token_never_in_logs_or_messages(tmp_path, caplog):
    good = make_token(sun="alice")
    stale = make_token(exp=NOW - 1, signature="c3RhbGUtc2lnbmF0dXJl")
    path = private_file(tmp_path, "jwt", good, 0o644)
    messages = []
    caplog.set_level(logging.DEBUG)
    for values, env in (({}, {"SLURM_JWT": good}), ({}, {"SLURM_JWT": stale}),
                        ({"JwtFile": path}, {}), ({"JwtCommand": "echo %s; exit 1" % good}, {}),
                        ({"JwtCommand": "echo %s" % stale}, {})):
        tokens, _ = source(values, env)
        try:
            tokens.token()
            messages.append("user=%s exp=%s" % (tokens.user, tokens.expires_at))
        except UserError as exc:
            messages.append(str(exc))
    logged = [r.getMessage() for r in caplog.records]
    assert logged and messages
    for text in messages + logged:
        for token in (good, stale):
            assert token not in text
            assert token.split(".")[2] not in text
