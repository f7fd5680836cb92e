"""How a text table's lines become fields, for every reader of text tables (the row reader, the columnar
engine's header and quoted chunks): the csv module's dialect — quotes with `""` inside, strict (`"a"b` is an
error), spaces after the delimiter skipped, the csv module's field limit — or, with `quotes` off, a quote as
any other character (the csv module's QUOTE_NONE), for files that were never CSV: MovieLens's `.dat` has the
title `"Great Performances" Cats (1998)`. The csv module takes only a one-character delimiter;
`MultiCharReader` reads the same dialect with a longer one (MovieLens's `::`), raising `csv.Error` where the
csv module would."""

from __future__ import annotations

import csv
from dataclasses import dataclass

QUOTE = '"'


@dataclass(frozen=True)
class Dialect:
    delimiter: str
    quotes: bool = True  # a field may be quoted; off, `"` is an ordinary character

    def records(self, lines):
        """An iterator of each record's fields over `lines` (a file opened with `newline=""`), with
        `line_num`."""
        if len(self.delimiter) == 1:
            quoting = csv.QUOTE_MINIMAL if self.quotes else csv.QUOTE_NONE
            return csv.reader(lines, delimiter=self.delimiter, strict=True, skipinitialspace=True, quoting=quoting)
        return MultiCharReader(lines, self.delimiter, self.quotes)


def _line_end(line: str) -> int:
    """Where the line's terminator (`\\r\\n`, `\\n` or `\\r`) starts."""
    end = len(line)
    if line.endswith("\n"):
        end -= 1
    if line[:end].endswith("\r"):
        end -= 1
    return end


class MultiCharReader:
    """The csv dialect above with a delimiter of several characters. A record is a line, or several when a
    quoted field holds a line break; a blank line is an empty record, as the csv module reads it."""

    def __init__(self, lines, delimiter: str, quotes: bool = True):
        self.lines = iter(lines)
        self.delimiter = delimiter
        self.quotes = quotes
        self.line_num = 0

    def __iter__(self):
        return self

    def __next__(self) -> list:
        line = next(self.lines)
        self.line_num += 1
        text, end = line, _line_end(line)
        if end == 0:
            return []
        fields, at = [], 0
        limit = csv.field_size_limit()
        while True:
            while at < end and text[at] == " ":
                at += 1
            if self.quotes and at < end and text[at] == QUOTE:
                value, text, end, at = self._quoted(text, end, at + 1, limit)
            else:
                stop = text.find(self.delimiter, at, end)
                stop = end if stop < 0 else stop
                value, at = text[at:stop], stop
            if len(value) > limit:
                raise csv.Error(f"field larger than field limit ({limit})")
            fields.append(value)
            if at >= end:
                return fields
            at += len(self.delimiter)

    def _quoted(self, text: str, end: int, at: int, limit: int):
        """A quoted field from just after its opening quote: (its value, the text and line end it finishes
        in, the position after its closing quote)."""
        parts, size = [], 0
        while True:
            quote = text.find(QUOTE, at, end)
            if quote < 0:  # a line break inside the quotes: the field goes on in the next line
                parts.append(text[at:])
                size += len(text) - at
                if size > limit:
                    raise csv.Error(f"field larger than field limit ({limit})")
                text = next(self.lines, None)
                if text is None:
                    raise csv.Error("unexpected end of data")
                self.line_num += 1
                at, end = 0, _line_end(text)
                continue
            parts.append(text[at:quote])
            size += quote - at
            if text.startswith(QUOTE, quote + 1) and quote + 1 < end:
                parts.append(QUOTE)
                size += 1
                at = quote + 2
                continue
            after = quote + 1
            if after < end and not text.startswith(self.delimiter, after):
                raise csv.Error(f"'{self.delimiter}' expected after '{QUOTE}'")
            return "".join(parts), text, end, after
