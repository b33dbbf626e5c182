"""Each app's settings: its demo defaults, then environment variables, each read as the type
of its default (``<PREFIX>_<NAME>``, plus a few names the apps share, such as AS_ISSUER)."""

import os

TRUE = ("1", "true", "yes", "on")


def read_environ(defaults: dict, prefix: str, shared: dict | None = None, environ=None) -> dict:
    """``shared`` maps an environment variable to a setting (``{"EHR_URL": "PUBLIC_URL"}``);
    a ``<PREFIX>_<NAME>`` variable wins over it."""
    environ = os.environ if environ is None else environ
    config = dict(defaults)
    for variable, name in (shared or {}).items():
        if environ.get(variable):
            config[name] = environ[variable]
    for name, default in defaults.items():
        raw = environ.get(f"{prefix}_{name}")
        if raw is None or raw == "":
            continue
        if isinstance(default, bool):
            config[name] = raw.strip().lower() in TRUE
        elif isinstance(default, int):
            config[name] = int(raw)
        else:
            config[name] = raw
    return config
