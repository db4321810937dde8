"""PATCH bodies: JSON merge patch (RFC 7386) and JSON patch (RFC 6902).

Strategic merge patch is applied as a merge patch: lists are replaced whole rather than merged by
their patchMergeKey. Server-side apply (application/apply-patch+yaml) is not implemented.
"""

import copy

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"


class PatchError(ValueError):
    """A patch that cannot be applied (the apiserver answers 422 or 400)."""


def merge_patch(target, patch):
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, parts, path):
    cur = doc
    for part in parts[:-1]:
        if isinstance(cur, list):
            cur = cur[_index(cur, part, path, False)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur


def _index(lst, part, path, allow_end):
    if part == "-" and allow_end:
        return len(lst)
    try:
        idx = int(part)
    except ValueError:
        raise PatchError(f"invalid array index {part!r} in {path!r}") from None
    if not 0 <= idx <= len(lst) - (0 if allow_end else 1):
        raise PatchError(f"array index out of bounds in {path!r}")
    return idx


def _get(doc, path):
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        return parent[_index(parent, parts[-1], path, False)]
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise PatchError(f"doc is missing path: {path!r}")
    return parent[parts[-1]]


def _remove(doc, path):
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        return parent.pop(_index(parent, parts[-1], path, False))
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise PatchError(f"doc is missing path: {path!r}")
    return parent.pop(parts[-1])


def _add(doc, path, value, replace=False):
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    if isinstance(parent, list):
        idx = _index(parent, parts[-1], path, not replace)
        if replace:
            parent[idx] = value
        else:
            parent.insert(idx, value)
    elif isinstance(parent, dict):
        if replace and parts[-1] not in parent:
            raise PatchError(f"doc is missing key: {path!r}")
        parent[parts[-1]] = value
    else:
        raise PatchError(f"cannot add into a scalar at {path!r}")
    return doc


def json_patch(target, ops):
    """RFC 6902 operations add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for n, op in enumerate(ops):
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"operation {n} needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"operation {n} ({kind}) needs 'value'")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op["value"]), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            value = _remove(doc, op.get("from", "")) if kind == "move" else copy.deepcopy(_get(doc, op.get("from", "")))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path!r} failed")
        else:
            raise PatchError(f"unknown operation {kind!r} in operation {n}")
    return doc


def apply(content_type, target, patch):
    """Apply a PATCH body of the given media type; raises PatchError or ValueError on bad input."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in (MERGE, STRATEGIC):
        if not isinstance(patch, dict):
            raise PatchError("a merge patch must be a JSON object")
        return merge_patch(target, patch)
    if media == JSON_PATCH:
        return json_patch(target, patch)
    raise ValueError(media)
