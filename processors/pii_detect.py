"""Finding personal data in free text: spans of phones, resident ids, bank cards and e-mails.

Pure and total (no I/O, no clock). Detection works on a copy of the text with full-width ASCII
mapped 1:1 to ASCII, so spans line up with the original. What is found and how:

* **Resident ids** (GB 11643): 18 digits whose last may be ``X`` with the check digit verified,
  or the old 15 digits with a valid birth date (YYMMDD); written plain or in the usual groups
  (6-8-4, 6-4-4-4, 3-3-4-4-4, 4-4-4-4-2; 6-6-3) split by spaces, dashes or dots; an 18-digit id
  may follow letters (``id11010519491231002X``), a 15-digit one may not (order numbers such as
  ``O202401010930035`` would read as ids). A random 18-digit number passes
  the check digit 1 time in 11, so some order numbers in free text are masked too: free text
  errs towards masking. The bare shape (18 or 15 digits not glued to letters or digits) with a
  plausible birth date is an id whatever its check digit (a mistyped id is still personal).
  Chinese numerals (``一三八…``), Excel thousands commas and ``_ · – — /`` between digits are
  read as digits and spaces.
* **Bank cards**: 15 to 19 digits plain, or 13 to 19 in groups of four
  (``6222 0212 3456 7890 128``), passing the Luhn check, not glued to letters (order ids such
  as ``O2024...`` stay).
* **Phones**: ``phonenumbers.PhoneNumberMatcher`` for region CN with leniency VALID (mobiles
  and landlines in any grouping: ``1380 013 8000``, ``138.0013.8000``, ``(010) 8888 6666``,
  ``+86 10 8888 6666``) and, by shape, mobiles glued to letters (``Tel13800138000``) or in
  ranges the matcher holds invalid (``140 0000 0000``). It all runs only on texts with at least
  7 digits.
* **Street addresses**: a street (1 to 6 characters, no 省/市/区/县 in them, then 路, 街, 大道,
  巷, 弄 or 胡同) or a compound (小区, 花园, 公寓, 大厦, 家园, 新村, 苑) followed by a house
  number (``科技园路1号2栋301室``, ``阳光小区5栋2单元301``); the administrative prefix before it
  (province, city, district) is not a span and stays readable.
* **E-mails**, internationalised too: a local part of letters (any script), digits and
  ``._%+-``, then ``@`` (or ``(at)``/``[at]``), then dot-separated labels (``.`` or ``。``)
  ending in a 2+ letter label (``张伟@例子.中国``).

Names are not found here (see :func:`custpulse.processors.masking._scrub_names`: surname list,
cue words, titles and verbs; a name with none of these around it cannot be told from other
words, the documented limit).
"""

from __future__ import annotations

import re

from phonenumbers import Leniency, PhoneNumberMatcher

FULLWIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_DETECT = FULLWIDTH | {ord(c): ord(d) for c, d in zip("零〇一幺二三四五六七八九", "001123456789",
                                                    strict=True)} | {
    ord(c): 0x20 for c in "_·–—/"}
"""The detection copy, character for character: full-width ASCII as ASCII, Chinese numerals as
digits (``一三八…``), and ``_ · – — /`` as spaces (``138_0013_8000``)."""
_DIGIT_COMMA = re.compile(r"(?<=[0-9]),(?=[0-9]{3})")  # 13,800,138,000 (Excel) reads as digits
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)

_IDN_TLD = r"(?:中国|中國|公司|网络|網絡|在线|在線|集团|集團|商城|网店|網店|中文网|移动|政务|公益)"
_DOT = rf"(?:\.|。(?={_IDN_TLD}(?![^\W\d_A-Za-z])))"  # 。 only before a Chinese TLD (例子。中国)
_IDN = r"[^\W\d_A-Za-z]+"  # a domain label in a script other than Latin
_ASCII_DOT = r"(?:\.|。(?=(?:com|cn|net|org|edu|gov|io|co)(?![A-Za-z])))"
_EMAIL = re.compile(
    # a local part in any script, mixed too (王伟abc@例子.中国, zhang伟@qq.com), bounded
    rf"(?<![A-Za-z0-9._%+-])[\w.%+-]{{1,64}}(?:\s?@\s?|\s*[(\[]at[)\]]\s*)"
    # an internationalised domain (例子.中国, 例子。中国) or an ASCII one (example.com)
    rf"(?:{_IDN}(?:{_DOT}{_IDN})*{_DOT}{_IDN}"
    rf"|[A-Za-z0-9-]{{1,63}}(?:{_ASCII_DOT}[A-Za-z0-9-]{{1,63}})*{_ASCII_DOT}[A-Za-z]{{2,}})",
    re.IGNORECASE)
_LEADING_WORD = re.compile(r"[^\W\d_A-Za-z]+(?=[A-Za-z0-9])")


