"""The bar `batchrun wait JOB_ID` draws on a terminal while a single job runs and reports progress."""
from __future__ import annotations

import shutil
import sys
from typing import TYPE_CHECKING, TextIO

from batchrun.errors import JobNotFound
from batchrun.surfaces import render

if TYPE_CHECKING:
    from batchrun.surfaces.client import Client


class ProgressBar:
    def __init__(self, client: Client, job_id: str, stream: TextIO = sys.stderr) -> None:
        self.client = client
        self.job_id = job_id
        self.stream = stream
        self.drawn = False

    def draw(self) -> None:
        try:
            info = self.client.job(self.job_id)
        except JobNotFound:
            return
        self.stream.write("\r" + line(info, shutil.get_terminal_size().columns - 1))
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()


def line(info: dict, width: int) -> str:
    """`[#########...........]  45% (450/1000) loading shard 3`, cut to the terminal's width."""
    progress = info.get("progress")
    state = str(info.get("state", "?"))
    if not isinstance(progress, dict):
        return f"{state}".ljust(width)[:width]
    done, total = progress.get("done") or 0, progress.get("total")
    filled = int(24 * done / total) if total else 0
    bar = f"[{'#' * filled}{'.' * (24 - filled)}]" if total else "[" + " " * 24 + "]"
    return f"{bar} {render.progress(progress)}  {state}".ljust(width)[:width]
