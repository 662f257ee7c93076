"""An uploaded spreadsheet of broadcast recipients, read and checked whole. Pure.

The file (CSV or XLSX, read by ``core.store.customer_files.read_table``) has a header row. The
channel's address column is required: ``phone`` (SMS, WhatsApp; normalised to E.164 with
``phonenumbers``, numbers without ``+`` read in ``default_region``), ``email`` (e-mail) or
``line_user_id`` (LINE). ``name``, ``phone`` and ``email`` fill the ``customer.*`` variables;
any other column headed with a custom field key fills ``{customer.fields.KEY}``; other columns
are ignored. Every bad row is reported at once (``Violations``: ``rows[7].phone``, counting
the header as row 1), so a file either reads whole or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from core.broadcasts import addresses
from core.store import customer_files
from core.store.customer_fields import KEY_PATTERN, Violations

ADDRESS_COLUMN: Final = {
    "sms": "phone",
    "whatsapp": "phone",
    "email": "email",
    "line": "line_user_id",
}
MAX_PROBLEMS: Final = 200
"""Row problems reported at most (a wholly wrong file would otherwise answer thousands)."""


@dataclass(frozen=True, slots=True)
class FileRecipient:
    """One row: its number in the file, its address on the channel and its variables."""

    row: int
    address: str
    values: Mapping[str, str] = field(default_factory=dict)
    phone: str = ""
    email: str = ""


def read(
    content: bytes, fmt: str, channel_type: str, default_region: str = ""
) -> list[FileRecipient]:
    """The file's recipients in file order; ``Violations`` (paths ``content``, ``rows[N].COL``)
    when the file, its header or any row is wrong."""
    table = customer_files.read_table(content, fmt)
    header = [h.strip().lower() for h in table[0]]
    column = ADDRESS_COLUMN[channel_type]
    if column not in header:
        raise Violations({"content": f"no {column!r} column (the header row names the columns)"})
    if len(set(header) - {""}) != len([h for h in header if h]):
        raise Violations({"content": "a column is named twice"})
    at = {name: i for i, name in enumerate(header) if name}
    found: list[FileRecipient] = []
    problems: dict[str, str] = {}
    for number, cells in enumerate(table[1:], start=2):

        def cell(name: str, cells: list[str] = cells) -> str:
            i = at.get(name)
            return cells[i].strip() if i is not None and i < len(cells) else ""

        phone = email = ""
        try:
            if cell("phone"):
                phone = addresses.phone(cell("phone"), default_region)
        except addresses.InvalidAddress as exc:
            problems[f"rows[{number}].phone"] = str(exc)
        try:
            if cell("email"):
                email = addresses.email(cell("email"))
        except addresses.InvalidAddress as exc:
            problems[f"rows[{number}].email"] = str(exc)
        address = ""
        if column == "phone":
            address = phone
        elif column == "email":
            address = email
        else:
            try:
                address = addresses.line_user(cell(column))
            except addresses.InvalidAddress as exc:
                problems[f"rows[{number}].{column}"] = str(exc)
        if not cell(column):
            problems[f"rows[{number}].{column}"] = "required"
        if len(problems) >= MAX_PROBLEMS:
            break
        values = {"customer.name": cell("name"), "customer.phone": phone, "customer.email": email}
        for name, i in at.items():
            if (
                name not in ADDRESS_COLUMN.values()
                and name != "name"
                and KEY_PATTERN.fullmatch(name)
            ):
                values[f"customer.fields.{name}"] = cells[i].strip() if i < len(cells) else ""
        if address:
            found.append(FileRecipient(number, address, values, phone, email))
    if problems:
        raise Violations(problems)
    return found
