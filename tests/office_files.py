"""Real office, mail and e-book files made with well-kept writers (python-pptx, openpyxl, the email package,
ebooklib, odfpy, msoffcrypto-tool), for the format tests: each holds words found nowhere else."""

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
