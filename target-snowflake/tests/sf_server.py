"""The session's fakesnow server, started at first use (also at import time: the SDK's standard target suite needs
its settings when its test module is collected) and stopped at exit. In this process, so `fakesnow_shims` patch it;
the target (in-process or a CLI subprocess) reaches it over HTTP through `host`/`port`/`protocol`."""

from __future__ import annotations

import atexit
import contextlib
import logging
import shutil
from typing import Any

import fakesnow_shims

_SETTINGS: dict[str, Any] = {}
#: The emulated account's name (a live account is any other).
ACCOUNT = "fakesnow"


def _stop(stack: contextlib.ExitStack) -> None:
    stack.close()
    # The emulator keeps internal stages in a temporary folder it never removes.
    from fakesnow.transforms import stage  # noqa: PLC0415

    shutil.rmtree(stage.LOCAL_BUCKET_PATH, ignore_errors=True)


def settings() -> dict[str, Any]:
    """Settings of the emulated account (a copy: tests change theirs freely)."""
    if not _SETTINGS:
        import fakesnow  # noqa: PLC0415 - imported only when a test needs the emulator

        fakesnow_shims.install()
        stack = contextlib.ExitStack()
        kwargs = stack.enter_context(fakesnow.server())
        # The server logs every request (uvicorn sets its levels when it starts); at exit pytest has closed the
        # streams those lines would go to.
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fakesnow"):
            logging.getLogger(name).setLevel(logging.WARNING)
        atexit.register(_stop, stack)
        _SETTINGS.update(
            account=ACCOUNT,
            user="fake",
            password="snow-secret-password",
            database="HARBORLINE",
            host=kwargs["host"],
            port=kwargs["port"],
            protocol="http",
            query_tag="harborline-tests",
        )
    return dict(_SETTINGS)
