"""How a value is spelled before a policy condition compares it: one canonical form for the many that mean the same.

A model (or an injected prompt steering it) can write ``/etc/passwd`` as ``/ETC/passwd``, ``//etc/passwd``,
``/./etc/passwd``, ``/tmp/../etc/passwd``, ``file:///etc/passwd`` or with fullwidth solidi (U+FF0F); a
condition that compared raw text would miss every one of them. Both sides of a comparison (the value found in the
arguments and the operator's expected value) go through the same steps:

1. Unicode NFKC (compatibility forms: fullwidth letters and slashes, ligatures, superscripts become plain ones), and
   the removal of invisible format characters (zero-width spaces and joiners, soft hyphens, bidi controls).
2. For a path-like value (it starts with ``/``, ``./``, ``../``, ``~/`` or is a ``file:`` URL): the ``file:`` scheme
   and host are dropped (and the URL's percent-escapes decoded), repeated slashes collapse, ``.`` segments go and
   ``..`` segments are resolved against the path (never above the root); a trailing slash is kept.
3. Case folding (``str.casefold``), only when the condition asks for it (``ignore_case``).

Pure functions, no state: the same input always gives the same canonical text.
"""

from __future__ import annotations

import posixpath
import re
import unicodedata
from urllib.parse import unquote

_INVISIBLE = re.compile(r"[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff]")
_FILE_URL = re.compile(r"^file:(?://[^/]*)?(?=/)", re.IGNORECASE)
_PATH_START = ("/", "./", "../", "~/")


def normalise_text(text: str) -> str:
    """Unicode compatibility composition, without invisible format characters."""
    if text.isascii():
        return text  # the common case: NFKC and the invisible characters concern non-ASCII text only
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def is_path_like(text: str) -> bool:
    return text.startswith(_PATH_START) or text[:5].lower() == "file:"


def normalise_path(text: str) -> str:
    """A path-like text in canonical form (see the module's documentation); other text unchanged."""
    url = _FILE_URL.match(text)
    if url is not None:
        text = unquote(text[url.end() :])
    elif text[:5].lower() == "file:":
        return text  # a file: URL with a relative path: left as it is
    if not text.startswith(_PATH_START):
        return text
    trailing = text.endswith("/") and text != "/"
    rooted = text.startswith("/")
    path = posixpath.normpath(text)
    if rooted:
        # POSIX keeps a leading "//" apart; for comparison it is the root like any other run of slashes.
        path = "/" + path.lstrip("/")
    if trailing and not path.endswith("/"):
        path += "/"
    return path


def normalise(text: str, *, ignore_case: bool = False) -> str:
    """The canonical form conditions compare."""
    text = normalise_text(text)
    if is_path_like(text):
        text = normalise_path(text)
    return text.casefold() if ignore_case else text
