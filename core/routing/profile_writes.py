"""A bot's writes to the customer's record, applied to the profile a conversation's card shows,
so consoles see them in the command that made them (no store read). Pure.

The store writes the same values to the record in the commit (``core.store.bot_runs``); the
card follows its rules as far as the engine knows them: a custom field already shown takes its
new value, one not shown yet is added after the others, labelled by its key, while the profile
has room (the next read of the record, on a refresh or a reopen, puts it in its place with its
label); ``display_name`` is the profile's name; the other built-in columns (phone, e-mail,
company, address) are not on the profile. Tags removed leave it, tags added join it while it
has room. Values are text as the store shows them (``as_text``), cut to ``MAX_PROFILE_TEXT``.
A value the store then refuses (a unique field another customer holds) shows until the next
read.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.bots.fields import BUILT_IN, as_text
from core.bots.flow import FieldValue
from core.routing.model import (
    MAX_PROFILE_FIELDS,
    MAX_PROFILE_TAGS,
    MAX_PROFILE_TEXT,
    CustomerProfile,
    ProfileField,
)

NAME = "display_name"
"""The built-in field the profile shows, as its ``display_name``."""


def written(
    profile: CustomerProfile,
    fields: Sequence[tuple[str, FieldValue]],
    added: Sequence[str],
    removed: Sequence[str],
) -> CustomerProfile:
    """``profile`` with a bot turn's field values and tag changes applied (see the module)."""
    name = profile.display_name
    shown = list(profile.fields)
    at = {f.key: i for i, f in enumerate(shown)}
    for key, value in fields:
        text = as_text(value)[:MAX_PROFILE_TEXT]
        if key == NAME:
            name = text
        elif key in BUILT_IN:
            continue
        elif key in at:
            shown[at[key]] = dataclasses.replace(shown[at[key]], value=text)
        elif len(shown) < MAX_PROFILE_FIELDS and len(key) <= MAX_PROFILE_TEXT:
            at[key] = len(shown)
            shown.append(ProfileField(key=key, label=key, value=text))
    gone = set(removed)
    tags = [t for t in profile.tags if t not in gone]
    for tag in added:
        if tag not in tags and len(tags) < MAX_PROFILE_TAGS and len(tag) <= MAX_PROFILE_TEXT:
            tags.append(tag)
    return dataclasses.replace(profile, display_name=name, fields=tuple(shown), tags=tuple(tags))
