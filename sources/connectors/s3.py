"""`s3`: a bucket (and a key prefix) on any S3-compatible endpoint, through boto3.

An item is an object whose key (past the prefix) the globs select; its version is its ETag and size, so a listing
reads no object. With no keys in the config the requests go unsigned (a public bucket): the service's own AWS
identity (its environment, an instance role) is never lent to a tenant's source. An endpoint that resolves to a
private address is refused unless SNAPDEX_SOURCE_ALLOW_PRIVATE (a MinIO on the internal network).
"""

from __future__ import annotations

from typing import ClassVar, Iterator

from pydantic import Field, field_validator

from notify.urls import check_public_url
from sources.connectors.base import (Globs, Item, ItemFailed, Known, Limits, SourceError, SourceUnreachable,
                                     read_limited)

ALLOW_PRIVATE = "SNAPDEX_SOURCE_ALLOW_PRIVATE"


class S3Config(Globs):
    SECRETS: ClassVar[tuple[str, ...]] = ("secret_access_key", "session_token")

    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.\-]*[a-z0-9]$")
    prefix: str = Field(default="", max_length=1024, description="only keys that start with it")
    endpoint_url: str | None = Field(default=None, max_length=2048, description=(
        "an S3-compatible endpoint (MinIO, Ceph, R2...); default: AWS"))
    region: str = Field(default="us-east-1", min_length=1, max_length=64, pattern=r"^[a-z0-9\-]+$")
    path_style: bool | None = Field(default=None, description=(
        "address the bucket in the path (https://host/bucket/key); default: when endpoint_url is set"))
    access_key_id: str | None = Field(default=None, min_length=1, max_length=256)
    secret_access_key: str | None = Field(default=None, min_length=1, max_length=1024,
                                          description="sealed at rest, never shown")
    session_token: str | None = Field(default=None, min_length=1, max_length=4096,
                                      description="sealed at rest, never shown")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("a key prefix holds no NUL")
        return v


def _endpoint(config: S3Config, limits: Limits) -> None:
    if config.endpoint_url is not None:
        try:
            check_public_url(config.endpoint_url, limits.allow_private, "s3 endpoint_url", ALLOW_PRIVATE)
        except ValueError as e:
            raise SourceError(str(e)) from e


def check(config: S3Config, limits: Limits) -> None:
    _endpoint(config, limits)
    if (config.access_key_id is None) != (config.secret_access_key is None):
        raise SourceError("s3 access_key_id and secret_access_key go together: give both, or neither (a public "
                          "bucket, read unsigned)")


_UNREACHABLE = ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError",
                "ConnectionError", "ProxyConnectionError")


def _problem(e: Exception) -> str:
    """A boto error in one line, without anything it was called with besides the bucket and key."""
    from botocore.exceptions import ClientError

    if isinstance(e, ClientError):
        err = e.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".strip().rstrip(":")
    return f"{type(e).__name__}: {e}"


class S3Session:
    def __init__(self, config: S3Config, limits: Limits) -> None:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        _endpoint(config, limits)  # again: DNS may point elsewhere now
        self.config, self.limits = config, limits
        self.incomplete: list[str] = []
        path_style = config.path_style if config.path_style is not None else config.endpoint_url is not None
        options = Config(connect_timeout=limits.timeout_s, read_timeout=limits.timeout_s,
                         retries={"max_attempts": 2, "mode": "standard"},
                         s3={"addressing_style": "path" if path_style else "auto"},
                         signature_version=UNSIGNED if config.access_key_id is None else None)
        # A session of its own: nothing of the host's AWS configuration (profiles, environment) is read for keys.
        session = boto3.session.Session(aws_access_key_id=config.access_key_id,
                                        aws_secret_access_key=config.secret_access_key,
                                        aws_session_token=config.session_token, region_name=config.region)
        self.client = session.client("s3", endpoint_url=config.endpoint_url, config=options)
        self.where = f"s3://{config.bucket}/{config.prefix}"

    def _raise(self, e: Exception, what: str):
        from botocore.exceptions import BotoCoreError, ClientError

        if type(e).__name__ in _UNREACHABLE or (isinstance(e, BotoCoreError) and not isinstance(e, ClientError)):
            raise SourceUnreachable(f"{self.where} did not answer {what}: {_problem(e)}") from e
        raise SourceError(f"{self.where} refused {what}: {_problem(e)}") from e

    def list(self, known: dict[str, Known]) -> Iterator[Item]:
        count = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.config.bucket,
                                                                      Prefix=self.config.prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    rel = key[len(self.config.prefix):]
                    if key.endswith("/") or not self.config.wants(rel):
                        continue  # a "folder" marker, or not selected
                    count += 1
                    if count > self.limits.max_items:
                        raise SourceError(f"{self.where} holds more than {self.limits.max_items} items "
                                          "(SNAPDEX_SOURCE_MAX_ITEMS): narrow it with a prefix or include/exclude")
                    size = int(obj.get("Size", 0))
                    yield Item(key, f"s3://{self.config.bucket}/{key}", key, version=f"{obj.get('ETag', '')}:{size}",
                               size=size, modified=obj["LastModified"].timestamp() if obj.get("LastModified") else None)
        except SourceError:
            raise
        except Exception as e:
            self._raise(e, "the listing")

    def read(self, item: Item) -> bytes:
        from botocore.exceptions import ClientError

        if item.size is not None and item.size > self.limits.max_item_bytes:
            raise ItemFailed(f"{item.key} is larger than {self.limits.max_item_bytes} bytes (SNAPDEX_MAX_UPLOAD_BYTES)")
        try:
            body = self.client.get_object(Bucket=self.config.bucket, Key=item.key)["Body"]
            try:
                return read_limited(body, self.limits.max_item_bytes, item.key)
            finally:
                body.close()
        except ItemFailed:
            raise
        except ClientError as e:
            raise ItemFailed(_problem(e)) from e
        except Exception as e:
            self._raise(e, f"reading {item.key}")

    def close(self) -> None:
        self.client.close()
