# Copyright: tfs-fleet developers
# Apache License 2.0
"""Check an image reference against Docker's grammar before anything is drained (issue 23)."""

from __future__ import annotations

import re
from typing import Any

DOCUMENTATION = r"""
name: image_reference_problem
short_description: Why an image reference is not one Docker accepts (empty when it is)
description:
  - Checks the reference against the grammar of Docker's reference package
    ([registry[:port]/]path[:tag][@digest], lower-case path components, a tag of at most 128
    word characters, dots and dashes), or an image ID (C(sha256:) and 64 hex digits). Returns an
    empty string when it is valid, else one sentence saying what is wrong (for example a tag
    with shell metacharacters, or an upper-case repository), for the task to name the variable.
  - Nothing is run: the reference is only read.
options:
  _input:
    description: The image reference (for example C(tensorflow/serving:2.19.0-gpu)).
    type: str
    required: true
"""

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?"
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}")
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_RE = re.compile(_DOMAIN)
_ID = re.compile(r"sha256:[0-9a-f]{64}")


def names_a_registry(first: str) -> bool:
    """Whether a reference's first path component is a registry (Docker's rule: it has a '.' or
    a ':', is 'localhost', or has upper-case letters), not the first part of a Docker Hub path."""
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def image_reference_problem(reference: Any) -> str:
    """'' when Docker accepts ``reference``, else why not."""
    if not isinstance(reference, str) or not reference.strip():
        return "the image reference is empty"
    ref = reference
    if _ID.fullmatch(ref):
        return ""
    if ref != ref.strip() or any(c.isspace() for c in ref):
        return f"{ref!r} contains white space"
    name, _, digest = ref.partition("@")
    if digest and not _DIGEST.fullmatch(digest):
        return f"{ref!r}: the digest {digest!r} is not <algorithm>:<hex>"
    tag = ""
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not _TAG.fullmatch(tag):
            return (
                f"{ref!r}: the tag {tag!r} is not a Docker tag (letters, digits, '_', '.', '-', "
                "at most 128, not starting with '.' or '-')"
            )
    path = name
    first, sep, rest = name.partition("/")
    if sep and names_a_registry(first):
        if not _DOMAIN_RE.fullmatch(first):
            return f"{ref!r}: the registry part {first!r} is not a host name"
        path = rest
    if not _PATH.fullmatch(path):
        return (
            f"{ref!r}: the repository {path!r} is not a Docker repository name (lower-case "
            "letters, digits and separators . _ __ - between them, components joined by '/')"
        )
    if len(name) > 255:
        return f"{ref!r}: the repository name is longer than 255 characters"
    return ""


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"image_reference_problem": image_reference_problem}
