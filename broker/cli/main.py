"""``klamm``: one console entry point with subcommands, flags named like Kafka's tools."""

from __future__ import annotations

import importlib

import click

from .broker import broker, standalone
from .errors import run_cli, stdout_closed


# Subcommands living in their own modules: (module, attribute, the one line `klamm --help`
# shows). They are imported only when run, so `klamm --help` and every command start
# without the client, asyncio and pydantic they do not need (a test keeps the lines equal
# to each command's own short help).
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "cluster": ("cluster", "cluster", "Inspect the cluster."),
    "consume": ("consume", "consume", "Print records of TOPIC, one per line."),
    "leader-election": ("leader_election", "leader_election",
                        "Run preferred or unclean leader elections."),
    "perf": ("perf", "perf", "Performance tools: producer throughput, consumer..."),
    "produce": ("produce", "produce", "Send one record per line of standard input to TOPIC."),
    "reassign-partitions": ("reassign", "reassign_partitions",
                            "Move partitions to new replicas."),
    "topics": ("topics", "topics", "Manage topics."),
    "verifiable-consumer": ("verifiable", "verifiable_consumer",
                            "Read every partition of TOPIC and print what was..."),
    "verifiable-producer": ("verifiable", "verifiable_producer",
                            "Send increasing integers to TOPIC and print every..."),
    "zk": ("zk", "zk", "Run or inspect the coordination service (sessions,..."),
}


class LazyGroup(click.Group):
    """A group whose LAZY_COMMANDS are imported on first use (click's lazy-loading pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, attr, _ = LAZY_COMMANDS[cmd_name]
            command = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # before click's own handler, which exits 1
            stdout_closed()

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS and name not in self.commands:
                rows.append((name, LAZY_COMMANDS[name][2]))
            else:
                command = self.commands[name]
                rows.append((name, command.get_short_help_str(limit=formatter.width)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


def main(argv: list[str] | None = None) -> None:
    run_cli(cli, argv)
