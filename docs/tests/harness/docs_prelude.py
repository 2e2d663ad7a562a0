# The names a documentation snippet marked `<!-- test: prelude -->` may assume: the handler
# of the quickstart, a group, a kit on the local Redis (isolated by the test's key prefix)
# and the imports the pages take for granted. The snippet runs right after this text.
# ruff: noqa: F401 - the imports are for the snippets that follow
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import taskkit
from taskkit import (
    CronSchedule,
    DiscardTask,
    OnlyEarliest,
    OnlyLatest,
    RegularSchedule,
    Task,
    TaskHandler,
)

GROUP_NAME = "docs"


class Handler(TaskHandler):
    def handle(self, task: Task) -> Any:
        if task.group in ("mail", GROUP_NAME):
            return self.decode_data(task)
        raise DiscardTask


MyHandler = Handler
kit = taskkit.make_kit("redis://127.0.0.1:6379/0", Handler())
# ---- the snippet ----
