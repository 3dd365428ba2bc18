"""``klamm``: one console entry point with subcommands, flags named like Kafka's tools."""

from __future__ import annotations

import click

from .broker import broker, standalone
from .errors import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="klamm")
def cli() -> None:
    """Klamm: a Kafka-style distributed event log.

    \b
    Example:
      klamm standalone --data-dir ./klamm-data
      klamm topics create orders --partitions 3
      echo hello | klamm produce orders
      klamm consume orders --from-beginning --max-messages 1
    """


cli.add_command(standalone)
cli.add_command(broker)


def _register_optional() -> None:
    """Subcommand groups live in their own modules; each registers if present."""
    import importlib

    for module, name in (("topics", "topics"), ("produce", "produce"), ("consume", "consume"),
                         ("perf", "perf"), ("zk", "zk"), ("cluster", "cluster"),
                         ("verifiable", "verifiable_producer"),
                         ("verifiable", "verifiable_consumer")):
        try:
            mod = importlib.import_module(f"{__package__}.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{module}":
                raise
            continue
        cli.add_command(getattr(mod, name))


_register_optional()


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, argv)
