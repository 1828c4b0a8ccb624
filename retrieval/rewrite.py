"""Query rewriters: a deterministic normaliser and an LLM that adds phrasings (multi-query) or a hypothetical answer (HyDE).

The LLM rewriter is an optional improvement on the way to a search, so it fails open: any trouble with the endpoint
gives back the query unchanged, with the reason in `notes`, and the search goes on.
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import OrderedDict

import httpx

from options import LLM_MODES
from retrieval.types import RewrittenQuery

# Format characters that render as nothing; pasted text carries them and they split BM25 tokens invisibly.
# Bidi marks and other Cf characters are left alone: they can matter for right-to-left text.
_ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff\u180e\u00ad")


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    out = []
    for ch in text:
        if ch.isspace():
            out.append(" ")
        elif ch in _ZERO_WIDTH or unicodedata.category(ch) == "Cc":
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


class NormalizeRewriter:
    """NFKC, whitespace collapsed, control and zero-width characters removed. Nothing else: punctuation and prefixes
    such as "Q:" stay, since guessing which ones are noise would change some queries' meaning."""

    name = "normalize"

    @classmethod
    def from_settings(cls, s) -> "NormalizeRewriter":
        return cls()

    def rewrite(self, query: str) -> RewrittenQuery:
        t = normalize_text(query)
        return RewrittenQuery(lexical=t, dense=(t,))

    def recipe(self) -> dict:
        return {"name": self.name, "form": "NFKC"}


MODES = LLM_MODES
MAX_N_QUERIES = 8
CACHE_SIZE = 1024

_MULTI_QUERY_PROMPT = (
    "You rewrite search queries for a document retrieval system. Given the user's query, write {n} alternative "
    "phrasings that keep its meaning but use different words: synonyms, expanded abbreviations, related technical "
    "terms. Output exactly {n} lines, one phrasing per line, with no numbering, no explanation and no other text."
)
_HYDE_PROMPT = (
    "Write a short passage, two to four sentences, that answers the user's query as a reference document would. "
    "Output only the passage, with no preamble."
)

# "1." "2)" "(3)" "- " "* " "• " at a line's start; the model is told not to number, and often does anyway.
# The marker needs whitespace after it, so "1.5 GHz clock" or "-based" keep their first characters.
_LIST_MARKER = re.compile(r"^\s*(?:[-*•+]|\(?\d{1,2}[.):])\s+")
_QUOTES = "\"'“”‘’`"


class _ReplyError(Exception):
    """The endpoint answered, but not with something we can use; the message goes into notes["error"]."""


def parse_alternatives(content: str, query: str, n: int) -> list[str]:
    seen = {_dedup_key(query)}
    out: list[str] = []
    for line in content.splitlines():
        line = _LIST_MARKER.sub("", line).strip()
        if len(line) >= 2 and line[0] in _QUOTES and line[-1] in _QUOTES:
            line = line[1:-1].strip()
        line = " ".join(line.split())
        # A preamble ("Here are three phrasings:") or a code fence would only add noise terms to the BM25 leg.
        if not any(c.isalnum() for c in line) or line.endswith(":"):
            continue
        key = _dedup_key(line)
        if key in seen:
            continue
        seen.add(key)
        out.append(line)
        if len(out) == n:
            break
    return out


def _dedup_key(text: str) -> str:
    return " ".join(text.casefold().split())


