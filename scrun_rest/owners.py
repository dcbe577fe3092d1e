"""A file's owner as error messages name it: "alice (uid 1000)".

Used by the token checks (auth.py) and by the spool (anchor/spool.py),
which the light commands import: stdlib only, pwd imported on use.
"""


def describe(uid):
    import pwd
    try:
        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except KeyError:
        return "uid %d" % uid
