"""A module no test imports: jobs name it as their task to prove the worker never imports
task names. Importing it leaves a mark."""

import os

os.environ["PGWORKER_IMPORT_CANARY"] = "imported"


def run(ctx: object, payload: object) -> None:
    raise AssertionError("a task name from the database reached importlib")
