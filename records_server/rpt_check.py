"""Does an RPT's introspection answer grant one scope on one resource? (RS-4, RS-6, INT-U2)"""


def grants(introspection: dict, resource_id: str, scope: str, now: float) -> bool:
    """True only for an active answer holding a permission for ``resource_id`` that lists
    ``scope`` and is in force at ``now``.

    A permission's ``exp``/``nbf`` are bounded by the token's: the earlier ``exp`` and the
    later ``nbf`` win (FedAuthz §5.1.1). Anything malformed grants nothing (default deny).
    """
    if introspection.get("active") is not True:
        return False
    permissions = introspection.get("permissions")
    if not isinstance(permissions, list):
        return False
    for permission in permissions:
        if not isinstance(permission, dict) or permission.get("resource_id") != resource_id:
            continue
        scopes = permission.get("resource_scopes")
        if not isinstance(scopes, list) or scope not in scopes:
            continue
        if _in_force(introspection, permission, now):
            return True
    return False


def _in_force(token: dict, permission: dict, now: float) -> bool:
    expiries = [v for v in (token.get("exp"), permission.get("exp")) if v is not None]
    not_befores = [v for v in (token.get("nbf"), permission.get("nbf")) if v is not None]
    if not all(isinstance(v, int | float) for v in expiries + not_befores):
        return False
    if expiries and now >= min(expiries):
        return False
    return not (not_befores and now < max(not_befores))
