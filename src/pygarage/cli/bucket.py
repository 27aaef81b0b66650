"""`garage bucket ...`: create, inspect and configure buckets and their aliases."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click
from click.core import ParameterSource

from pygarage.cli.fmt import short_id
from pygarage.cli.params import DURATION, OPTIONAL_COUNT, OPTIONAL_SIZE
from pygarage.cli.resolve import bucket_info, key_info
from pygarage.cli.state import client
from pygarage.cli.views import render_bucket_info, render_bucket_list, render_object

__all__ = ["bucket"]


@click.group()
def bucket() -> None:
    """Create, delete and configure buckets.

    A bucket can be named by one of its global aliases or by (a prefix of) its id.
    """


@bucket.command("list")
@click.pass_context
def bucket_list(ctx: click.Context) -> None:
    """List all buckets."""
    click.echo(render_bucket_list(client(ctx).call("ListBuckets")))


@bucket.command("info")
@click.argument("name")
@click.pass_context
def bucket_info_cmd(ctx: click.Context, name: str) -> None:
    """Show a bucket's size, aliases, website settings, quotas and keys."""
    click.echo(render_bucket_info(bucket_info(ctx, name)))


@bucket.command("create")
@click.argument("name")
@click.pass_context
def bucket_create(ctx: click.Context, name: str) -> None:
    """Create a bucket with NAME as its global alias."""
    info = client(ctx).call("CreateBucket", body={"globalAlias": name})
    click.echo(f"Bucket {name} was created.")
    click.echo("")
    click.echo(render_bucket_info(info))


@bucket.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Really delete the bucket.")
@click.pass_context
def bucket_delete(ctx: click.Context, name: str, yes: bool) -> None:
    """Delete an empty bucket, with all its aliases."""
    info = bucket_info(ctx, name)
    if not yes:
        click.echo(f"About to delete bucket {info['id']}.")
        aliases = info.get("globalAliases") or []
        if aliases:
            click.echo(f"The following global aliases will be removed: {', '.join(aliases)}")
        raise click.ClickException("Add --yes flag to really perform this operation")
    client(ctx).call("DeleteBucket", query={"id": info["id"]})
    click.echo(f"Bucket {info['id']} has been deleted.")


@bucket.command("alias")
@click.argument("existing_bucket")
@click.argument("new_name")
@click.option("--local", metavar="KEY", help="Create a local alias in the namespace of this key.")
@click.pass_context
def bucket_alias(
    ctx: click.Context, existing_bucket: str, new_name: str, local: str | None
) -> None:
    """Add an alias NEW_NAME to an existing bucket."""
    bucket_id = bucket_info(ctx, existing_bucket)["id"]
    body: dict[str, Any] = {"bucketId": bucket_id}
    if local is not None:
        key_id = key_info(ctx, local)["accessKeyId"]
        body.update(localAlias=new_name, accessKeyId=key_id)
        where = f" in namespace of key {key_id}"
    else:
        body["globalAlias"] = new_name
        where = ""
    client(ctx).call("AddBucketAlias", body=body)
    click.echo(f"Alias {new_name} now points to bucket {short_id(bucket_id)}{where}.")


@bucket.command("unalias")
@click.argument("name")
@click.option("--local", metavar="KEY", help="Remove a local alias of this key.")
@click.pass_context
def bucket_unalias(ctx: click.Context, name: str, local: str | None) -> None:
    """Remove the alias NAME from the bucket it points to."""
    body: dict[str, Any]
    if local is not None:
        key = key_info(ctx, local)
        key_id = key["accessKeyId"]
        matching = [
            b["id"] for b in key.get("buckets") or [] if name in (b.get("localAliases") or [])
        ]
        if not matching:
            raise click.ClickException(f"No bucket called {name} in namespace of key {key_id}")
        bucket_id = matching[0]
        body = {"bucketId": bucket_id, "localAlias": name, "accessKeyId": key_id}
    else:
        bucket_id = client(ctx).call("GetBucketInfo", query={"globalAlias": name})["id"]
        body = {"bucketId": bucket_id, "globalAlias": name}
    client(ctx).call("RemoveBucketAlias", body=body)
    click.echo(f"Alias {name} no longer points to bucket {short_id(bucket_id)}.")


def _permission_command(allow: bool) -> click.Command:
    verb = "Allow" if allow else "Deny"
    endpoint = "AllowBucketKey" if allow else "DenyBucketKey"

    @click.command(
        "allow" if allow else "deny", help=f"{verb} a key to read, write or own a bucket."
    )
    @click.option("--read", is_flag=True, help=f"{verb} reading objects.")
    @click.option("--write", is_flag=True, help=f"{verb} writing and deleting objects.")
    @click.option("--owner", is_flag=True, help=f"{verb} administrating the bucket (S3 settings).")
    @click.option("--key", "key_pattern", required=True, help="Access key id, prefix or name.")
    @click.argument("bucket_name", metavar="BUCKET")
    @click.pass_context
    def cmd(
        ctx: click.Context, read: bool, write: bool, owner: bool, key_pattern: str, bucket_name: str
    ) -> None:
        bucket_id = bucket_info(ctx, bucket_name)["id"]
        key_id = key_info(ctx, key_pattern)["accessKeyId"]
        body = {
            "bucketId": bucket_id,
            "accessKeyId": key_id,
            "permissions": {"read": read, "write": write, "owner": owner},
        }
        info = client(ctx).call(endpoint, body=body)
        perms: dict[str, bool] = {}
        for k in info.get("keys") or []:
            if k.get("accessKeyId") == key_id:
                perms = k.get("permissions") or {}
        click.echo(
            f"New permissions for key {key_id} on bucket {short_id(bucket_id)}: "
            f"read {str(bool(perms.get('read'))).lower()}, "
            f"write {str(bool(perms.get('write'))).lower()}, "
            f"owner {str(bool(perms.get('owner'))).lower()}."
        )

    return cmd


