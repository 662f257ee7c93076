"""QR codes' pure parts: the targets a code leads to and their links (``targets``), the
images that encode a tracking link (``images``), and the visitor hash of a scan (``visits``)."""