def _email_start(t: str, start: int, end: int) -> int:
    """Where an e-mail starts: a run of CJK glued before an ASCII local part of an ASCII domain
    is a cue word (``备用邮箱Tom@qq.com``), not part of it; a mixed local part of an
    internationalised domain is kept whole (``王伟abc@例子.中国``)."""
    at = t.find("@", start, end)
    if at < 0 or not t[end - 1].isascii():
        return start
    word = _LEADING_WORD.match(t, start, at)
    return word.end() if word else start
_S = r"[ \-.]"
_X = r"[0-9Xx]"
# Written plain or in the usual groups: 6-8-4, 6-4-4-4, 3-3-4-4-4, 4-4-4-4-2 (18) and 6-6-3 (15);
# any grouping would let an id be read across neighbouring numbers.
_ID18 = re.compile(
    rf"(?<![0-9])[1-9](?:[0-9]{{16}}{_X}|[0-9]{{5}}{_S}[0-9]{{8}}{_S}[0-9]{{3}}{_X}"
    rf"|[0-9]{{5}}{_S}[0-9]{{4}}{_S}[0-9]{{4}}{_S}[0-9]{{3}}{_X}"
    rf"|[0-9]{{2}}{_S}[0-9]{{3}}{_S}[0-9]{{4}}{_S}[0-9]{{4}}{_S}[0-9]{{3}}{_X}"
    rf"|[0-9]{{3}}{_S}[0-9]{{4}}{_S}[0-9]{{4}}{_S}[0-9]{{4}}{_S}[0-9]{_X})(?![0-9])")
_ID15 = re.compile(rf"(?<![0-9A-Za-z])[1-9](?:[0-9]{{14}}|[0-9]{{5}}{_S}[0-9]{{6}}{_S}[0-9]{{3}})"
                   r"(?![0-9Xx])")
_ID_SHAPE = re.compile(r"(?<![0-9A-Za-z])(?:[1-9][0-9]{16}[0-9Xx]|[1-9][0-9]{14})(?![0-9A-Za-z])")
# a card: written plain or in groups of four
_CARD = re.compile(r"(?<![0-9A-Za-z+])(?:[0-9]{15,19}"
                   r"|[0-9]{4}(?:[ -][0-9]{4}){2,3}(?:[ -][0-9]{1,4})?)(?![0-9A-Za-z])")
# Shapes the matcher does not take (glued to letters, number ranges it holds invalid).
_LOOSE_PHONE = re.compile(
    r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?1[ .\-]?[3-9](?:[ .\-]?[0-9]){9}(?![0-9])"
    r"|(?<![0-9A-Za-z])0[1-9][0-9]{1,2}[ -]?[0-9]{7,8}(?![0-9A-Za-z])"
    # landlines written in groups: (010) 8888 6666, 0755-8888-6666, +86 10 8888 6666
    r"|(?<![0-9A-Za-z])(?:\(0[1-9][0-9]{1,2}\)|0[1-9][0-9]{1,2}"
    r"|(?:\+|00)86[ -]?\(?[1-9][0-9]{1,2}\)?)"
    r"[ -]?[2-9][0-9]{2,3}[ -][0-9]{4}(?![0-9A-Za-z])"
    r"|(?<![0-9])(?:\+|00)86[1-9][0-9]{9,10}(?![0-9])")
_DIGIT = re.compile(r"[0-9]")
_AT_WORD = re.compile(r"[(\[]at[)\]]", re.IGNORECASE)
_GROUPED_DIGITS = re.compile(r"[0-9][ .\-()/]+[0-9]|[+(]\s*[0-9]")
"""Where ``PhoneNumberMatcher`` (about 60 us a call) can find more than the shapes: digits
split by separators, or after ``+`` / ``(``."""
_NUM = r"(?:[0-9一二三四五六七八九十百零〇两甲乙丙丁]+|[A-Za-z][0-9]*)"
_UNIT = r"(?:号楼|號樓|号院|號院|栋|棟|幢|座|单元|單元|楼|樓|层|層|室|号|號|户|戶|组|組)"
_STREET_NAME = r"(?:(?![省市区區县縣镇鎮乡鄉路街巷弄])[\u4e00-\u9fff]){1,6}"
_ADDRESS = re.compile(
    rf"{_STREET_NAME}(?:路|街|大道|巷|弄|胡同){_NUM}(?:[-－]{_NUM})*(?:号院|號院|号|號|弄)?"
    rf"(?:{_NUM}(?:[-－]{_NUM})*{_UNIT}?)*"
    rf"|(?:(?![省市区區县縣镇鎮乡鄉])[\u4e00-\u9fff]){{2,8}}(?:小区|小區|社区|社區|花园|花園|公寓|"
    rf"大厦|大廈|家园|家園|新村|村|苑){_NUM}(?:[-－]{_NUM})*{_UNIT}?(?:{_NUM}(?:[-－]{_NUM})*{_UNIT}?)*")
_ADDRESS_HINT = re.compile(r"[路街道巷弄同园園寓厦廈村苑区區]")


