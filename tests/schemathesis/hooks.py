"""Schemathesis hooks for the showpass api: what the OpenAPI document cannot say.

- A cursor is a token the server signs: one generated from its pattern cannot be valid. A
  cursor that matches the documented pattern is replaced by a real one, from the first page of
  the same listing with the same filters (or dropped when that listing has one page), so the
  request stays schema-valid and is one a client could really send. A cursor that does not
  match the pattern is left alone: the server must refuse it.
- `to` must not be before `from`: a relation between two parameters. When both read as times
  and are not clearly in order, `to` is made equal to `from`.

The api's URL and key come from SHOWPASS_API_URL and SHOWPASS_API_KEY.
"""

import json
import os
import re
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

import schemathesis

CURSOR = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
MAX_CURSOR = 4096  # crates/api/src/page.rs, and the document's maxLength


def _real_cursor(path, query):
    others = {k: v for k, v in query.items() if k != "cursor"}
    others["limit"] = 1
    url = os.environ["SHOWPASS_API_URL"].rstrip("/") + path + "?" + urllib.parse.urlencode(others)
    request = urllib.request.Request(
        url, headers={"Authorization": "Bearer " + os.environ["SHOWPASS_API_KEY"]}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer).get("next_cursor")
    except Exception:
        return None


def _instant(text):
    """A `from`/`to` value as a UTC instant, or None when it does not parse."""
    text = str(text).strip()
    try:
        if len(text) == 10:
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    query = case.query
    if not query:
        return
    cursor = query.get("cursor")
    if isinstance(cursor, str) and len(cursor) <= MAX_CURSOR and CURSOR.match(cursor):
        real = _real_cursor(case.operation.path, query)
        if real:
            query["cursor"] = real
        else:
            del query["cursor"]
    if "from" in query and "to" in query:
        start, end = _instant(query["from"]), _instant(query["to"])
        # Only two values that both read as times: rewriting an invalid one would turn a
        # case meant to be refused into one meant to be accepted.
        if start is not None and end is not None:
            try:
                # Days may be counted in any zone (14 h either way): only a clear order stands.
                clear = end - start >= timedelta(days=2)
            except TypeError:
                clear = False
            if not clear:
                query["to"] = query["from"]
