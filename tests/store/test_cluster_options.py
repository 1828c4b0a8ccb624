"""Shards and replicas of snapshot collections on a Qdrant server (SNAPDEX_QDRANT_SHARDS / _REPLICAS)."""

from __future__ import annotations

import pytest

from store import ClientStore


class RecordingClient:
    """Stands in for a Qdrant cluster, which this machine cannot run: records what creating a collection asks."""

    init_options = {"url": "http://qdrant:6333"}

    def __init__(self) -> None:
        self.created: dict = {}

    def collection_exists(self, name: str) -> bool:
        return False

    def create_collection(self, name: str, **kwargs) -> None:
        self.created[name] = kwargs

    def create_payload_index(self, *args, **kwargs) -> None:
        pass


def test_collections_are_created_with_the_configured_shards_and_replicas():
    client = RecordingClient()
    ClientStore(client, shards=3, replicas=2).create_collection("snap-a", 8)
    ClientStore(client).create_collection("snap-b", 8)
    assert client.created["snap-a"]["shard_number"] == 3 and client.created["snap-a"]["replication_factor"] == 2
    assert "shard_number" not in client.created["snap-b"] and "replication_factor" not in client.created["snap-b"]


@pytest.mark.docker
def test_a_real_server_reports_the_shards(qdrant_server):
    store = ClientStore(qdrant_server.get_client(), shards=2)
    store.create_collection("snap-sharded", 8)
    try:
        assert store.client.get_collection("snap-sharded").config.params.shard_number == 2
    finally:
        store.delete_collection("snap-sharded")