bucket.add_command(_permission_command(True))
bucket.add_command(_permission_command(False))


@bucket.command("website")
@click.argument("bucket_name", metavar="BUCKET")
@click.option("--allow", "allow", is_flag=True, help="Serve the bucket as a website.")
@click.option("--deny", "deny", is_flag=True, help="Stop serving the bucket as a website.")
@click.option(
    "-i",
    "--index-document",
    default=None,
    help="Document returned for requests ending in `/` [default: the server's [s3_web] "
    "index, itself index.html by default].",
)
@click.option("-e", "--error-document", help="Document returned (with a 404) for missing objects.")
@click.pass_context
def bucket_website(
    ctx: click.Context,
    bucket_name: str,
    allow: bool,
    deny: bool,
    index_document: str | None,
    error_document: str | None,
) -> None:
    """Allow or deny website access to a bucket."""
    if allow == deny:
        raise click.ClickException("You must specify exactly one flag, either --allow or --deny")
    bucket_id = bucket_info(ctx, bucket_name)["id"]
    website: dict[str, Any] = {"enabled": allow, "indexDocument": None, "errorDocument": None}
    if allow:
        website.update(indexDocument=index_document, errorDocument=error_document)
    client(ctx).call("UpdateBucket", query={"id": bucket_id}, body={"websiteAccess": website})
    state = "allowed" if allow else "denied"
    click.echo(f"Website access {state} for {bucket_name}")


@bucket.command("set-quotas")
@click.argument("bucket_name", metavar="BUCKET")
@click.option(
    "--max-size",
    type=OPTIONAL_SIZE,
    metavar="SIZE|none",
    help="Maximum total size of objects (e.g. 10G), or `none` to lift the limit.",
)
@click.option(
    "--max-objects",
    type=OPTIONAL_COUNT,
    metavar="N|none",
    help="Maximum number of objects, or `none` to lift the limit.",
)
@click.pass_context
def bucket_set_quotas(
    ctx: click.Context, bucket_name: str, max_size: int | None, max_objects: int | None
) -> None:
    """Set the size and object-count quotas of a bucket."""
    given = {
        name
        for name in ("max_size", "max_objects")
        if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
    }
    if not given:
        raise click.ClickException(
            "You must specify either --max-size or --max-objects (or both) "
            "for this command to do something."
        )
    info = bucket_info(ctx, bucket_name)
    # Keep whichever quota was not given on the command line.
    quotas = dict(info.get("quotas") or {"maxSize": None, "maxObjects": None})
    if "max_size" in given:
        quotas["maxSize"] = max_size
    if "max_objects" in given:
        quotas["maxObjects"] = max_objects
    client(ctx).call("UpdateBucket", query={"id": info["id"]}, body={"quotas": quotas})
    click.echo(f"Quotas updated for {bucket_name}")


@bucket.command("cleanup-incomplete-uploads")
@click.argument("buckets", nargs=-1, required=True, metavar="BUCKET...")
@click.option(
    "--older-than",
    type=DURATION,
    default="1d",
    show_default=True,
    help="Abort uploads started longer ago than this (e.g. 30m, 12h, 7d).",
)
@click.pass_context
def bucket_cleanup(ctx: click.Context, buckets: Sequence[str], older_than: int) -> None:
    """Abort the uploads (multipart, and PutObject uploads a crash interrupted) left
    unfinished in the given buckets for longer than --older-than."""
    for name in buckets:
        bucket_id = bucket_info(ctx, name)["id"]
        body = {"bucketId": bucket_id, "olderThanSecs": older_than}
        n = int(client(ctx).call("CleanupIncompleteUploads", body=body).get("uploadsDeleted", 0))
        click.echo(f"{short_id(bucket_id)}: {n if n else 'no'} uploads deleted")


@bucket.command("inspect-object")
@click.argument("bucket_name", metavar="BUCKET")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print the admin API's JSON answer.")
@click.pass_context
def bucket_inspect_object(ctx: click.Context, bucket_name: str, key: str,
                          as_json: bool) -> None:
    """Show the internal state of an object: every version, its state, size, ETag,
    headers and data blocks."""
    bucket_id = bucket_info(ctx, bucket_name)["id"]
    res = client(ctx).call("InspectObject", query={"bucketId": bucket_id, "key": key})
    click.echo(json.dumps(res, indent=2) if as_json else render_object(res))
