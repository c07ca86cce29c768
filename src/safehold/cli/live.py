"""``safehold live …``: watch a live stream from this process (the server's ``/v1/live/streams`` watches them in
its own); a known-material match opens the case, queues the interrupt webhook and preserves the clip the same way."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from safehold.cli.common import console, fail, services

app = typer.Typer(help="Live streams: pull one and watch it here (docs/live.md).", no_args_is_help=True)
out = console()
ACTOR = "cli"


Url = Annotated[
    str, typer.Argument(help="rtmp://, rtsp:// or http(s)://….m3u8 on a network SAFEHOLD_LIVE_PULL_ALLOW lists.")
]
Seconds = Annotated[float, typer.Option("--seconds", min=0, help="Stop after this long (0: when the stream ends).")]


@app.command("watch")
def watch(
    url: Url,
    stream_id: Annotated[str, typer.Option("--id", help="The platform's stream id.")] = "cli-stream",
    broadcaster: Annotated[str, typer.Option("--broadcaster", help="The broadcaster's account id.")] = "unknown",
    seconds: Seconds = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the stream's state as JSON at the end.")] = False,
) -> None:
    """Pull the stream with ffmpeg, sample and match its frames against the banks until it ends (or ``--seconds``);
    print each match as it happens and the stream's state at the end."""
    with fail():
        svc = services()
        live = svc.live
        live.register(ACTOR, stream_id, broadcaster, source="url", url=url)
        puller = live.puller(stream_id)
        started, seen = time.monotonic(), 0
        try:
            while puller.alive and (not seconds or time.monotonic() - started < seconds):
                puller.join(0.5)
                state = live.get(stream_id)
                if state["frames"]["matched"] > seen:
                    seen = state["frames"]["matched"]
                    out.print(f"[bold red]match[/] in {stream_id}: case #{state['case_id']}, stream {state['status']}")
        finally:
            state = live.end(ACTOR, stream_id)
        if as_json:
            out.print_json(json.dumps(state))
        else:
            f = state["frames"]
            out.print(f"{stream_id}: {f['received']} frames read, {f['sampled']} sampled, {f['matched']} matched; "
                      f"case {state['case_id'] or '-'}; {puller.error or 'ended'}")  # fmt: skip
