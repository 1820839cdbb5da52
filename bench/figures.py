"""Reading the figures that tools print, whatever they print.

Every number the harness takes from another program's output (measure's
result line, the workloads' `RESULT key=value` lines, callgrind's
`Collected :` line, redis-benchmark's CSV) goes through `parse_figure`,
which never raises: it returns the value, or None and a reason.

What a tool may print instead of a plain number:

* nothing (an empty field, a missing column, `-`, `n/a`);
* `inf`, `-inf`, `infinity` (redis-benchmark's requests per second when a
  test ends within its 1 ms clock), `nan`, `-nan` (glibc's printf of 0/0);
* a localized number: thousands grouped with `,` `.` `'` or a (narrow,
  no-break) space, and a decimal comma: `1,234.5`, `1.234,5`, `1 234,5`,
  `12,5`.

A single separator followed by exactly three digits (`1,234`, `1.234`) is
ambiguous. A `,` is read as grouping (C programs and English locales print
no decimal comma before exactly three digits more often than they group
thousands), a `.` as the decimal point (C's printf, the common case).
"""
import math
import re

# Reasons a figure has no value.
EMPTY = "empty"
INFINITE = "infinite"
NOT_A_NUMBER = "not a number"
UNPARSABLE = "unparsable"

_EMPTY_WORDS = {"", "-", "--", "n/a", "na", "none", "null", "?"}
_INF = re.compile(r"^[+-]?(inf|infinity)$", re.I)
_NAN = re.compile(r"^[+-]?nan(\(.*\))?$", re.I)
_SPACES = "\u00a0\u202f\u2009 '"          # no-break, narrow no-break, thin, space, apostrophe
_GROUPED = r"\d{1,3}(?:%s\d{3})+"         # 1,234,567 with a given separator


def _plain(text):
    """The float of a C-locale number, or None."""
    try:
        v = float(text)
    except ValueError:
        return None
    return v


def _delocalize(s):
    """A localized number rewritten in the C locale, or None."""
    sign = ""
    if s[:1] in "+-":
        sign, s = s[:1], s[1:]
    if not s or not (s[0].isdigit() or s[0] in ".,"):
        return None
    # spaces and apostrophes only ever group thousands
    if any(c in s for c in _SPACES):
        parts = re.split("[" + _SPACES + "]", s)
        if not all(parts) or not parts[0].isdigit() or len(parts[0]) > 3:
            return None
        if not all(re.fullmatch(r"\d{3}", p) for p in parts[1:-1]):
            return None
        if not re.fullmatch(r"\d{3}([.,]\d*)?", parts[-1]):
            return None
        s = "".join(parts).replace(",", ".")
        return sign + s
    has_comma, has_dot = "," in s, "." in s
    if has_comma and has_dot:
        # the separator that comes last is the decimal point
        dec = "," if s.rfind(",") > s.rfind(".") else "."
        grp = "." if dec == "," else ","
        whole, _, frac = s.rpartition(dec)
        if not re.fullmatch(_GROUPED % re.escape(grp), whole) or not frac.isdigit():
            return None
        return sign + whole.replace(grp, "") + "." + frac
    if has_comma:
        if re.fullmatch(_GROUPED % ",", s):
            return sign + s.replace(",", "")           # 1,234 and 1,234,567: grouping
        if s.count(",") == 1:
            whole, frac = s.split(",")
            if (whole.isdigit() or whole == "") and frac.isdigit():
                return sign + (whole or "0") + "." + frac  # 12,5: a decimal comma
        return None
    if has_dot and s.count(".") > 1 and re.fullmatch(_GROUPED % r"\.", s):
        return sign + s.replace(".", "")               # 1.234.567: grouping
    return None


def _parse(text):
    """(value, reason, C-locale text) of one printed figure."""
    if text is None:
        return None, EMPTY, ""
    s = str(text).strip().strip('"').strip("'").strip()
    if s.lower() in _EMPTY_WORDS:
        return None, EMPTY, s
    if _INF.match(s):
        return None, INFINITE, s
    if _NAN.match(s):
        return None, NOT_A_NUMBER, s
    c = s
    v = _plain(s)
    if v is None:
        c = _delocalize(s)
        v = _plain(c) if c is not None else None
    if v is None:
        return None, UNPARSABLE, s
    if math.isinf(v):
        return None, INFINITE, c      # e.g. 1e999
    if math.isnan(v):
        return None, NOT_A_NUMBER, c
    return v, None, c


def parse_figure(text):
    """(value, reason) of one printed figure: value is a finite float, or
    None with reason EMPTY, INFINITE, NOT_A_NUMBER or UNPARSABLE."""
    v, why, _ = _parse(text)
    return v, why


def figure(text):
    """The finite value of a figure, or None."""
    return _parse(text)[0]


def integer(text):
    """The value of a figure as an int if it is a whole number, else None."""
    v = figure(text)
    if v is None or v != int(v):
        return None
    return int(v)


def result_value(text):
    """A `RESULT key=value` value: an int (written without a fraction) or a
    float when it is a number, None when it is empty or a number with no
    finite value (inf, nan), else the text itself."""
    v, why, c = _parse(text)
    if v is not None:
        return int(c) if re.fullmatch(r"[+-]?\d+", c) else v
    if why in (EMPTY, INFINITE, NOT_A_NUMBER):
        return None
    return text.strip()


def finite(v):
    """v if it is a finite number, else None (for figures computed here)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
