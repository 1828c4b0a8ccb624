"""LlamaIndex over snapdex: `SnapdexRetriever` (also importable from snapdex.client, where it used to live)."""

from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from snapdex.client import AsyncClient, Client
from wire.retrieve import RetrieveResponse


# Ids a node carries for feedback (SnapdexRetriever.feedback), kept out of the text the LLM and an embedder are given.
FOR_FEEDBACK_ONLY = {"excluded_llm_metadata_keys": ["request_id", "chunk_id"],
                     "excluded_embed_metadata_keys": ["request_id", "chunk_id"]}


def nodes_of(answer: RetrieveResponse):
    """An answer as LlamaIndex nodes: its context passages when it has a context block (each scored by the best
    hit of its document), else its hits; each node's metadata carries its citation and place in the document."""
    if answer.context is not None:
        best: dict[str, float] = {}
        for h in answer.hits:
            best.setdefault(h.doc_id, h.score)
        return [NodeWithScore(node=TextNode(
            id_=f"{answer.snapshot[:12]}:{p.doc_id}:{p.start}:{p.end}", text=p.text,
            metadata={"citation": p.citation, "doc_id": p.doc_id, "title": p.title, "start": p.start, "end": p.end,
                      "pages": p.pages, "headings": p.headings, "tokens": p.tokens, "snapshot": answer.snapshot,
                      "request_id": answer.request_id}, **FOR_FEEDBACK_ONLY),
            score=best.get(p.doc_id)) for p in answer.context.passages]
    return [NodeWithScore(node=TextNode(
        id_=h.chunk_id, text=h.text,
        metadata={"citation": f"[{i}]", "doc_id": h.doc_id, "title": h.sources[0].title if h.sources else None,
                  "start": h.start, "end": h.end, "pages": h.pages, "headings": h.headings,
                  "snapshot": answer.snapshot, "chunk_id": h.chunk_id, "request_id": answer.request_id},
        **FOR_FEEDBACK_ONLY), score=h.score) for i, h in enumerate(answer.hits, 1)]


def signals_of(nodes, signal: str) -> list[dict]:
    """Feedback signals on nodes of an answer: a hit's node by its chunk, a context passage's by its document."""
    out = []
    for n in nodes:
        meta = getattr(n, "node", n).metadata
        out.append({"chunk_id": meta["chunk_id"], "signal": signal} if meta.get("chunk_id")
                   else {"doc_id": meta["doc_id"], "signal": signal})
    return out


class SnapdexRetriever(BaseRetriever):
    """A LlamaIndex retriever over snapdex, so a chat engine uses it in one line:
    `CondensePlusContextChatEngine.from_defaults(SnapdexRetriever(Client(url, api_key)))`. With `context`
    ({"max_tokens": ..., "expand": ...}) the nodes are the context block's cited passages, else the hits."""

    def __init__(self, client: Client | AsyncClient, top_k: int = 5, context: dict | None = None,
                 filters: dict | None = None) -> None:
        super().__init__()
        self.client, self.top_k, self.context, self.filters = client, top_k, context, filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if isinstance(self.client, AsyncClient):
            raise TypeError("a retriever on an AsyncClient answers aretrieve(); give it a Client for retrieve()")
        return nodes_of(self.client.retrieve(query_bundle.query_str, self.top_k, self.filters, context=self.context))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if isinstance(self.client, AsyncClient):
            return nodes_of(await self.client.retrieve(query_bundle.query_str, self.top_k, self.filters,
                                                       context=self.context))
        return self._retrieve(query_bundle)

    def feedback(self, nodes, signal: str = "cited", helpful: bool | None = None, request_id: str | None = None):
        """Report `signal` on `nodes` (NodeWithScore or nodes of one answer this retriever gave: the ones the model
        cited, say) and whether the answer helped; the answer is the nodes' own (their `request_id`) unless given.
        On an AsyncClient, await the result."""
        nodes = list(nodes)
        ids = {getattr(n, "node", n).metadata.get("request_id") for n in nodes} - {None}
        if request_id is None:
            if len(ids) != 1:
                raise ValueError(f"nodes of {len(ids)} answers: give the request_id of the one to report on"
                                 if ids else "no nodes, or none of a snapdex answer: give the request_id")
            request_id = ids.pop()
        return self.client.feedback(request_id, signals_of(nodes, signal), helpful)
