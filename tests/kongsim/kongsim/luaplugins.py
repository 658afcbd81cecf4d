"""Custom plugins listed in `plugins` must be installed, as Kong's plugin loader requires.

Kong loads every plugin of `plugins` at init (kong/init.lua at 3.9.3, line 708:
`assert(db.plugins:load_plugin_schemas(config.loaded_plugins))`). For a plugin that is not bundled,
kong/db/dao/plugins.lua (3.9.3, lines 159-180) requires `kong.plugins.<name>.handler` through
`load_module_if_exists` (kong/tools/module.lua, lines 17-31), then tries Wasm filters and external
plugin servers, whose loader answers `no plugin found` (kong/runloop/plugin_servers/init.lua at
3.9.3, line 48); when none loads: `<name> plugin is enabled but not installed;\\n<last error>`.
kong/db/schema/plugin_loader.lua (3.9.3, lines 13-28) then requires `kong.plugins.<name>.schema`:
`no configuration schema found for plugin: <name>`. Errors of every plugin are joined as
`error loading plugin schemas: on plugin '<name>': <err>; ...` (kong/db/dao/plugins.lua, lines
319-345). The same texts hold at 2.8.5 through 3.8.1 (the Wasm step is new in 3.9; its failure is
not the last error).

Lua's `require` searches `lua_package_path` (kong_defaults.lua: `./?.lua;./?/init.lua;`), to which
Kong's nginx template appends `;;`, the default path of Kong's LuaJIT (/usr/local/share/lua/5.1).
"""

from __future__ import annotations

import os

from . import versions

# Line of `assert(db.plugins:load_plugin_schemas(config.loaded_plugins))` in kong/init.lua per tag.
INIT_LINE = {"2.8.5": 543, "3.4.2": 629, "3.5.0": 695, "3.6.1": 695, "3.7.1": 707, "3.8.1": 710, "3.9.3": 708}
INIT_LUA = "/usr/local/share/lua/5.1/kong/init.lua"
DEFAULT_LUA_PATH = ("/usr/local/share/lua/5.1/?.lua", "/usr/local/share/lua/5.1/?/init.lua")


def search_path(conf: dict, cwd: str | None = None) -> list:
    cwd = cwd or os.getcwd()
    templates = []
    for part in str(conf.get("lua_package_path") or "./?.lua;./?/init.lua;").split(";"):
        part = part.strip()
        if not part:
            continue
        templates.append(part if os.path.isabs(part) else os.path.normpath(os.path.join(cwd, part)))
    templates.extend(DEFAULT_LUA_PATH)
    return templates


def module_exists(module: str, templates: list) -> bool:
    name = module.replace(".", "/")
    return any(os.path.isfile(t.replace("?", name)) for t in templates)


def custom_plugins(conf: dict, version: str) -> list:
    bundled = set(versions.get(version).bundled_plugins)
    names = []
    for part in str(conf.get("plugins") or "bundled").split(","):
        part = part.strip()
        if part and part not in ("bundled", "off") and part not in bundled and part not in names:
            names.append(part)
    return names


def check(conf: dict, version: str, cwd: str | None = None) -> str | None:
    """Kong's init error for the custom plugins that are not installed, or None."""
    templates = search_path(conf, cwd)
    errs = []
    for name in custom_plugins(conf, version):
        if not module_exists(f"kong.plugins.{name}.handler", templates):
            errs.append(f"on plugin '{name}': {name} plugin is enabled but not installed;\nno plugin found")
        elif not module_exists(f"kong.plugins.{name}.schema", templates):
            errs.append(f"on plugin '{name}': no configuration schema found for plugin: {name}")
    if not errs:
        return None
    line = INIT_LINE.get(version, 708)
    return f"{INIT_LUA}:{line}: error loading plugin schemas: " + "; ".join(errs)