def _digits(s: str) -> str:
    return "".join(c for c in s if "0" <= c <= "9" or c in "Xx").upper()


def valid_id18(digits: str) -> bool:
    """GB 11643 check digit of an 18-character resident id (digits, last may be X)."""
    if len(digits) != 18 or not digits[:17].isdigit():
        return False
    total = sum(int(c) * w for c, w in zip(digits[:17], _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11] == digits[17]


def _born(digits: str) -> bool:
    """An 18- or 15-digit shape holds a plausible birth date where an id has it."""
    if len(digits) == 18:
        year, month, day = int(digits[6:10]), int(digits[10:12]), int(digits[12:14])
        return 1900 <= year <= 2099 and 1 <= month <= 12 and 1 <= day <= 31
    return valid_id15(digits)


def valid_id15(digits: str) -> bool:
    """A 15-digit resident id: area code, then a birth date YYMMDD that exists."""
    if len(digits) != 15 or not digits.isdigit():
        return False
    month, day = int(digits[8:10]), int(digits[10:12])
    return 1 <= month <= 12 and 1 <= day <= 31


def luhn(digits: str) -> bool:
    """The Luhn check of a card number (digits only)."""
    if not digits.isdigit() or not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_AHEAD: dict[re.Pattern[str], re.Pattern[str]] = {}


def _overlapping(pattern: re.Pattern[str], text: str) -> list[tuple[int, int]]:
    """Every match of ``pattern`` at any start, overlapping ones included (one scan in C)."""
    ahead = _AHEAD.get(pattern)
    if ahead is None:
        ahead = _AHEAD[pattern] = re.compile(f"(?=({pattern.pattern}))", pattern.flags)
    return [(m.start(1), m.end(1)) for m in ahead.finditer(text)]


def find_spans(text: str) -> list[tuple[int, int, str]]:
    """Non-overlapping ``(start, end, kind)`` spans, sorted; kinds ``email``,
    ``street_address``, ``id_number``, ``bank_card`` and ``phone``, in that order of precedence
    where spans overlap.

    >>> find_spans("证件id11010519491231002X，电话1380 013 8000")
    [(4, 22, 'id_number'), (25, 38, 'phone')]
    """
    words = str(text).translate(FULLWIDTH)  # e-mails and addresses (文三路 keeps its 三)
    t = _DIGIT_COMMA.sub(" ", words.translate(_DETECT))  # numbers
    spans: list[tuple[int, int, str]] = []
    taken = bytearray(len(t) + 1)  # 1 where a span already is: linear, whatever the spans

    def free(a: int, b: int) -> bool:
        if a >= b or any(taken[a:b]):
            return False
        taken[a:b] = b"\x01" * (b - a)
        return True

    if "@" in words or _AT_WORD.search(words):
        for m in _EMAIL.finditer(words):
            start = _email_start(words, m.start(), m.end())
            if free(start, m.end()):
                spans.append((start, m.end(), "email"))
    if _ADDRESS_HINT.search(words):
        for m in _ADDRESS.finditer(words):
            if free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "street_address"))
    if len(_DIGIT.findall(t)) >= 7:
        # separators let a wrong match swallow the start of a right one: try every start
        for a, b in _overlapping(_ID18, t):
            if valid_id18(_digits(t[a:b])) and free(a, b):
                spans.append((a, b, "id_number"))
        for a, b in _overlapping(_ID15, t):
            if valid_id15(_digits(t[a:b])) and free(a, b):
                spans.append((a, b, "id_number"))
        for m in _ID_SHAPE.finditer(t):  # the bare shape with a birth date: a typo is personal
            if _born(m[0]) and free(m.start(), m.end()):
                spans.append((m.start(), m.end(), "id_number"))
        if _GROUPED_DIGITS.search(t):  # contiguous digits are left to the shapes below (fast)
            for match in PhoneNumberMatcher(t, "CN", leniency=Leniency.VALID):
                if free(match.start, match.end):
                    spans.append((match.start, match.end, "phone"))
        for a, b in _overlapping(_CARD, t):
            cut = max(t.rfind(" ", a, b), t.rfind("-", a, b))
            for end in (b, cut) if cut > a else (b,):  # a trailing group may be a neighbour's
                if luhn(_digits(t[a:end])) and free(a, end):
                    spans.append((a, end, "bank_card"))
                    break
        # every start here too: a shape across a card's tail (``…0100 206，1300 000 0000``)
        # must not hide the mobile right after it
        for a, b in _overlapping(_LOOSE_PHONE, t):
            if free(a, b):
                spans.append((a, b, "phone"))
    return sorted(spans)


def mask_card(value: str) -> str:
    """A bank card as ``****`` and its last 4 digits.

    >>> mask_card("6222 0212 3456 7890 128")
    '****0128'
    """
    digits = _digits(value)
    return "****" + digits[-4:] if len(digits) >= 8 else "****"
