"""unstructured, offline and quiet.

Out of the box unstructured 0.27 would, on first use of its text classifiers, download and pip-install the
`en_core_web_sm` spaCy wheel from GitHub, and it sends a telemetry ping to packages.unstructured.io when imported and
on each partition call. Here the telemetry is switched off by env vars set before unstructured is imported (this
module is imported by the package before any reader), and its spaCy loader is replaced by a blank English pipeline
(see `load_unstructured`).
"""

from __future__ import annotations

import functools
import os
from typing import Any

# Must be set before `import unstructured` anywhere in the process: the library pings
# packages.unstructured.io at import and per partition call unless one of these is non-empty,
# and logs an advert on first partition unless UNSTRUCTURED_DISABLE_NOTICE=1.
os.environ["SCARF_NO_ANALYTICS"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["UNSTRUCTURED_DISABLE_NOTICE"] = "1"

_AUX_VERBS = frozenset(
    "am is are was were be been being has have had do does did will would can could shall should "
    "may might must".split()
)


@functools.cache  # two threads racing here would both set up; harmless, the last one wins
def load_unstructured() -> Any:
    """Import unstructured lazily (spaCy alone takes ~2 s) and make its NLP offline.

    unstructured.nlp.tokenize._get_nlp() loads `en_core_web_sm` and, if that is missing,
    downloads its wheel from GitHub and installs it into site-packages. We swap in a blank
    English pipeline: the sentencizer gives sentence counts, and a tiny rule tags auxiliaries
    and -ed/-ing words as verbs, so `contains_verb` (narrative text vs. title) still mostly works.
    """
    import types

    import spacy
    import unstructured.nlp.tokenize as tokenize

    if not hasattr(tokenize, "_get_nlp"):
        raise RuntimeError("unsupported unstructured version: nlp.tokenize._get_nlp not found")

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    verbs = nlp.add_pipe("attribute_ruler")
    verbs.add([[{"LOWER": {"IN": sorted(_AUX_VERBS)}}]], {"TAG": "VB"})
    verbs.add([[{"LOWER": {"REGEX": r"^[a-z]{3,}(?:ed|ing)$"}}]], {"TAG": "VB"})

    def offline_nlp() -> Any:
        return nlp

    tokenize._get_nlp = offline_nlp
    tokenize._load_spacy_model = offline_nlp  # belt and braces: nothing may reach the installer

    from pdfminer.high_level import extract_pages
    from pdfminer.layout import LAParams, LTContainer, LTTextBox
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect
    from unstructured.documents.coordinates import PixelSpace
    from unstructured.documents.elements import Table
    from unstructured.nlp.patterns import UNICODE_BULLETS_RE
    from unstructured.partition.docx import partition_docx
    from unstructured.partition.html import partition_html
    from unstructured.partition.md import partition_md
    from unstructured.partition.epub import partition_epub
    from unstructured.partition.msg import partition_msg
    from unstructured.partition.odt import partition_odt
    from unstructured.partition.pptx import partition_pptx
    from unstructured.partition.rtf import partition_rtf
    from unstructured.partition.text import element_from_text, partition_text
    from unstructured.partition.xlsx import partition_xlsx

    return types.SimpleNamespace(
        partition_pptx=partition_pptx,
        partition_xlsx=partition_xlsx,
        partition_msg=partition_msg,
        partition_epub=partition_epub,
        partition_odt=partition_odt,
        partition_rtf=partition_rtf,
        partition_text=partition_text,
        partition_md=partition_md,
        partition_html=partition_html,
        partition_docx=partition_docx,
        element_from_text=element_from_text,
        UNICODE_BULLETS_RE=UNICODE_BULLETS_RE,
        PixelSpace=PixelSpace,
        Table=Table,
        extract_pages=extract_pages,
        LAParams=LAParams,
        LTContainer=LTContainer,
        LTTextBox=LTTextBox,
        pdf_locked=(PDFPasswordIncorrect, PDFEncryptionError),
    )
