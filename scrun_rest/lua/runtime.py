"""A sandboxed Lua interpreter (lupa) for scrun.lua.

Lua 5.4 is preferred: Slurm builds against Lua 5.1 to 5.4, so a site's
scrun.lua is written for one of those (lupa's default may be a newer Lua).
The runtime works on bytes (encoding=None): Lua strings are byte strings, so
command output or file names that are not UTF-8 never break a call.

Scripts keep the normal Lua libraries (io, os, string, table, ...) as they do
under scrun, but get no way into Python: no `python` module, no eval, no
builtins, and no attribute access on the few Python callables they can reach.
"""
import importlib

from scrun_rest.errors import UserError

PREFERRED = ("lua54", "lua53", "lua52", "lua51", "luajit21", "luajit20")


class LuaRuntime:
    """The interpreter plus the lupa module it came from (for lua_type, LuaError)."""

    def __init__(self, module, lua):
        self.module = module
        self.lua = lua

    @property
    def version(self):
        return self.lua.eval(b"_VERSION").decode()

    def is_table(self, value):
        return self.module.lua_type(value) == "table"

    def run(self, code, *args):
        return self.lua.execute(code.encode() if isinstance(code, str) else code, *args)


def _deny_attribute(obj, name, is_setting):
    raise AttributeError("scrun.lua has no access to Python objects")


def lupa_module():
    try:
        import lupa
    except ImportError:
        raise UserError("LuaScript is set but the Python module lupa is not installed "
                        "(pip install lupa)") from None
    for name in PREFERRED:
        try:
            return importlib.import_module("lupa." + name)
        except ImportError:
            continue
    return lupa


def new_runtime():
    module = lupa_module()
    lua = module.LuaRuntime(encoding=None, unpack_returned_tuples=True,
                            register_eval=False, register_builtins=False,
                            attribute_filter=_deny_attribute)
    lua.execute(b"python = nil; if package and package.loaded then "
                b"package.loaded.python = nil end")
    return LuaRuntime(module, lua)


def to_bytes(value):
    """Python text to a Lua string, keeping bytes that were not UTF-8."""
    if isinstance(value, bytes):
        return value
    text = str(value)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def to_text(value):
    """A Lua string to Python text; bytes that are not UTF-8 survive a round trip."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def pair(result):
    """Two Lua results as a tuple (lupa returns a lone nil as plain None)."""
    if isinstance(result, tuple):
        return (tuple(result) + (None, None))[:2]
    return result, None


def one_line(text, limit=2000):
    """Lua messages as one line for UserError."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[:limit - 3] + "..."
