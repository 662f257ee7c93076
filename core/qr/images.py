"""A QR code's image: PNG or SVG, square, ``size`` pixels a side, encoding one text.

The ``qrcode`` package encodes (error correction M, a quiet zone of 4 modules); each module is
a whole number of pixels, the largest that fits ``size``, and the symbol is centred on white.
A symbol larger than ``size`` (a long text in a tiny image) is drawn at one pixel a module,
larger than asked, rather than unreadable.
"""

from __future__ import annotations

import io
from typing import Final

import qrcode
import qrcode.constants
from PIL import Image

MIN_SIZE: Final = 64
MAX_SIZE: Final = 4096
DEFAULT_SIZE: Final = 512
QUIET_ZONE: Final = 4
PNG: Final = "image/png"
SVG: Final = "image/svg+xml"


def matrix(text: str) -> list[list[bool]]:
    """The symbol's modules, quiet zone included (True: dark)."""
    code = qrcode.QRCode(
        error_correction=qrcode.constants.ERROR_CORRECT_M, border=QUIET_ZONE, box_size=1
    )
    code.add_data(text)
    code.make(fit=True)
    return [[bool(cell) for cell in row] for row in code.get_matrix()]


def _layout(modules: int, size: int) -> tuple[int, int, int]:
    """(pixels per module, the image's side, the symbol's offset in it)."""
    box = max(1, size // modules)
    side = max(size, modules * box)
    return box, side, (side - modules * box) // 2


def png(text: str, size: int = DEFAULT_SIZE) -> bytes:
    """A PNG (1-bit) of ``text``'s symbol, ``size`` pixels a side."""
    cells = matrix(text)
    box, side, offset = _layout(len(cells), size)
    symbol = Image.new("1", (len(cells), len(cells)), 1)
    symbol.putdata([0 if dark else 1 for row in cells for dark in row])
    scaled = symbol.resize((len(cells) * box, len(cells) * box), Image.Resampling.NEAREST)
    image = Image.new("1", (side, side), 1)
    image.paste(scaled, (offset, offset))
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def svg(text: str, size: int = DEFAULT_SIZE) -> bytes:
    """An SVG of ``text``'s symbol, ``size`` pixels a side: one path of unit squares in a
    view box of the modules, scaled by whole pixels and centred like the PNG."""
    cells = matrix(text)
    box, side, offset = _layout(len(cells), size)
    squares = "".join(
        f"M{x} {y}h1v1h-1z" for y, row in enumerate(cells) for x, dark in enumerate(row) if dark
    )
    span = len(cells) * box
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{side}" height="{side}"'
        f' viewBox="0 0 {side} {side}" shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<svg x="{offset}" y="{offset}" width="{span}" height="{span}"'
        f' viewBox="0 0 {len(cells)} {len(cells)}"><path d="{squares}" fill="#000"/></svg>'
        "</svg>\n"
    ).encode()
