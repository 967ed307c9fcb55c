"""`python -m bookbench.fakes sms|calendar --port N [--record FILE]`: one fake provider in this process.

Credentials come from the same environment variables the dispatcher reads (see target_service/notify/settings.py),
so the pair agrees without passing secrets on a command line.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import uvicorn

from bookbench.fakes.providers import calendar_app, sms_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bookbench.fakes")
    parser.add_argument("kind", choices=("sms", "calendar"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", type=Path, default=None, help="append every accepted message here (JSON lines)")
    args = parser.parse_args()
    env = os.environ
    if args.kind == "sms":
        app = sms_app(args.record, env.get("BOOKBENCH_TWILIO_ACCOUNT_SID", "AC-bookbench"),
                      env.get("BOOKBENCH_TWILIO_AUTH_TOKEN", "bookbench-sms-token"))
    else:
        app = calendar_app(args.record, env.get("BOOKBENCH_GOOGLE_CLIENT_ID", "bookbench-client"),
                           env.get("BOOKBENCH_GOOGLE_CLIENT_SECRET", "bookbench-client-secret"),
                           env.get("BOOKBENCH_GOOGLE_REFRESH_TOKEN", "bookbench-refresh-token"))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
