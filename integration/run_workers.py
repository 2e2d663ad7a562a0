"""Run a supervised worker fleet for the tests: ``python -m integration.run_workers``."""

from __future__ import annotations

import argparse
import json
import logging

import taskkit

from .ledger import LedgerHandler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--options", default="{}", help="JSON make_kit options")
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--group", default="work")
    parser.add_argument("--start-method")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"
    )
    kit = taskkit.make_kit(args.url, LedgerHandler(args.ledger), **json.loads(args.options))
    kit.start(args.processes, {args.group: args.threads}, start_method=args.start_method)


if __name__ == "__main__":
    main()
