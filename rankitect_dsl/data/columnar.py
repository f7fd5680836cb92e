"""Columnar preprocessing on pyarrow: text files read in chunks of whole lines (`read_chunks`, shared with
`columnar_tables.py`), parsed by pyarrow on every core; a Criteo file fitted and encoded with vectorised
kernels. pyarrow rather than polars: it is already how Parquet is read here, and `dictionary_encode` turns
a chunk's column into codes and its few distinct tokens in one call, so Python touches each distinct
token of a chunk, never a row.

It writes exactly what the removed row-at-a-time path wrote (tests keep that path's digests): the same
vocabularies (count ≥ min_count on the training part, ordered by count then token), the same log(1+x)
counts, the same labels. A file the vectorised checks do not accept (a label other than 0/1, a field that
is not an integer, a row of the wrong width) raises NotColumnar, and the sources' row reader names the
file and line of the first bad row."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from .dialect import Dialect

CHUNK_BYTES = 1 << 25  # text parsed at once: memory holds a chunk, its columns and the vocabularies
BLOCK_BYTES = 1 << 22  # pyarrow's unit of parallel parsing within a chunk
CODE = np.int32  # a column's code: its distinct values in order of first appearance (fewer than 2³¹)


class Interned:
    """One column's distinct values (strings, as the row reader sees them), coded in order of first
    appearance; a chunk's column is coded through pyarrow's `dictionary_encode`, so Python sees each
    distinct value of a chunk once, never a row."""

    def __init__(self):
        self.index: dict = {}
        self.values: list = []

    def codes_of(self, array) -> np.ndarray:
        """Codes of a pyarrow array's values; a null reads as "" and a non-string value as `str(v)`, as the
        row reader reads a Parquet field."""
        import pyarrow.compute as pc

        encoded = pc.dictionary_encode(array, null_encoding="encode")
        distinct = encoded.dictionary.to_pylist()
        local = np.asarray(
            [self.code("" if v is None else v if isinstance(v, str) else str(v)) for v in distinct], CODE
        )
        return local[encoded.indices.to_numpy(zero_copy_only=False)] if len(local) else np.zeros(0, CODE)

    def code(self, text: str) -> int:
        code = self.index.get(text)
        if code is None:
            code = self.index[text] = len(self.values)
            self.values.append(text)
        return code

    def mapped(self, codes: np.ndarray, fn, dtype) -> np.ndarray:
        """fn of each row's value, computed once per distinct value."""
        table = np.asarray([fn(v) for v in self.values], dtype=dtype)
        return table[codes] if len(table) else np.zeros(len(codes), dtype=dtype)


class NotColumnar(Exception):
    """The vectorised checks refused a file (the message says why): the sources' row reader names the bad
    row's file and line."""


