"""Addresses an author attaches to an entry (paper, code): checked before they are stored.

They end up as ``href`` attributes on public pages, so only ``http``/``https`` addresses of
printable ASCII (an internationalized host is written in punycode), with a host, without
credentials and at most ``MAX_LINK_CHARS`` long are taken; pages still escape them and mark
them ``rel="nofollow noopener"``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["LINK_FIELDS", "MAX_LINK_CHARS", "link_problem"]

MAX_LINK_CHARS = 500
"""The longest paper or code address stored (the column's width)."""

# Printable ASCII that RFC 3986 never allows unescaped (and that HTML and shells treat as
# special).
_NOT_IN_URLS = frozenset('"<>\\^`{|}')

LINK_FIELDS: tuple[str, ...] = ("paper_url", "code_url")
"""The entry's link fields, as the API and the store name them."""


def link_problem(url: str) -> str | None:
    """What is wrong with an entry link (``"expected ..., found ..."``), or None when fine."""
    if len(url) > MAX_LINK_CHARS:
        return f"expected at most {MAX_LINK_CHARS} characters, found {len(url)}"
    if not url.isascii() or not url.isprintable() or " " in url:
        return ("expected printable ASCII without spaces (punycode for a non-ASCII host, "
                "%-escapes in the path), found other characters")
    odd = sorted(set(url) & _NOT_IN_URLS)
    if odd:
        return (f"expected only characters allowed in an address (RFC 3986), found "
                f"{''.join(odd)!r} (write them %-escaped)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return f"expected a well-formed address, found {error}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"expected an http:// or https:// address, found scheme {parts.scheme!r}"
    if not parts.hostname:
        return "expected a host name, found none"
    if parts.username is not None or parts.password is not None:
        return "expected an address without credentials (user@host), found some"
    del port
    return None
