"""The Lua scripts: loaded from ``lua/`` once, registered per client, called by SHA.

Every state change is one script, so it is atomic and costs one round trip; redis-py's
``Script`` sends EVALSHA and loads the script again only after the server forgot it (a
restart or SCRIPT FLUSH). Per-group scripts share the prelude ``lua/_group.lua``.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

__all__ = ["GLOBAL_SCRIPTS", "GROUP_SCRIPTS", "Scripts"]

#: Scripts that touch one group's keys (prelude included).
GROUP_SCRIPTS = (
    "put",
    "put_scheduled",
    "claim",
    "renew",
    "finish",
    "release_worker",
    "cancel",
    "requeue_dead",
    "dead_letters",
    "group_info",
    "group_stats",
    "finished_counts",
)
#: Scripts that touch the prefix-wide keys under ``{prefix}``.
GLOBAL_SCRIPTS = (
    "publish_control",
    "read_control",
    "mark_mirror",
    "worker_register",
    "worker_heartbeat",
    "worker_deregister",
    "worker_list",
)


@functools.cache
def source(name: str) -> str:
    """The full text of script ``name``, prelude included for per-group scripts."""
    folder = resources.files(__package__).joinpath("lua")
    body = folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    if name in GROUP_SCRIPTS:
        return folder.joinpath("_group.lua").read_text(encoding="utf-8") + "\n" + body
    return body


class Scripts:
    """The registered scripts of one client, as attributes (``scripts.claim(keys, args)``)."""

    def __init__(self, client: Any) -> None:
        for name in GROUP_SCRIPTS + GLOBAL_SCRIPTS:
            setattr(self, name, client.register_script(source(name)))

    def __getattr__(self, name: str) -> Any:  # for type checkers: attributes set above
        raise AttributeError(name)
