"""The `garage` command: global options, the `server` and `help` commands, and the
registration of every command group (defined in sibling modules).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from pygarage.cli.bucket import bucket
from pygarage.cli.key import key
from pygarage.cli.layout import layout
from pygarage.cli.maintenance import block, meta, repair
from pygarage.cli.misc import json_api, stats
from pygarage.cli.node import node, status
from pygarage.cli.state import CliState, admin_error_types
from pygarage.cli.worker import worker

__all__ = ["garage", "main"]


class GarageGroup(click.Group):
    """Root group that turns daemon-side errors into `Error: <message>` and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if isinstance(exc, admin_error_types()):
                raise click.ClickException(str(exc)) from None
            raise


# `-h` is taken by --rpc-host (as in Garage), so help is only `--help`.
CONTEXT_SETTINGS: dict[str, Any] = {
    "help_option_names": ["--help"],
    "max_content_width": 100,
}


@click.group(cls=GarageGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="GARAGE_CONFIG_FILE",
    default="/etc/garage.toml",
    show_default=True,
    show_envvar=True,
    metavar="PATH",
    help="Path to the configuration file.",
)
@click.option(
    "-h",
    "--rpc-host",
    envvar="GARAGE_RPC_HOST",
    show_envvar=True,
    metavar="ID@ADDR",
    help="Host to connect to for admin operations (<node id>@<host>:<port>).",
)
@click.option(
    "-s",
    "--rpc-secret",
    envvar="GARAGE_RPC_SECRET",
    show_envvar=True,
    metavar="SECRET",
    help="RPC secret used to authenticate to the cluster (overrides the config file).",
)
@click.pass_context
def garage(
    ctx: click.Context, config_path: str, rpc_host: str | None, rpc_secret: str | None
) -> None:
    """Garage: an S3-compatible distributed object store.

    Run `garage server` to start a node, and the other commands to administrate the
    cluster through a running node.
    """
    state = ctx.ensure_object(CliState)
    state.config_path = config_path
    state.rpc_host = rpc_host
    state.rpc_secret = rpc_secret


@garage.command()
@click.option(
    "--single-node",
    is_flag=True,
    help="Give this node a layout role automatically if it has none (single-node setups).",
)
@click.option(
    "--default-bucket",
    metavar="NAME",
    default=None,
    help="Create a bucket with this name at startup if it does not exist.",
)
@click.pass_context
def server(ctx: click.Context, single_node: bool, default_bucket: str | None) -> None:
    """Run the Garage server (daemon) on this node."""
    # Imported here so admin commands do not pay for loading the whole server.
    from pygarage.server import run_server
    from pygarage.util.config import ConfigError
    from pygarage.util.errors import StartupError

    state = ctx.ensure_object(CliState)
    try:
        run_server(state.config_path, single_node=single_node, default_bucket=default_bucket)
    except (ConfigError, StartupError) as e:  # the operator's to fix, not a bug: no traceback
        raise click.ClickException(str(e)) from None


@garage.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_(ctx: click.Context, command: Sequence[str]) -> None:
    """Show help for garage or one of its commands.

    For instance `garage help bucket allow` is the same as `garage bucket allow --help`.
    """
    assert ctx.parent is not None
    cmd: click.Command = garage
    cur = ctx.parent
    for name in command:
        if not isinstance(cmd, click.Group):
            break
        sub = cmd.get_command(cur, name)
        if sub is None:
            raise click.UsageError(f"No such command: {name!r}", ctx)
        cur = click.Context(sub, info_name=name, parent=cur)
        cmd = sub
    click.echo(cmd.get_help(cur))


for _cmd in (status, node, layout, bucket, key, worker, repair, block, meta, stats, json_api):
    garage.add_command(_cmd)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point (`garage`)."""
    garage.main(args=list(argv) if argv is not None else None, prog_name="garage")
