"""What a process does in the fleet (design.md "One process or a fleet"): `serve --role …` and `recordkit worker`.

- `api`: the RealtimeKit REST API, the join page, download links, the reconciler and the session sweep;
- `media`: the meetings' WebRTC media (the `/meet` signalling routes), registered in `nodes` for others to find;
- `worker`: takes the `record`, `record_tracks` and `upload` jobs and delivers webhooks; its recorders reach a
  meeting through its media node (`WebRTCSource`), or through the room itself when the same process hosts it.

`all` (the default of `serve`) is all three: one process does everything, on SQLite or PostgreSQL. Any other
combination shares its work with other processes through PostgreSQL.
"""

from __future__ import annotations

API, MEDIA, WORKER = "api", "media", "worker"
ALL = frozenset({API, MEDIA, WORKER})
SERVE_ROLES = (API, MEDIA)


class BadRoles(ValueError):
    """A `--role` value that names no role, or a fleet role on a database other processes cannot share."""


def parse_roles(text: str) -> frozenset[str]:
    """`all`, or a comma-separated list of `api` and `media` (the worker role is `recordkit worker`)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return ALL
    unknown = [name for name in names if name not in SERVE_ROLES]
    if not names or unknown:
        raise BadRoles(f"--role takes all, api, media or api,media, not {text!r}")
    return frozenset(names)


def role_name(roles: frozenset[str]) -> str:
    """How the role shows in `recordkit status`: `all`, or the roles in a fixed order."""
    return "all" if roles == ALL else ",".join(role for role in (API, MEDIA, WORKER) if role in roles)


def refuse_unshared_database(roles: frozenset[str], is_sqlite: bool) -> None:
    """A fleet role's work is shared through the database: a SQLite file only one process can own is refused."""
    if roles != ALL and is_sqlite:
        raise BadRoles(
            f"the {role_name(roles)} role shares its work with other processes through PostgreSQL: "
            "give --database-url postgresql://… (SQLite serves one process doing everything: --role all)"
        )