def read_chunks(path: Path, names: list, dialect, skip_rows: int = 0, include_columns=None, as_csv=False, integers=()):
    """The file's rows as string-typed record batches, parsed CHUNK_BYTES of whole lines at a time by
    pyarrow on every core, with no quoting. pyarrow's own streaming reader (`open_csv`) reads up to 32
    blocks ahead of a consumer slower than its parser, so its memory grows with the file; here memory
    holds one chunk. `as_csv` reads as the row reader's `dialect` does (quotes, strict, spaces after
    the delimiter skipped): a chunk without a quote (or any chunk when the dialect has no quotes) by
    pyarrow with the spaces trimmed, a chunk with one, or with a line past the csv module's field limit,
    by the dialect's reader (pyarrow reads the malformed
    `"a"b` as `ab`, trims inside quotes, and takes fields of any length). pyarrow splits on one
    character: a longer delimiter (`::`) is first replaced, in the chunk's bytes, by a control character
    the chunk lacks (`_one_byte`). The columns named in `integers` are parsed as int64 by pyarrow, an
    empty field null."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    columns = include_columns if include_columns is not None else names
    convert = pcsv.ConvertOptions(
        column_types={n: pa.int64() if n in integers else pa.string() for n in names},
        null_values=[""],
        include_columns=include_columns,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    opener = gzip.open if path.suffix == ".gz" else open
    buf, filled = bytearray(CHUNK_BYTES), 0  # one buffer, reused: no large allocation per chunk to fragment
    with opener(path, "rb") as fh:
        while True:
            if filled == len(buf):  # a line longer than the buffer, or a quoted field held over
                buf = buf + bytes(len(buf))  # a new buffer: pyarrow may still hold a view of the old one
            got = fh.readinto(memoryview(buf)[filled:])
            filled += got
            cut = buf.rfind(b"\n", 0, filled) + 1 if got else filled
            if cut == 0:
                if filled == 0:
                    return
                continue
            text = memoryview(buf)[:cut]
            quoted = dialect.quotes and buf.find(b'"', 0, cut) >= 0
            if as_csv and (quoted or _longest_line(text) > csv.field_size_limit()):
                table, cut = _python_csv(text, names, columns, dialect, skip_rows, at_end=not got)
                if cut == 0:  # one quoted record longer than the buffer: read on
                    continue
            else:
                table = _arrow_csv(_one_byte(text, dialect.delimiter), names, convert, skip_rows, as_csv)
            del text
            skip_rows = 0
            buf[: filled - cut] = buf[cut:filled]
            filled -= cut
            if table.num_rows:
                yield table.combine_chunks().to_batches()[0]


SEPARATORS = [bytes([b]) for b in (0x1F, 0x1E, 0x1D, 0x1C, *range(0x01, 0x09), *range(0x0E, 0x1C))]


def _one_byte(text, delimiter: str):
    """(text, a one-byte delimiter) with the same fields: a longer delimiter replaced, left to right as
    `str.split` finds it, by a control character that the chunk does not hold; NotColumnar when it holds
    them all."""
    if len(delimiter) == 1:
        return text, delimiter
    chunk = bytes(text)
    for separator in SEPARATORS:
        if separator not in chunk:
            return chunk.replace(delimiter.encode(), separator), separator.decode()
    raise NotColumnar(f"no control character is free to stand for the delimiter {delimiter!r}")


def _longest_line(text) -> int:
    """The longest line's length: a line longer than the csv module's field limit may hold a field the row
    reader refuses, so its chunk is read by the csv module, which refuses it too."""
    breaks = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n"))
    return int(np.diff(breaks, prepend=-1).max(initial=0))


def _arrow_csv(text_and_delimiter, names: list, convert, skip_rows: int, trim: bool):
    """A chunk without quotes, parsed by pyarrow; with `trim`, the spaces after each delimiter dropped. Text
    that is not UTF-8 is read with U+FFFD for each bad sequence, as the row reader's decoder reads it."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    text, delimiter = text_and_delimiter
    parse_options = pcsv.ParseOptions(delimiter=delimiter, quote_char=False, escape_char=False)
    read = pcsv.ReadOptions(column_names=names, skip_rows=skip_rows, block_size=BLOCK_BYTES)
    try:
        try:
            table = pcsv.read_csv(pa.py_buffer(text), read, parse_options, convert)
        except pa.ArrowInvalid as err:
            if "UTF8" not in str(err):
                raise
            replaced = str(text, "utf-8", "replace").encode()
            table = pcsv.read_csv(pa.py_buffer(replaced), read, parse_options, convert)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise NotColumnar(str(err)) from None
    if trim:
        table = pa.table(
            [pc.utf8_ltrim(table.column(c), characters=" ") for c in table.column_names], names=table.column_names
        )
    return table


def _python_csv(text, names: list, columns: list, dialect, skip_rows: int, at_end: bool):
    """A chunk with quotes, read by the row reader's csv dialect into a string table, and how many of its
    bytes that took: a quoted field still open at the chunk's end (a line break inside quotes) is left,
    from its record's first line, for the next chunk."""
    import csv
    import io

    import pyarrow as pa

    reader = dialect.records(io.StringIO(str(text, "utf-8", "replace"), newline=""))
    rows, lines = [], 0
    try:
        for row in reader:
            rows.append(row)
            lines = reader.line_num
    except csv.Error as err:
        breaks = np.flatnonzero(np.frombuffer(text, dtype=np.uint8) == ord("\n"))
        if at_end or reader.line_num < len(breaks):  # not a record cut by the chunk: a row csv refuses
            raise NotColumnar(f"a row the csv module cannot read ({err})") from None
        consumed = int(breaks[lines - 1]) + 1 if lines else 0
    else:
        consumed = len(text)
    rows = [r for r in rows if r][skip_rows:]
    if any(len(r) != len(names) for r in rows):
        raise NotColumnar("a row of the wrong width")
    at = [names.index(c) for c in columns]
    return pa.table({c: pa.array([r[k] for r in rows], pa.string()) for c, k in zip(columns, at)}), consumed


