"""Real office, mail and e-book files made with well-kept writers (python-pptx, openpyxl, the email package,
ebooklib, odfpy, msoffcrypto-tool), and an Outlook .msg written here (no package writes one), for the format
tests: each holds words found nowhere else."""

from __future__ import annotations

import io
from email.message import EmailMessage


def pptx() -> bytes:
    from pptx import Presentation

    deck = Presentation()
    for n, (title, body, notes) in enumerate([
        ("Roadmap", "We ship the lighthouse feature in spring.", "Mention the walrus budget."),
        ("Hiring", "Two marmalade engineers join in June.", "Speaker reminder: thank the quokka team."),
        ("Risks", "Supply of tungsten widgets is late.", ""),
    ]):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def xlsx(rows: int = 3) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    budget = book.active
    budget.title = "Budget"
    budget.append(["Item", "Cost"])
    budget.append(["Periscope", 1200])
    budget.append(["Hammock", 300])
    staff = book.create_sheet("Staff")
    staff.append(["Name", "Role", "Code"])
    for i in range(1, rows + 1):
        staff.append([f"Person{i}", "Zookeeper" if i == 2 else "Clerk", f"code{i:04d}x"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_text() -> bytes:
    return b"city,river,population\nLisbon,Tagus,545000\nPorto,Douro,232000\nCoimbra,Mondego,106000\n"


def eml(attachment: bool = True) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "Quarterly offsite in Lisbon"
    msg["From"] = "Alice Example <alice@example.com>"
    msg["To"] = "bob@example.com, carol@example.com"
    msg["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = "<offsite-1@example.com>"
    msg.set_content("Hello Bob,\n\nThe offsite takes place near the aqueduct this year. Bring sunscreen.\n\nAlice")
    if attachment:
        msg.add_attachment(b"Agenda: kayaking on the estuary, then a flamenco workshop.", maintype="text",
                           subtype="plain", filename="agenda.txt")
    return bytes(msg)


def epub() -> bytes:
    from ebooklib import epub as eb

    book = eb.EpubBook()
    book.set_identifier("snapdex-test-1")
    book.set_title("Sailing Manual")
    book.set_language("en")
    chapter = eb.EpubHtml(title="Knots", file_name="knots.xhtml", lang="en")
    chapter.content = ("<html><body><h1>Knots</h1><p>The bowline knot makes a fixed loop at the end of a "
                       "rope; sailors tie it around the capstan.</p></body></html>")
    book.add_item(chapter)
    book.toc = (chapter,)
    book.spine = ["nav", chapter]
    book.add_item(eb.EpubNcx())
    book.add_item(eb.EpubNav())
    out = io.BytesIO()
    eb.write_epub(out, book)
    return out.getvalue()


def odt() -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    doc = OpenDocumentText()
    doc.text.addElement(H(outlinelevel=1, text="Greenhouse"))
    doc.text.addElement(P(text="Tomatoes in the greenhouse need watering every morning before the heatwave."))
    out = io.BytesIO()
    doc.write(out)
    return out.getvalue()


def rtf() -> bytes:
    return (b"{\\rtf1\\ansi\\deff0{\\fonttbl{\\f0 Times New Roman;}}\n"
            b"{\\b Observatory}\\par\n"
            b"The telescope in the observatory tracks the comet every night.\\par\n}")


def encrypted(data: bytes, password: str = "secret") -> bytes:
    """An OOXML file (docx/pptx/xlsx) as Office encrypts it with a password: a compound file."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


# --------------------------------------------------------------------------- Outlook .msg
# No maintained Python package writes .msg files, so the test writes one itself: the [MS-OXMSG] properties and
# streams of a message with one recipient and one attachment, in a Compound File ([MS-CFB], version 3) laid out
# plainly (FAT, directory, mini FAT, mini stream, then large streams), read back by olefile and python-oxmsg.

_END, _FREE, _FATSECT = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD


def _cfb(tree: dict) -> bytes:
    """A compound file of `tree`: name -> bytes (a stream) or a dict (a storage)."""
    import struct

    entries: list[dict] = [{"name": "Root Entry", "type": 5, "kids": []}]
    streams: list[tuple[int, bytes]] = []

    def add(parent: int, node: dict) -> None:
        for name, value in node.items():
            entries.append({"name": name, "type": 1 if isinstance(value, dict) else 2, "kids": []})
            index = len(entries) - 1
            entries[parent]["kids"].append(index)
            if isinstance(value, dict):
                add(index, value)
            else:
                streams.append((index, value))

    add(0, tree)
    small = [(i, data) for i, data in streams if len(data) < 4096]
    large = [(i, data) for i, data in streams if len(data) >= 4096]
    mini, minifat = b"", []
    for i, data in small:
        entries[i]["start"], entries[i]["size"] = len(mini) // 64, len(data)
        n = max(1, -(-len(data) // 64))
        minifat += [len(minifat) + k + 1 for k in range(n - 1)] + [_END]
        mini += data.ljust(n * 64, b"\0")
    sectors = lambda size: -(-size // 512)  # noqa: E731
    dir_n = sectors(len(entries) * 128)
    minifat_n = sectors(len(minifat) * 4)
    mini_n = sectors(len(mini))
    large_n = sum(sectors(len(d)) for _, d in large)
    fat_n = 1
    while fat_n * 128 < fat_n + dir_n + minifat_n + mini_n + large_n:
        fat_n += 1
    fat: list[int] = [_FATSECT] * fat_n
    chain = lambda n: [len(fat) + k + 1 for k in range(n - 1)] + [_END] if n else []  # noqa: E731
    dir_start = len(fat)
    fat += chain(dir_n)
    minifat_start = len(fat) if minifat_n else _END
    fat += chain(minifat_n)
    mini_start = len(fat) if mini_n else _END
    fat += chain(mini_n)
    body = b""
    for i, data in large:
        entries[i]["start"], entries[i]["size"] = len(fat), len(data)
        fat += chain(sectors(len(data)))
        body += data.ljust(sectors(len(data)) * 512, b"\0")
    entries[0]["start"], entries[0]["size"] = mini_start, len(mini)
    fat += [_FREE] * (fat_n * 128 - len(fat))
    # Siblings: each storage's children as a chain of right siblings (a valid, if unbalanced, all-black tree).
    for e in entries:
        e.setdefault("left", _FREE), e.setdefault("right", _FREE)
        kids = e["kids"]
        e["child"] = kids[0] if kids else _FREE
        for a, b in zip(kids, kids[1:]):
            entries[a]["right"] = b
    directory = b""
    for e in entries:
        name = e["name"].encode("utf-16-le") + b"\0\0"
        directory += struct.pack("<64sHBBIII16sIQQIQ", name, len(name), e["type"], 1, e["left"], e["right"],
                                 e["child"], b"\0" * 16, 0, 0, 0, e.get("start", _END) if e["type"] != 1 else 0,
                                 e.get("size", 0))
    directory = directory.ljust(dir_n * 512, b"\0")
    header = struct.pack("<8s16sHHHHH6sIIIIIIIII", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"\0" * 16, 0x3E, 3,
                         0xFFFE, 9, 6, b"\0" * 6, 0, fat_n, dir_start, 0, 4096, minifat_start, minifat_n, _END, 0)
    header += struct.pack("<109I", *(list(range(fat_n)) + [_FREE] * (109 - fat_n)))
    return (header + struct.pack(f"<{len(fat)}I", *fat) + directory
            + struct.pack(f"<{len(minifat)}I", *minifat).ljust(minifat_n * 512, b"\xff")
            + mini.ljust(mini_n * 512, b"\0") + body)


def _props(header: bytes, props: list[tuple[int, int, bytes]]) -> tuple[bytes, dict]:
    """A properties stream (header, then a 16-byte entry per property) and the value streams of the long ones."""
    import struct

    out, streams = header, {}
    for pid, ptyp, value in props:
        if ptyp in (0x001F, 0x0102):  # string, binary: the entry holds the size, the value its own stream
            streams[f"__substg1.0_{pid:04X}{ptyp:04X}"] = value
            out += struct.pack("<IIII", (pid << 16) | ptyp, 6, len(value) + (2 if ptyp == 0x001F else 0), 0)
        else:
            out += struct.pack("<II8s", (pid << 16) | ptyp, 6, value.ljust(8, b"\0"))
    return out, streams


def msg(attachment: bool = True) -> bytes:
    import datetime as dt
    import struct

    def s(text: str) -> bytes:
        return text.encode("utf-16-le")

    sent = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.timezone.utc)
    filetime = int((sent - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)).total_seconds() * 10_000_000)
    props, tree = _props(struct.pack("<8sIIII8s", b"\0" * 8, 1, 1, 1, 1 if attachment else 0, b"\0" * 8), [
        (0x001A, 0x001F, s("IPM.Note")),
        (0x0037, 0x001F, s("Warehouse inventory audit")),
        (0x1000, 0x001F, s("Hi team,\r\n\r\nThe audit of the pallet racks starts on Monday in hall seven.\r\n")),
        (0x0C1F, 0x001F, s("dana@example.com")),
        (0x0C1A, 0x001F, s("Dana Example")),
        (0x0039, 0x0040, struct.pack("<Q", filetime)),
    ])
    tree["__properties_version1.0"] = props
    recip_props, recip = _props(b"\0" * 8, [(0x39FE, 0x001F, s("eve@example.com")),
                                            (0x3001, 0x001F, s("Eve Example"))])
    tree["__recip_version1.0_#00000000"] = {"__properties_version1.0": recip_props, **recip}
    if attachment:
        att_props, att = _props(b"\0" * 8, [
            (0x3705, 0x0003, struct.pack("<I", 1)),  # by value
            (0x3707, 0x001F, s("checklist.txt")),
            (0x3701, 0x0102, b"Checklist: count the forklift batteries and the spare tyres."),
        ])
        tree["__attach_version1.0_#00000000"] = {"__properties_version1.0": att_props, **att}
    tree["__nameid_version1.0"] = {}
    return _cfb(tree)
