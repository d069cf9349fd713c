"""Text cleaning the SigLIP family was trained with.

big_vision trains SigLIP on canonical text, and open_clip's SigLIP tokenizers
(``clean="canonicalize"``) clean prompts the same way before tokenising;
transformers' SigLIP 2 tokenizer only lower-cases, so a prompt with
punctuation or capitals reaches the text tower unlike anything it saw.
"""

from __future__ import annotations

import html
import string
import unicodedata

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def canonicalize_text(text: str) -> str:
    """Clean ``text`` as open_clip's ``_clean_canonicalize`` does.

    In order: Unicode NFC (open_clip runs ``ftfy.fix_text``, whose normal
    form is NFC; its mojibake repair is not reproduced), HTML entities
    unescaped twice, ``_`` read as a space, ASCII punctuation removed,
    lower-cased, runs of whitespace collapsed to one space, ends stripped.

    Example: ``"A photo of a  Dog&amp;Cat!"`` → ``"a photo of a dogcat"``.
    """
    text = html.unescape(html.unescape(unicodedata.normalize("NFC", text))).strip()
    text = text.replace("_", " ").translate(_PUNCTUATION).lower()
    return " ".join(text.split())
