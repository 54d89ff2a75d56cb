"""`Cluster`: one store's indices on an Elasticsearch cluster. The client and its errors,
bulk writes with bounded retries, optimistic read-modify-write and paged reads: what the
store (store.py), the outbox and the reports are written with."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout, TlsError, TransportError
from elasticsearch import (
    ApiError,
    AuthenticationException,
    AuthorizationException,
    Elasticsearch,
    NotFoundError,
)
from elasticsearch.helpers import streaming_bulk
from elasticsearch.serializer import OrjsonSerializer

from pipeline.errors import StoreError
from pipeline.store.elasticsearch import lifecycle
from pipeline.store.elasticsearch.schema import KINDS, PAGE, action, mapping, public, reason

if TYPE_CHECKING:
    pass

Action = tuple[bytes, bytes | None]
_T = TypeVar("_T")
_OCC_ATTEMPTS = 5


class Cluster:
    """The indices `{prefix}-*` at `url`, through one client (thread-safe)."""

    def __init__(
        self,
        url: str,
        prefix: str,
        options: dict[str, Any],
        *,
        bulk_size: int = 5000,
        bulk_threads: int = 4,
        read_slices: int = 2,
        max_retries: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.url = url.rstrip("/")
        self.prefix = prefix
        self.options = options  # client keyword arguments, credentials included: never log
        self.bulk_size = bulk_size
        self.bulk_threads = bulk_threads
        self.read_slices = read_slices
        self.max_retries = max_retries
        self.backoff = backoff  # first wait before a bulk retry; doubles each time
        self._client: Elasticsearch | None = None
        self._ready: set[str] = set()  # indices known to exist
        self.ilm = False  # ILM manages the event indices (set by lifecycle.install)

    def connect(self) -> None:
        # orjson parses search responses several times faster than the stdlib
        self._client = Elasticsearch(self.url, serializer=OrjsonSerializer(), **self.options)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def index(self, kind: str) -> str:
        """The index of `kind` (one of `schema.KINDS`), or for "events" the pattern over
        the monthly indices."""
        return f"{self.prefix}-events-*" if kind == "events" else f"{self.prefix}-{kind}"

    @property
    def client(self) -> Elasticsearch:
        if self._client is None:
            raise StoreError("store is not open; call open() first")
        return self._client

    def ensure(self, index: str) -> None:
        """Create `index` unless it exists (another process may be creating it now): a
        kind's index with its mapping, a month's from the events template."""
        if index in self._ready:
            return
        kind = index[len(self.prefix) + 1 :]
        options: dict[str, Any] = {}
        if kind in KINDS:
            options = {"mappings": mapping(KINDS[kind]), "settings": {"number_of_shards": 1}}
        elif self.ilm and kind.startswith("events-"):
            options = {"settings": lifecycle.month_settings(index)}
        try:
            self.client.indices.create(index=index, **options)
        except ApiError as exc:
            if exc.error != "resource_already_exists_exception":
                raise
        self._ready.add(index)

    def forget(self, index: str) -> None:
        """`index` was deleted: the next write creates it again."""
        self._ready.discard(index)

    @contextmanager
    def explained(self, doing: str) -> Iterator[None]:
        """Client errors -> StoreError naming the URL and the fix, never a credential."""
        where = f"Elasticsearch at {public(self.url)}"
        try:
            yield
        except AuthenticationException as exc:
            raise StoreError(
                f"{where} refused the credentials while {doing} (401); set `store.username` "
                "and the variable `store.password_env` names, or `store.api_key_env`, to valid "
                "credentials"
            ) from exc
        except AuthorizationException as exc:
            raise StoreError(
                f"{where} denied {doing} (403: {reason(exc)}); grant the user read/write on "
                f"indices {self.prefix}-* and manage_index_templates"
            ) from exc
        except TlsError as exc:
            raise StoreError(
                f"TLS to {where} failed while {doing} ({exc.message}); set `store.ca_certs` "
                "to the cluster's CA certificate"
            ) from exc
        except TransportConnectionError as exc:
            raise StoreError(
                f"cannot reach {where} while {doing} ({exc.message}); start it (e.g. "
                "`scripts/services start elasticsearch`) or point `store.url` at a running "
                "cluster"
            ) from exc
        except ConnectionTimeout as exc:
            raise StoreError(
                f"{where} did not answer in time while {doing}; check the cluster's health or "
                "raise `store.request_timeout`"
            ) from exc
        except ApiError as exc:
            hint = "; the cluster is overloaded, retry later" if exc.status_code == 429 else ""
            raise StoreError(
                f"{where} failed {doing}: {exc.status_code} {reason(exc)}{hint}"
            ) from exc
        except TransportError as exc:
            raise StoreError(f"{where} failed {doing}: {exc.message}") from exc

    # -- documents -----------------------------------------------------------------------
    def get(self, kind: str, doc_id: str) -> dict[str, Any] | None:
        """The _source of one document (realtime: no refresh needed), None if missing."""
        try:
            source: dict[str, Any] = self.client.get(index=self.index(kind), id=doc_id)["_source"]
            return source
        except NotFoundError:
            return None

    def mget(self, index: str, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Each id's document (with `_seq_no`, `_primary_term` and `_source`), None where
        missing, also when the index does not exist yet."""
        found: list[dict[str, Any] | None] = []
        for start in range(0, len(ids), PAGE):
            docs = self.client.mget(index=index, ids=list(ids[start : start + PAGE]))["docs"]
            for doc in docs:
                error = doc.get("error")
                if error and error.get("type") != "index_not_found_exception":
                    raise StoreError(f"reading {doc['_id']!r} from {index} failed: {error}")
                found.append(doc if doc.get("found") else None)
        return found

    def rewrite(
        self,
        kind: str,
        ids: Sequence[str],
        change: Callable[[str, dict[str, Any] | None], dict[str, Any] | None],
    ) -> int:
        """Read-modify-write with optimistic concurrency, the store's stand-in for an SQL
        UPDATE: `change(id, stored _source or None)` gives the new _source, or None to
        leave the document be. One changed by someone else in between is read and changed
        again (a few times at most). Returns how many were written; refreshes after."""
        index, todo, written = self.index(kind), list(dict.fromkeys(ids)), 0
        self.ensure(index)
        for _ in range(_OCC_ATTEMPTS):
            actions = []
            for doc_id, doc in zip(todo, self.mget(index, todo), strict=True):
                new = change(doc_id, doc["_source"] if doc else None)
                if new is None:
                    continue
                if doc is None:
                    actions.append(action("create", index, doc_id, new))
                else:
                    actions.append(
                        action(
                            "index",
                            index,
                            doc_id,
                            new,
                            if_seq_no=doc["_seq_no"],
                            if_primary_term=doc["_primary_term"],
                        )
                    )
            items = self.bulk_checked(actions, accept=(409,)) if actions else []
            written += sum(1 for i in items if i["status"] < 300)
            todo = [i["_id"] for i in items if i["status"] == 409]
            if not todo:
                self.refresh({index})
                return written
        raise StoreError(
            f"{len(todo)} documents in {index} kept changing while being updated, e.g. "
            f"{todo[0]!r}; retry"
        )

    # -- bulk ----------------------------------------------------------------------------
    def bulk(self, actions: list[Action]) -> list[dict[str, Any]]:
        """Send actions in `bulk_size` requests, `bulk_threads` at a time; return one result
        item per action (in no particular order). Items rejected with 429 are retried with
        exponential backoff, `max_retries` times, then reported like any failed item; a
        request that fails on the connection (after the client's own immediate retries) is
        sent again the same way. Resending is safe: events are create-only by id, so one
        stored before the failure answers 409 and counts as already there."""
        chunks = [actions[i : i + self.bulk_size] for i in range(0, len(actions), self.bulk_size)]
        if len(chunks) <= 1:
            return [item for chunk in chunks for item in self._bulk_chunk(chunk)]
        with ThreadPoolExecutor(min(self.bulk_threads, len(chunks))) as pool:
            return [item for items in pool.map(self._bulk_chunk, chunks) for item in items]

    def _bulk_chunk(self, chunk: list[Action]) -> list[dict[str, Any]]:
        attempt = 0
        while True:
            try:
                return self._bulk_once(chunk)
            except (TransportConnectionError, ConnectionTimeout):
                if attempt >= self.max_retries:
                    raise
                time.sleep(self.backoff * 2**attempt)
                attempt += 1

    def _bulk_once(self, chunk: list[Action]) -> list[dict[str, Any]]:
        # streaming_bulk is annotated for dict headers only; ours are serialized already
        # (schema.action), and its serializer sends bytes as they are.
        results = streaming_bulk(
            self.client,
            chunk,  # type: ignore[arg-type]
            chunk_size=len(chunk),
            expand_action_callback=_as_is,  # type: ignore[arg-type]
            raise_on_error=False,
            max_retries=self.max_retries,
            initial_backoff=self.backoff,
            max_backoff=self.backoff * 2**self.max_retries,
            filter_path="errors,items.*._id,items.*._index,items.*.status,items.*.error",
        )
        return [next(iter(info.values())) for _, info in results]

    def bulk_checked(
        self, actions: list[Action], accept: tuple[int, ...] = ()
    ) -> list[dict[str, Any]]:
        """`bulk`, raising StoreError for any item that failed with a status not in
        `accept` (409 "already there", say)."""
        items = self.bulk(actions)
        failed = [i for i in items if i["status"] >= 300 and i["status"] not in accept]
        if failed:
            first = failed[0]
            error = first.get("error") or {}
            hint = (
                f" after {self.max_retries} retries; the cluster is overloaded, retry later"
                if first["status"] == 429
                else ""
            )
            raise StoreError(
                f"Elasticsearch at {public(self.url)} refused {len(failed)} of {len(items)} "
                f"documents, e.g. {first['_id']!r} in {first['_index']}: {first['status']} "
                f"{error.get('type', '')}: {error.get('reason', '')}{hint}"
            )
        return items

    def refresh(self, indices: set[str]) -> None:
        """Make what was just written visible to searches: an explicit refresh is faster
        than `refresh=wait_for`, which waits for the next scheduled one."""
        if indices:
            self.client.indices.refresh(index=",".join(sorted(indices)), ignore_unavailable=True)

    # -- searches ------------------------------------------------------------------------
    def pages(
        self,
        index: str,
        where: dict[str, Any],
        sort: list[dict[str, Any]],
        limit: int | None = None,
        source: bool | list[str] = True,
    ) -> Iterator[list[dict[str, Any]]]:
        """Hits in `sort` order, a page at a time: one request when `limit` fits a page,
        else search_after over a point in time, so pages stay consistent while others
        write. A missing index has no hits."""
        common: dict[str, Any] = {
            "query": where,
            "sort": sort,
            "source": source,
            "track_total_hits": False,
            "filter_path": "pit_id,hits.hits._id,hits.hits._source,hits.hits.sort",
        }
        if limit is not None and limit <= PAGE:
            if limit > 0:
                yield (
                    self.client.search(
                        index=index,
                        size=limit,
                        allow_no_indices=True,
                        ignore_unavailable=True,
                        **common,
                    )
                    .body.get("hits", {})
                    .get("hits", [])
                )
            return
        if not self.client.indices.exists(index=index, allow_no_indices=False):
            return
        with self._point_in_time(index) as pit:
            yield from self._after(pit, common, limit)

    def sliced(
        self,
        index: str,
        where: dict[str, Any],
        sort: list[dict[str, Any]],
        slices: int,
        read: Callable[[list[dict[str, Any]]], _T],
    ) -> list[_T]:
        """`read(page)` for every page of hits, in no particular order: `slices` parts of
        one point in time read in parallel, each in `sort` order (so the caller sorts)."""
        if not self.client.indices.exists(index=index, allow_no_indices=False):
            return []
        common = {
            "query": where,
            "sort": sort,
            "track_total_hits": False,
            "filter_path": "pit_id,hits.hits._source,hits.hits.sort",
        }
        with self._point_in_time(index) as pit, ThreadPoolExecutor(slices) as pool:
            parts = pool.map(
                lambda n: [
                    read(hits)
                    for hits in self._after(
                        pit,
                        {**common, "slice": {"id": n, "max": slices}} if slices > 1 else common,
                        None,
                    )
                ],
                range(slices),
            )
            return [done for part in parts for done in part]

    @contextmanager
    def _point_in_time(self, index: str) -> Iterator[str]:
        pit = self.client.open_point_in_time(index=index, keep_alive="2m", ignore_unavailable=True)[
            "id"
        ]
        try:
            yield pit
        finally:
            self.client.close_point_in_time(id=pit)

    def _after(
        self, pit: str, common: dict[str, Any], limit: int | None
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of one point in time, search_after the last hit of the page before."""
        left, after = limit, None
        while left is None or left > 0:
            size = PAGE if left is None else min(PAGE, left)
            extra: dict[str, Any] = {"search_after": after} if after is not None else {}
            body = self.client.search(
                pit={"id": pit, "keep_alive": "2m"}, size=size, **common, **extra
            ).body
            hits = body.get("hits", {}).get("hits", [])
            if hits:
                yield hits
            if len(hits) < size:
                return
            after = hits[-1]["sort"]
            if left is not None:
                left -= len(hits)

    def sources(
        self,
        kind: str,
        where: dict[str, Any],
        sort: list[dict[str, Any]],
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return [
            h["_source"] for hits in self.pages(self.index(kind), where, sort, limit) for h in hits
        ]


def _as_is(item: Action) -> Action:
    return item
