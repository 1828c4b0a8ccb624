"""Shards and replicas of snapshot collections on a Qdrant server (SNAPDEX_QDRANT_SHARDS / _REPLICAS)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from store import ClientStore, SparseVector
from store.base import DENSE
from store.common import DenseIndex


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


class RecordingServer(RecordingClient):
    """Also records what searching asks, and describes a collection as a server would: by its metadata."""

    def __init__(self, metadata: dict | None = None) -> None:
        super().__init__()
        self.metadata, self.searches = metadata, []

    def get_collection(self, name: str):
        return SimpleNamespace(config=SimpleNamespace(metadata=self.metadata))

    def query_points(self, name: str, **kwargs):
        self.searches.append(kwargs)
        return SimpleNamespace(points=[])


def test_a_server_collection_gets_the_dense_graph_and_its_searches_the_graphs_ef():
    index = DenseIndex(m=24, ef_construct=150, ef=96)
    client = RecordingServer()
    store = ClientStore(client)
    store.create_collection("snap-graph", 8, dense_index=index)
    store.create_collection("snap-exact", 8)
    dense = client.created["snap-graph"]["vectors_config"][DENSE]
    assert (dense.hnsw_config.m, dense.hnsw_config.ef_construct) == (24, 150)
    assert client.created["snap-graph"]["metadata"] == {"snapdex_dense": index.canonical()}
    assert client.created["snap-exact"]["vectors_config"][DENSE].hnsw_config is None
    assert client.created["snap-exact"]["metadata"] is None
    store.search_dense("snap-graph", [0.1] * 8, 5)
    store.search_hybrid("snap-graph", [0.1] * 8, SparseVector([1], [1.0]), 5, 20)
    store.search_dense("snap-exact", [0.1] * 8, 5)
    graph_dense, hybrid, exact = client.searches
    assert graph_dense["search_params"].hnsw_ef == 96 and not graph_dense["search_params"].exact
    assert hybrid["prefetch"][0].params.hnsw_ef == 96 and hybrid["prefetch"][1].params is None
    assert exact["search_params"].exact
    # A collection this process did not make is described by the server: its metadata names the graph.
    other = ClientStore(RecordingServer({"snapdex_dense": index.canonical()}))
    assert other.dense_index("snap-graph") == index
    assert ClientStore(RecordingServer(None)).dense_index("snap-old") is None
