#!/usr/bin/env python3
"""Prints stegostream's windowed class summaries from its WebSocket, one line per window and stream.

    python3 examples/summaries_ws.py ws://localhost:8080/ws [--window 1s|10s|60s]
                                     [--stream NAME] [--token T] [--count N] [--json]

The service sends them on the `summary` channel (README "Summaries"): per class the mean, min and
max share of the frames over the window. Needs the `websockets` package (pip install websockets,
or Debian's python3-websockets).
"""
import argparse
import asyncio
import json
import urllib.parse

import websockets


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url", nargs="?", default="ws://localhost:8080/ws")
    p.add_argument("--window", default="1s", choices=["1s", "10s", "60s"])
    p.add_argument("--stream", default="*", help="a stream name, or * for every stream")
    p.add_argument("--token", help="the service token, when it has one")
    p.add_argument("--count", type=int, help="stop after this many summaries")
    p.add_argument("--json", action="store_true", help="print each summary as JSON")
    args = p.parse_args()

    url = args.url
    if args.token:
        url += ("&" if "?" in url else "?") + "token=" + urllib.parse.quote(args.token)
    seen = 0
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "subscribe", "streams": [args.stream], "channels": ["summary"]}))
        async for raw in ws:
            if isinstance(raw, bytes):
                continue
            m = json.loads(raw)
            if m.get("type") == "error":
                raise SystemExit(f"stegostream: {m['message']} [{m['code']}]")
            if m.get("type") != "summary" or m["window"] != args.window:
                continue
            if args.json:
                print(json.dumps(m), flush=True)
            else:
                shares = " ".join(f"{c['name']}={c['mean']:.3f}" for c in m["classes"])
                print(f"{m['end']} {m['stream']} {m['window']} frames={m['frames']} head={m['headVersion']} {shares}", flush=True)
            seen += 1
            if args.count is not None and seen >= args.count:
                break


if __name__ == "__main__":
    asyncio.run(main())
