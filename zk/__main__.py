"""``python -m klamm.zk --listen HOST:PORT --data-dir DIR [--override KEY=VALUE ...]``.

The same server as ``klamm zk start``; kept free of the broker package so the coordination
service can run on machines (and in processes) that have no broker.
"""

from __future__ import annotations

import argparse
import sys

from klamm.protocol.config import ConfigError, parse_host_port, parse_overrides

from .config import ZkConfig
from .runner import run


def build_config(listen: str | None, data_dir: str | None,
                 overrides: list[str]) -> ZkConfig:
    values: dict[str, object] = {}
    if listen:
        values["host"], values["port"] = parse_host_port(listen)
    if data_dir:
        values["data.dir"] = data_dir
    values.update(parse_overrides(overrides))
    return ZkConfig.build(values)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m klamm.zk",
                                     description="Run the Klamm coordination service.")
    parser.add_argument("--listen", metavar="HOST:PORT")
    parser.add_argument("--data-dir")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        config = build_config(args.listen, args.data_dir, args.override)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    run(config)


if __name__ == "__main__":
    main()
