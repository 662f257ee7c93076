"""The ``usher`` command line.

Subcommands are imported when they run, not when ``usher`` starts: ``usher kb search`` must not
pay for Ray, gRPC and the benchmark suites (the pattern from click's "Lazily Loading
Subcommands").
"""

from __future__ import annotations

import importlib

import click

_SUBCOMMANDS = {
    "admin": "core.admin_cli:admin",
    "bench": "benchmarks.cli:bench",
    "db": "core.store.cli:db",
    "gateway": "gateways.cli:gateway_command",
    "kb": "core.kb_cli:kb",
    "report": "core.reports.cli:report",
    "serve": "core.serve:serve_command",
    "simulate": "core.sim.cli:simulate",
}


class _LazyGroup(click.Group):
    """A group whose subcommands are ``module:attribute`` paths, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        path = _SUBCOMMANDS.get(cmd_name)
        if path is None:
            return None
        module, attribute = path.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "USHER"},
)
@click.version_option(package_name="usher")
def main() -> None:
    """Usher: the routing core for customer service."""


if __name__ == "__main__":
    main()
