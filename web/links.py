"""OpenAPI links: from each operation that creates or lists a resource to those taking its id.

One rule for every route, so that routes added later get their links without a list to keep:
a resource's collection is its path without ``/admin`` (``/api/admin/payments`` and
``/api/payments`` hold the same payments); an operation *takes* an id when its path is a
collection, one id parameter (``id``, or a name ending in ``Id``: ``/postbacks/{network}`` names
no row), and at most more words after it (``/api/payments/{id}/cancel``); an
operation *yields* ids when it is a list of the collection (``data/0/id``: the first one) or a
POST to the collection that creates one (``data/id``). A generated client and a stateful tester
(schemathesis) follow these from one answer to the next request.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from web.openapi import Operation

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\}")


def _collection(path: str) -> str:
    return path.replace("/admin/", "/", 1)


def _taker(op: Operation) -> tuple[str, str] | None:
    """(collection, parameter) of an operation whose path names one item, else None."""
    params = list(_PARAM.finditer(op.path))
    if len(params) != 1 or not (params[0].group(1) == "id" or params[0].group(1).endswith("Id")):
        return None  # ``/postbacks/{network}`` names no row
    collection = op.path[: params[0].start()].rstrip("/")
    return _collection(collection), params[0].group(1)


def _yields(op: Operation) -> tuple[str, str] | None:
    """(collection, JSON pointer of an id in the answer) of a creating or listing operation."""
    d = op.description
    if _PARAM.search(op.path) or d.response is None or "id" not in d.response.model_fields:
        return None
    if op.method == "GET" and d.list:
        return _collection(op.path), "/data/0/id"
    if op.method == "POST" and d.status in (201, 202) and not d.list:
        return _collection(op.path), "/data/id"
    return None


def add_links(ops: Iterable[Operation], paths: MutableMapping[str, Any]) -> None:
    """Add ``links`` to the success response of every operation that yields ids."""
    ops = list(ops)
    takers: dict[str, list[tuple[Operation, str]]] = {}
    for op in ops:
        taken = _taker(op)
        if taken is not None:
            takers.setdefault(taken[0], []).append((op, taken[1]))
    for op in ops:
        yielded = _yields(op)
        if yielded is None or yielded[0] not in takers:
            continue
        collection, pointer = yielded
        links = {
            target.operation_id: {
                "operationId": target.operation_id,
                "parameters": {param: f"$response.body#{pointer}"},
                "description": f"{target.operation_id} with the {param} of "
                               f"{'the first item' if op.description.list else 'the new item'}",
            }
            for target, param in takers[collection]
        }
        path = _PARAM.sub(lambda m: "{" + m.group(1) + "}", op.path)
        response = paths[path][op.method.lower()]["responses"][str(op.description.status)]
        response["links"] = dict(sorted(links.items()))
