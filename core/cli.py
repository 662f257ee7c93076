"""The ``usher`` command line."""

from __future__ import annotations

import click

from benchmarks.cli import bench
from core.admin_cli import admin
from core.kb_cli import kb
from core.reports.cli import report
from core.serve import serve_command
from core.sim.cli import simulate
from core.store.cli import db
from gateways.cli import gateway_command


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "USHER"}
)
@click.version_option(package_name="usher")
def main() -> None:
    """Usher: the routing core for customer service."""


main.add_command(simulate)
main.add_command(bench)
main.add_command(db)
main.add_command(serve_command)
main.add_command(admin)
main.add_command(gateway_command)
main.add_command(kb)
main.add_command(report)

if __name__ == "__main__":
    main()