def _batches(path: Path, n_dense: int, n_cat: int):
    """(labels, dense with NaN where missing, the categorical string columns) per record batch."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ints = [f"I{k + 1}" for k in range(n_dense)]
    names = ["label", *ints, *(f"C{k + 1}" for k in range(n_cat))]
    for batch in read_chunks(path, names, Dialect("\t"), integers=ints):  # a field that is not an integer: NotColumnar
        dense = np.empty((batch.num_rows, n_dense))
        for k in range(n_dense):
            dense[:, k] = batch.column(1 + k).to_numpy(zero_copy_only=False)  # NaN where the field is empty
        try:
            labels = pc.cast(batch.column(0), pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:  # not a number
            raise NotColumnar(str(err)) from None
        if not np.isin(labels, (0.0, 1.0)).all():
            raise NotColumnar("a label outside {0, 1}")
        yield labels, dense, [batch.column(1 + n_dense + k) for k in range(n_cat)]


def build(source, folder: Path, split, min_count: int) -> tuple[int, list]:
    """dense.npy (log(1+max(x, 0)), 0 where missing), cats.npy (vocabulary ids, 0 out of vocabulary) and
    labels.npy in `folder`, in one read of the file: each categorical column is dictionary-encoded batch by
    batch into codes in order of first appearance, and every code counted; once the rows are counted
    (`split(n)` gives the training part's length), the evaluation tail's codes are read back and taken off
    the counts, the training counts ranked into the vocabulary and the codes rewritten as its ids. Nothing
    is memory-mapped while writing, so memory holds a chunk and the vocabularies, not the file. Returns
    (n_train, vocab_sizes)."""

    n_dense, n_cat = source.n_dense, source.n_cat
    tokens = [Interned() for _ in range(n_cat)]
    counts = [np.zeros(0, dtype=np.int64) for _ in range(n_cat)]  # per column: rows of each code
    n = 0
    with (
        open(folder / "dense.raw", "wb") as dense,
        open(folder / "labels.raw", "wb") as labels,
        open(folder / "codes.raw", "wb") as codes,
    ):
        for batch_labels, batch_dense, batch_cats in _batches(source.path, n_dense, n_cat):
            missing = np.isnan(batch_dense)
            values = np.log1p(np.maximum(np.where(missing, 0.0, batch_dense), 0.0))
            np.where(missing, 0.0, values).astype(np.float32).tofile(dense)
            batch_labels.astype(np.float32).tofile(labels)
            batch_codes = np.empty((len(batch_labels), n_cat), dtype=CODE)
            for k, column in enumerate(batch_cats):
                batch_codes[:, k] = tokens[k].codes_of(column)
                counts[k] = _added(counts[k], np.bincount(batch_codes[:, k], minlength=len(tokens[k].values)))
            batch_codes.tofile(codes)
            n += len(batch_labels)
    n_train = split(n)
    for chunk in _row_chunks(folder / "codes.raw", n_cat, n_train, n):
        for k in range(n_cat):
            counts[k] -= np.bincount(chunk[:, k], minlength=len(counts[k]))
    ids = [vocabulary_ids(t.values, c, min_count) for t, c in zip(tokens, counts)]
    table = np.concatenate(ids)  # code c of column k → its id at table[start[k] + c]
    start = np.cumsum([0] + [len(i) for i in ids[:-1]]).astype(np.int64)
    with open(folder / "cats.npy", "wb") as out:
        npy_header(out, np.int64, (n, n_cat))
        for chunk in _row_chunks(folder / "codes.raw", n_cat, 0, n):
            table[chunk + start].tofile(out)
    _as_npy(folder / "dense.raw", folder / "dense.npy", np.float32, (n, n_dense))
    _as_npy(folder / "labels.raw", folder / "labels.npy", np.float32, (n,))
    (folder / "codes.raw").unlink()
    return n_train, [int(i.max(initial=0)) + 1 for i in ids]


def vocabulary_ids(tokens: list, counts: np.ndarray, min_count: int) -> np.ndarray:
    """code → vocabulary id: the tokens seen at least `min_count` times in the training rows get 1, 2, … by
    count, then token (the row reader's order); the rest 0, the out-of-vocabulary bucket."""
    frequent = sorted((c for c in range(len(tokens)) if counts[c] >= min_count), key=lambda c: (-counts[c], tokens[c]))
    ids = np.zeros(len(tokens), dtype=np.int64)
    ids[frequent] = np.arange(1, len(frequent) + 1)
    return ids


ROWS_PER_CHUNK = 1 << 18


def _row_chunks(path: Path, width: int, first: int, stop: int):
    """Rows first..stop of a raw CODE (rows × width) file, a chunk of rows at a time."""
    size = np.dtype(CODE).itemsize * width
    with open(path, "rb") as fh:
        fh.seek(first * size)
        for at in range(first, stop, ROWS_PER_CHUNK):
            take = min(ROWS_PER_CHUNK, stop - at)
            yield np.fromfile(fh, dtype=CODE, count=take * width).reshape(take, width)


def _added(total: np.ndarray, more: np.ndarray) -> np.ndarray:
    """Counts plus counts over as many or more codes (a column's codes only grow)."""
    more[: len(total)] += total
    return more


def npy_header(out, dtype, shape) -> None:
    """The .npy header of a C-order array written after it in raw bytes."""
    np.lib.format.write_array_header_1_0(
        out, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    )


def _as_npy(raw: Path, path: Path, dtype, shape) -> None:
    """A raw C-order array file as a .npy file, copied in blocks."""
    import shutil

    with open(path, "wb") as out, open(raw, "rb") as data:
        npy_header(out, dtype, shape)
        shutil.copyfileobj(data, out, 1 << 24)
    raw.unlink()
