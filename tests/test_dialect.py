"""The csv dialect every text table is read with, for delimiters of any length: the reader for longer ones
checked against Python's csv module itself, on random text built from the characters that matter."""

import csv
import io
import random

import numpy as np
import pytest

from rankitect_dsl.data import columnar
from rankitect_dsl.data.dialect import Dialect, MultiCharReader

ALPHABET = ["a", "b", ",", '"', " ", "\n", "\r\n", "\r"]


def _records(make, text: str) -> list:
    """Every record, then ("error", line, message) if the reader refuses the rest."""
    records = make(io.StringIO(text, newline=""))
    out = []
    try:
        out.extend(records)
    except csv.Error as err:
        out.append(("error", records.line_num, str(err)))
    return out


def _as_commas(records: list) -> list:
    return [
        tuple(r[:2]) + (r[2].replace("::", ","),) if isinstance(r, tuple) else [f.replace("::", ",") for f in r]
        for r in records
    ]


@pytest.mark.parametrize("quotes", [True, False])
def test_the_multi_character_reader_reads_as_the_csv_module_does(quotes):
    """Quotes, doubled quotes, `"a"b` refused (strict), spaces after the delimiter, line breaks inside quotes,
    blank lines, an unterminated quote at the end: the same records, errors and error lines as the csv
    module, with "," and with the same text separated by "::"; with quotes off, as its QUOTE_NONE reads."""
    rng = random.Random(0)
    quoting = csv.QUOTE_MINIMAL if quotes else csv.QUOTE_NONE
    refused = 0
    for _ in range(20000):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(0, 16)))
        expected = _records(
            lambda f: csv.reader(f, delimiter=",", strict=True, skipinitialspace=True, quoting=quoting), text
        )
        assert _records(lambda f: MultiCharReader(f, ",", quotes), text) == expected, repr(text)
        got = _records(lambda f: MultiCharReader(f, "::", quotes), text.replace(",", "::"))
        assert _as_commas(got) == expected, repr(text)
        refused += any(isinstance(r, tuple) for r in expected)
    assert refused > 1000 if quotes else refused == 0  # the refusals were exercised; without quotes there are none


def test_a_dialect_reads_a_one_character_delimiter_with_the_csv_module():
    """The title MovieLens publishes with quotes that are not CSV quoting: refused as CSV, read as it is
    without quotes, whichever reader the delimiter's length picks."""
    line = '2523::"Great Performances" Cats (1998)::Musical\n'
    for delimiter in ("::", "|"):
        text = line.replace("::", delimiter)
        with pytest.raises(csv.Error, match="expected after"):
            list(Dialect(delimiter).records(io.StringIO(text, newline="")))
        fields = list(Dialect(delimiter, quotes=False).records(io.StringIO(text, newline="")))
        assert fields == [["2523", '"Great Performances" Cats (1998)', "Musical"]]


def test_a_field_past_the_csv_modules_limit_is_refused_as_it_refuses_it():
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(10)
        for text in ("a::" + "b" * 11 + "\n", '"' + "b\n" * 6 + '"::a\n'):
            with pytest.raises(csv.Error, match=r"field larger than field limit \(10\)"):
                list(Dialect("::").records(io.StringIO(text, newline="")))
        assert list(Dialect("::").records(io.StringIO("a::" + "b" * 10 + "\n", newline=""))) == [["a", "b" * 10]]
    finally:
        csv.field_size_limit(limit)


def test_a_chunk_holding_the_stand_in_characters_still_splits_on_the_delimiter(tmp_path):
    """The columnar engine hands pyarrow a control character in place of `::`; a chunk that holds the first
    choices takes the next free one, and one that holds them all is left to the row reader."""
    taken = b"".join(columnar.SEPARATORS[:3])
    text = b"a::x" + taken + b"::c\n"
    chunk, one = columnar._one_byte(memoryview(text), "::")
    assert one.encode() not in taken and chunk.split(one.encode()) == [b"a", b"x" + taken, b"c\n"]
    with pytest.raises(columnar.NotColumnar, match="no control character is free"):
        columnar._one_byte(memoryview(b"".join(columnar.SEPARATORS) + b"::\n"), "::")
    path = tmp_path / "t.dat"
    path.write_bytes(b"a::x" + taken + b"::c\nd::e:f::g\n")
    batches = list(columnar.read_chunks(path, ["p", "q", "r"], Dialect("::")))
    assert [np.asarray(b.column(1)).tolist() for b in batches] == [["x" + taken.decode(), "e:f"]]