class LLMRewriter:
    """Rewrites through any OpenAI-compatible chat-completions endpoint.

    multi_query: `lexical` is the query followed by `n_queries` alternative phrasings (BM25 sees the new terms), `dense`
    is the query and the phrasings. hyde: `lexical` is the query, `dense` the query and a passage that would answer it.

    `timeout_s` bounds each phase of the request (connect, write, each read), as httpx timeouts do, not the total.
    Successful rewrites are cached in-process by (mode, model, query); failures are not, so the next call retries.
    Safe to share between threads.
    """

    name = "llm"

    @classmethod
    def from_settings(cls, s) -> "LLMRewriter":
        return cls(s.llm_base_url, s.llm_model, s.llm_api_key, mode=s.llm_mode, timeout_s=s.llm_timeout_s)

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        mode: str = "multi_query",
        n_queries: int = 3,
        timeout_s: float = 2.0,
        client: httpx.Client | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}")
        if isinstance(n_queries, bool) or not isinstance(n_queries, int) or not 1 <= n_queries <= MAX_N_QUERIES:
            raise ValueError(f"n_queries={n_queries!r} is out of range [1, {MAX_N_QUERIES}]")
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not (
            timeout_s > 0 and math.isfinite(timeout_s)
        ):
            raise ValueError(f"timeout_s={timeout_s!r} must be a positive number of seconds")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url={base_url!r} must start with http:// or https://")
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model={model!r} must be a non-empty string")

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.mode = mode
        self.n_queries = n_queries
        self.timeout_s = float(timeout_s)
        self._url = f"{self.base_url}/chat/completions"
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=self.timeout_s)
        self._cache: OrderedDict[tuple[str, str, str], RewrittenQuery] = OrderedDict()
        self._lock = threading.Lock()

    def rewrite(self, query: str) -> RewrittenQuery:
        if not query.strip():
            # Nothing for a model to rephrase; a call would only cost latency.
            return RewrittenQuery(lexical=query, dense=(query,), notes={"mode": self.mode, "n": 0})

        key = (self.mode, self.model, query)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            # A fresh notes dict, so a caller that edits its notes cannot change what later callers get.
            return RewrittenQuery(lexical=hit.lexical, dense=hit.dense, notes=dict(hit.notes))

        try:
            content = self._complete(query)
            result = self._build(query, content)
        except httpx.TimeoutException:
            return self._fallback(query, "timeout")
        except httpx.HTTPStatusError as e:
            return self._fallback(query, f"http {e.response.status_code}")
        except httpx.HTTPError as e:
            return self._fallback(query, f"connection error: {type(e).__name__}")
        except _ReplyError as e:
            return self._fallback(query, str(e))
        except Exception as e:  # noqa: BLE001 - a rewrite is optional; no failure of it may fail the search
            return self._fallback(query, f"unexpected error: {type(e).__name__}")

        with self._lock:
            self._cache[key] = result
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return RewrittenQuery(lexical=result.lexical, dense=result.dense, notes=dict(result.notes))

    def recipe(self) -> dict:
        return {
            "name": self.name,
            "mode": self.mode,
            "model": self.model,
            "base_url": _without_userinfo(self.base_url),
            "n_queries": self.n_queries,
            "timeout_s": self.timeout_s,
        }

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> LLMRewriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _complete(self, query: str) -> str:
        if self.mode == "multi_query":
            system = _MULTI_QUERY_PROMPT.format(n=self.n_queries)
        else:
            system = _HYDE_PROMPT
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": query}],
            "temperature": 0,
        }
        resp = self._client.post(self._url, json=body, headers=self._headers, timeout=self.timeout_s)
        resp.raise_for_status()
        try:
            data = resp.json()
        except ValueError:
            raise _ReplyError("malformed json") from None
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _ReplyError("malformed reply: no choices[0].message.content") from None
        if not isinstance(content, str):
            raise _ReplyError("malformed reply: content is not a string")
        if not content.strip():
            raise _ReplyError("empty reply")
        return content

    def _build(self, query: str, content: str) -> RewrittenQuery:
        if self.mode == "hyde":
            return RewrittenQuery(lexical=query, dense=(query, content.strip()), notes={"mode": self.mode, "n": 1})
        alternatives = parse_alternatives(content, query, self.n_queries)
        return RewrittenQuery(
            lexical=" ".join([query, *alternatives]),
            dense=(query, *alternatives),
            notes={"mode": self.mode, "n": len(alternatives)},
        )

    def _fallback(self, query: str, reason: str) -> RewrittenQuery:
        return RewrittenQuery(lexical=query, dense=(query,), notes={"error": reason, "fallback": True})


def _without_userinfo(url: str) -> str:
    # Recipes are stored with answers; a password written into the URL must not be.
    try:
        u = httpx.URL(url)
    except Exception:  # noqa: BLE001 - an unparsable URL has no userinfo to hide
        return url
    if not u.userinfo:
        return url
    return str(u.copy_with(username=None, password=None)).rstrip("/")
