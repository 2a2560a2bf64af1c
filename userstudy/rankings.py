"""Reading and checking ranking data, and turning ranks into the paper's points.

A *block* is one ranking: one participant ordering every method's video of one trial on one
criterion. ``check_rankings`` accepts a table only when every block is a permutation of 1..k over
the criterion's k methods; everything else is reported at once, each problem with the file's line
numbers (or the DataFrame's row labels), and nothing is dropped without being listed: incomplete
blocks only on request (``drop_incomplete``), and resubmissions (a block saved again, told apart by
the ``submission`` column) are resolved to the latest save and listed as superseded.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from userstudy.cli import count, problems_message
from userstudy.schema import (
    BLOCK_COLUMNS,
    CRITERION,
    METHOD,
    PARTICIPANT,
    POSITION,
    RANK,
    REQUIRED_COLUMNS,
    SUBMISSION,
    SUBMITTED_AT,
    TRIAL,
    order_criteria,
)
from userstudy.study import STUDY_FILE, Study

# Where to stop listing line numbers inside one problem.
MAX_LINES_SHOWN = 12


class RankingsError(ValueError):
    """Ranking data that cannot be analysed; ``problems`` lists every reason with its lines.

    The message is ``FILE: PROBLEM`` for one problem, and a list under ``FILE: N problems in the
    rankings:`` for several (``problems_message``)."""

    noun = "the rankings"

    def __init__(self, problems: list[str], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(problems_message(self.problems, source, self.noun))


@dataclass
class CheckedRankings:
    """Rankings that passed ``check_rankings``, with what was set aside and why.

    ``data`` has one row per (block, method) with the original columns plus ``k`` (methods in the
    block) and ``points`` (k + 1 - rank: rank 1 of k gets k points, rank k gets 1). Its index is
    the line number in the file (or the row label of the DataFrame that was checked).
    """

    data: pd.DataFrame
    criteria: list[str]
    methods: dict[str, list[str]]
    dropped_blocks: pd.DataFrame = field(default_factory=pd.DataFrame)
    superseded: pd.DataFrame = field(default_factory=pd.DataFrame)
    untouched_blocks: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def participants(self) -> list[str]:
        return sorted(self.data[PARTICIPANT].unique())

    @property
    def trials(self) -> list[str]:
        return sorted(self.data[TRIAL].unique())

    def subset(self, keep: pd.Series) -> "CheckedRankings":
        """The rankings of the rows where ``keep`` is True (whole blocks: e.g. without the attention
        checks' trials or the excluded participants), with criteria, methods and untouched blocks
        recomputed; what was dropped or superseded before stays listed."""
        data = self.data[keep.reindex(self.data.index, fill_value=False).astype(bool)]
        if data.empty:
            raise RankingsError(["no ranking is left once the attention checks' trials and the excluded "
                                 "participants are set aside"])
        criteria = order_criteria(list(data[CRITERION].unique()))
        return CheckedRankings(data=data, criteria=criteria,
                               methods={c: sorted(data.loc[data[CRITERION] == c, METHOD].unique()) for c in criteria},
                               dropped_blocks=self.dropped_blocks, superseded=self.superseded,
                               untouched_blocks=untouched_blocks(data))

    def blocks(self, criterion: str | None = None) -> int:
        """Number of blocks used (of one criterion, or of all)."""
        rows = self.data if criterion is None else self.data[self.data[CRITERION] == criterion]
        return int(rows.groupby(list(BLOCK_COLUMNS)).ngroups)


def read_rankings(path: str | os.PathLike) -> pd.DataFrame:
    """Read a rankings CSV as text columns, indexed by line number (the header is line 1).

    Nothing is converted or dropped here: blank lines become empty rows, so that the check
    reports them by line instead of the line numbers silently shifting. Raises
    ``FileNotFoundError`` for a missing file and ``RankingsError`` naming the file for one that
    cannot be read as CSV (a folder, an empty file, not UTF-8, a line with more fields than the
    header: its line is named).
    """
    table = read_csv_table(path, RankingsError, skip_blank_lines=False)
    starts = record_lines(path)
    if len(starts) == len(table):
        table.index = pd.Index(starts, name="line")
    else:                        # (the two readers disagree on what a record is: count them)
        table.index = pd.RangeIndex(2, 2 + len(table), name="line")
    return table


def record_lines(path: str | os.PathLike) -> list[int]:
    """The file line on which each record after the header starts: a quoted field may hold a newline (a
    comment column), so record i is not line i + 2 (an error named line 32 for a row on line 35). Blank
    lines count as records, as ``read_rankings`` keeps them."""
    starts, previous = [], 1
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.reader(handle)
        try:
            next(reader)
            previous = reader.line_num
            for _ in reader:
                starts.append(previous + 1)
                previous = reader.line_num
        except (StopIteration, csv.Error):
            return []
    return starts


# pandas' C parser: "Expected 5 fields in line 3, saw 7" (lines counted from 1, the header included)
# and "EOF inside string starting at row 2" (rows counted from 0).
_TOO_MANY_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")
_OPEN_QUOTE = re.compile(r"EOF inside string starting at row (\d+)")


def csv_problem(error: Exception) -> str:
    """What a pandas ``ParserError`` means, with the file's line number when pandas gives one."""
    text = str(error)
    if match := _TOO_MANY_FIELDS.search(text):
        expected, line, found = (int(g) for g in match.groups())
        return (f"not a readable CSV file: line {line} has {found} fields, the header {expected} "
                "(a field that holds a comma needs double quotes)")
    if match := _OPEN_QUOTE.search(text):
        return f"not a readable CSV file: line {int(match.group(1)) + 1} opens a double quote that is never closed"
    return f"not a readable CSV file: {text.strip()}"


def folder_problem(path: Path) -> str:
    """What is wrong with a folder given for an answers CSV, naming the answers files it holds."""
    held = [name for name in ("rankings.csv", "pairwise.csv") if (path / name).is_file()]
    return "is a folder, not a CSV file" + (f" (it holds {', '.join(held)}: give the file)" if held else "")


def read_csv_table(path: str | os.PathLike, error: type[RankingsError] = RankingsError,
                   skip_blank_lines: bool = False) -> pd.DataFrame:
    """A CSV file as text columns (nothing converted), or ``error`` naming the file and what is wrong.

    Raises ``FileNotFoundError`` for a missing file (the caller says "no such file").
    """
    path = Path(path)
    if path.is_dir():
        raise error([folder_problem(path)], str(path))
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=skip_blank_lines, encoding="utf-8")
    except FileNotFoundError:
        raise
    except pd.errors.EmptyDataError:
        raise error(["the file is empty (no header line)"], str(path)) from None
    except pd.errors.ParserError as problem:
        raise error([csv_problem(problem)], str(path)) from None
    except UnicodeDecodeError as problem:
        raise error([f"not a readable CSV file: not UTF-8 ({problem})"], str(path)) from None
    except OSError as problem:
        raise error([f"cannot be read: {problem.strerror or problem}"], str(path)) from None
    if extra := _first_line_extra_fields(table):
        raise error([f"not a readable CSV file: line 2 has {len(table.columns) + extra} fields, the header "
                     f"{len(table.columns)} (a field that holds a comma needs double quotes)"], str(path))
    short = _short_lines(path, len(table.columns))
    if short:          # pandas fills a short line's missing fields with "": four "is empty" problems for one cut
        raise error([f"line {line} has {count(fields, 'field')}, the header {len(table.columns)} (a line cut "
                     "short, or a field missing)" for line, fields in short[:MAX_LINES_SHOWN]]
                    + ([f"and {len(short) - MAX_LINES_SHOWN} more such lines"] if len(short) > MAX_LINES_SHOWN else []),
                    str(path))
    twice = _repeated_header_names(path)
    if twice:          # pandas renames the second "rank" to "rank.1" and the first is used, silently
        raise error([f"the header names the column(s) {', '.join(map(repr, twice))} more than once; keep one"],
                    str(path))
    return table


def _short_lines(path: Path, width: int) -> list[tuple[int, int]]:
    """(line, fields) of each record of a CSV file (already read by pandas) with fewer fields than the
    header's ``width``, blank lines left out (the callers say what a blank line is)."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        return [(reader.line_num, len(row)) for row in reader if row and len(row) < width]


def _repeated_header_names(path: Path) -> list[str]:
    """The names that the header line of a CSV file (already read by pandas) gives more than once."""
    with open(path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle), [])
    seen: set[str] = set()
    return sorted({name for name in header if name in seen or seen.add(name)})


def _first_line_extra_fields(table: pd.DataFrame) -> int:
    """How many more fields than the header the first line after it has (0 when none).

    pandas does not report that line as it reports any later one ("Expected 5 fields in line 3,
    saw 7"): it takes the extra leading fields for an index, and every column shifts. A table
    read with the default index has a ``RangeIndex``; any other index is that quirk."""
    return 0 if isinstance(table.index, pd.RangeIndex) else table.index.nlevels


def _where(index: pd.Index, labels) -> str:
    labels = list(labels)
    noun = "line" if index.name == "line" else "row"
    shown = ", ".join(str(x) for x in labels[:MAX_LINES_SHOWN])
    more = f" and {len(labels) - MAX_LINES_SHOWN} more" if len(labels) > MAX_LINES_SHOWN else ""
    return f"{noun}{'s' if len(labels) > 1 else ''} {shown}{more}"


def _found(table: pd.DataFrame, mask: pd.Series, column: str, shown: int = 5) -> str:
    """``found 'x'`` for one bad value, else each with its line (``found '3' on line 7, '1.5' on line 8``):
    the values paired with the lines that ``_where`` lists, in file order."""
    values = table.loc[mask, column]
    if len(values) == 1:
        return f"found {values.iloc[0]!r}"
    noun = "line" if table.index.name == "line" else "row"
    more = f" and {len(values) - shown} more" if len(values) > shown else ""
    return "found " + ", ".join(f"{v!r} on {noun} {i}" for i, v in values.iloc[:shown].items()) + more


def _block_name(key: tuple) -> str:
    participant, trial, criterion = key
    return f"participant {participant!r}, trial {trial!r}, criterion {criterion!r}"


def _whole_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Check text for whole numbers: (mask of non-numbers, mask of fractional numbers)."""
    numbers = pd.to_numeric(values.str.strip(), errors="coerce")
    not_number = numbers.isna() | ~np.isfinite(numbers.fillna(0))
    fractional = ~not_number & (numbers != np.round(numbers))
    return not_number, fractional


def _check_rows(table: pd.DataFrame, problems: list[str]) -> pd.Series:
    """Row-level checks; returns the mask of rows fit for the block checks."""
    fit = pd.Series(True, index=table.index)
    blank = (table.apply(lambda column: column.str.strip() == "")).all(axis=1)
    if blank.any():
        problems.append(f"{_where(table.index, table.index[blank])}: empty line")
        fit &= ~blank
    # the optional columns that the server always fills: empty there is an error too (``position``
    # is checked as a number below)
    optional = [c for c in (SUBMISSION, SUBMITTED_AT) if c in table]
    for column in (PARTICIPANT, TRIAL, CRITERION, METHOD, *optional):
        empty = ~blank & (table[column].str.strip() == "")
        if empty.any():
            problems.append(f"{_where(table.index, table.index[empty])}: {column} is empty")
            fit &= ~empty
    for column in (RANK, POSITION):
        if column not in table:
            continue
        not_number, fractional = _whole_numbers(table[column])
        not_number &= ~blank
        if not_number.any():
            problems.append(f"{_where(table.index, table.index[not_number])}: {column} is not a number "
                            f"({_found(table, not_number, column)})")
            fit &= ~not_number
        if fractional.any():
            problems.append(f"{_where(table.index, table.index[fractional])}: {column} is not a whole "
                            f"number ({_found(table, fractional, column)}); ties are not allowed, every rank is "
                            "used once")
            fit &= ~fractional
    if SUBMITTED_AT in table:
        stamps = pd.to_datetime(table[SUBMITTED_AT].str.strip(), utc=True, errors="coerce", format="ISO8601")
        unreadable = ~blank & stamps.isna() & (table[SUBMITTED_AT].str.strip() != "")
        if unreadable.any():
            problems.append(f"{_where(table.index, table.index[unreadable])}: {SUBMITTED_AT} is not an "
                            "ISO 8601 time")
            fit &= ~unreadable
    return fit


def _latest_submissions(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep each block's latest submission; return (kept rows, one row per superseded submission).

    The latest is the one with the latest ``submitted_at`` (when the column is there), ties and
    missing times broken by the order in the file: an answer saved again replaces the earlier one.
    """
    columns = ["participant", "trial", "criterion", "submission", "submitted_at", "lines"]
    if SUBMISSION not in rows:
        return rows, pd.DataFrame(columns=columns)
    order = rows.assign(_line=np.arange(len(rows)))
    if SUBMITTED_AT in rows:
        order["_time"] = pd.to_datetime(rows[SUBMITTED_AT].str.strip(), utc=True, errors="coerce",
                                        format="ISO8601")
    else:
        order["_time"] = pd.NaT
    saves = (order.groupby(list(BLOCK_COLUMNS) + [SUBMISSION], sort=False)
             .agg(_time=("_time", "max"), _line=("_line", "max")).reset_index())
    saves = saves.sort_values(["_time", "_line"], na_position="first", kind="stable")
    latest = saves.groupby(list(BLOCK_COLUMNS), sort=False).tail(1)
    keep = order.merge(latest[list(BLOCK_COLUMNS) + [SUBMISSION]], how="inner",
                       on=list(BLOCK_COLUMNS) + [SUBMISSION])["_line"]
    kept = rows.iloc[np.sort(keep.to_numpy())]
    old = saves.drop(latest.index)
    superseded = []
    for _, save in old.sort_values("_line").iterrows():
        mask = ((rows[PARTICIPANT] == save[PARTICIPANT]) & (rows[TRIAL] == save[TRIAL])
                & (rows[CRITERION] == save[CRITERION]) & (rows[SUBMISSION] == save[SUBMISSION]))
        superseded.append({
            "participant": save[PARTICIPANT], "trial": save[TRIAL], "criterion": save[CRITERION],
            "submission": save[SUBMISSION],
            "submitted_at": rows.loc[mask, SUBMITTED_AT].iloc[0] if SUBMITTED_AT in rows else "",
            "lines": _where(rows.index, rows.index[mask]),
        })
    return kept, pd.DataFrame(superseded, columns=columns)


def grouped_problems(index: pd.Index, found: list[tuple[object, str]]) -> list[str]:
    """``(row label, problem)`` pairs as one ``LINES: PROBLEM`` each, in the order first found."""
    labels: dict[str, list] = {}
    for label, problem in found:
        labels.setdefault(problem, []).append(label)
    return [f"{_where(index, rows)}: {problem}" for problem, rows in labels.items()]


def study_problems(rows: pd.DataFrame, study: Study) -> list[str]:
    """Ranking rows that do not fit the study file: a trial that is not one of its trials, a
    pairwise trial answered with a ranking, a criterion or a method that the study does not have.
    Each problem names the lines, the field, the value and the study file."""
    path = study.root / STUDY_FILE
    trials = {t.id: t for t in study.trials}
    criteria = [c.name for c in study.criteria]
    found = []
    for label, trial_id, criterion, method in zip(rows.index, rows[TRIAL], rows[CRITERION], rows[METHOD]):
        trial = trials.get(trial_id)
        if trial is None:
            found.append((label, f"trial {trial_id!r} is not a trial of {path}"))
            continue
        if trial.pairwise:
            found.append((label, f"trial {trial_id!r} is a pairwise ({trial.kind}) trial of {path}: it is answered "
                                 "with preferences (pairwise.csv), not ranked"))
            continue
        if criterion not in criteria:
            found.append((label, f"criterion {criterion!r} is not a criterion of {path} ({', '.join(criteria)})"))
        if method not in trial.videos:
            found.append((label, f"method {method!r} is not a method of {path} ({', '.join(study.methods)})"))
    return grouped_problems(rows.index, found)


def misspelt_methods(rows: pd.DataFrame, methods: dict[str, list[str]]) -> list[str]:
    """A problem for each method of a criterion that appears in under half as many blocks as the criterion's
    most frequent method and is spelt like another of them (``difflib``): a typo in some rows ('imca' for
    'imac') otherwise shows only as dozens of incomplete blocks, none naming it."""
    found = []
    for criterion, names in methods.items():
        own = rows[rows[CRITERION] == criterion]
        blocks = own.drop_duplicates(list(BLOCK_COLUMNS) + [METHOD]).groupby(METHOD).size()
        if blocks.empty:
            continue
        most = int(blocks.max())
        for method, seen in blocks.items():
            others = [m for m in names if m != method and blocks.get(m, 0) >= most / 2]
            close = difflib.get_close_matches(method, others, n=1, cutoff=0.6)
            if seen < most / 2 and close:
                found.append(f"criterion {criterion!r}: method {method!r} is in {seen} blocks, {close[0]!r} in "
                             f"{int(blocks[close[0]])}: is {method!r} a misspelling of {close[0]!r}? (the incomplete "
                             "blocks reported follow from it)")
    return found


def check_rankings(table: pd.DataFrame, drop_incomplete: bool = False,
                   source: str | None = None, study: Study | None = None) -> CheckedRankings:
    """Check ranking rows and return them ready for analysis, or raise ``RankingsError``.

    Problems reported (all at once, with lines): missing columns, empty lines or fields, ranks (or
    positions) that are not whole numbers, a criterion with a single method, a rank or position
    outside 1..k (k = the criterion's number of methods), a rank or position used twice in a block,
    a method ranked twice in a block, and blocks that miss some of the criterion's methods (unless ``drop_incomplete``,
    which sets them aside and lists each in ``dropped_blocks``). With ``study`` (the study the
    answers belong to), also every row that does not fit it (``study_problems``).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise RankingsError([f"missing column(s) {', '.join(missing)}; the columns found are "
                             f"{', '.join(map(str, table.columns)) or 'none'} (required: "
                             f"{', '.join(REQUIRED_COLUMNS)})"], source)
    if len(table) == 0:
        raise RankingsError(["no rows: the file has a header but no rankings"], source)

    # Missing values of an in-memory table become empty text, reported like empty CSV fields.
    table = table.astype(object).where(table.notna(), "").astype(str)
    problems: list[str] = []
    if SUBMISSION in table:     # one save written twice (an export appended to itself) is one answer
        table = table[~table.duplicated(keep="first")]
    fit = _check_rows(table, problems)
    named = table[[PARTICIPANT, TRIAL, CRITERION, METHOD]].apply(lambda column: column.str.strip())
    # blocks with a row already reported are not checked as blocks: "rank 3 is outside 1..2" after a
    # row with rank NaN was set aside would blame a sound row
    broken = set(named.loc[~fit, list(BLOCK_COLUMNS)].itertuples(index=False, name=None))
    rows = table[fit & ~pd.Series([key in broken for key in named[list(BLOCK_COLUMNS)].itertuples(
        index=False, name=None)], index=table.index)].copy()
    for column in (PARTICIPANT, TRIAL, CRITERION, METHOD):
        rows[column] = rows[column].str.strip()
    rows[RANK] = pd.to_numeric(rows[RANK].str.strip()).astype(int)
    if POSITION in rows:
        rows[POSITION] = pd.to_numeric(rows[POSITION].str.strip()).astype(int)
    if study is not None:
        problems += study_problems(rows, study)

    rows, superseded = _latest_submissions(rows)

    methods: dict[str, list[str]] = {}
    every = named[(named[CRITERION] != "") & (named[METHOD] != "")]      # the rows set aside name methods too
    for criterion, group in rows.groupby(CRITERION, sort=False):
        methods[criterion] = sorted(set(group[METHOD]) | set(every.loc[every[CRITERION] == criterion, METHOD]))
        if len(methods[criterion]) < 2:
            problems.append(f"{_where(rows.index, group.index)}: criterion {criterion!r} has a single "
                            f"method ({methods[criterion][0]!r}); a ranking needs at least two methods")

    problems[:0] = misspelt_methods(rows, methods)     # first: what the incomplete blocks below follow from

    dropped = []
    keep = pd.Series(True, index=rows.index)
    block_cols = list(BLOCK_COLUMNS)
    # Vectorised first, then a loop over the offending rows only: studies have thousands of blocks.
    numbered = [RANK] + ([POSITION] if POSITION in rows else [])   # each a permutation of 1..k in a block
    for column in [METHOD] + numbered:
        repeated = rows[rows.duplicated(block_cols + [column], keep=False)]
        for key, same in repeated.groupby(block_cols + [column], sort=False):
            name, value = _block_name(key[:3]), key[3]
            if column == METHOD:
                problems.append(f"{_where(rows.index, same.index)}: {name}: method {value!r} is ranked "
                                f"{len(same)} times in the block")
            else:
                k = len(methods[key[2]])
                problems.append(f"{_where(rows.index, same.index)}: {name}: {column} {value} is given "
                                f"{len(same)} times in the block (each {column} 1..{k} is used once)")
    k_of_row = rows[CRITERION].map({c: len(m) for c, m in methods.items()})
    for column in numbered:
        outside = rows[(rows[column] < 1) | (rows[column] > k_of_row)]
        for key, block in outside.groupby(block_cols, sort=False):
            k = len(methods[key[2]])
            values = ", ".join(str(r) for r in sorted(block[column].unique()))
            problems.append(f"{_where(rows.index, block.index)}: {_block_name(key)}: {column} {values} is "
                            f"outside 1..{k} (the criterion has {k} methods)")
    distinct = rows.groupby(block_cols, sort=False)[METHOD].transform("nunique")
    short = rows[distinct < k_of_row]
    for key, block in short.groupby(block_cols, sort=False):
        criterion = key[2]
        k = len(methods[criterion])
        absent = [m for m in methods[criterion] if m not in set(block[METHOD])]
        if drop_incomplete:
            keep[block.index] = False
            dropped.append({"participant": key[0], "trial": key[1], "criterion": criterion,
                            "reason": f"incomplete: no rank for {', '.join(absent)}",
                            "lines": _where(rows.index, block.index)})
        else:
            problems.append(f"{_where(rows.index, block.index)}: {_block_name(key)}: incomplete block, no "
                            f"rank for {', '.join(repr(m) for m in absent)} (of the criterion's {k} "
                            "methods); use drop_incomplete / --drop-incomplete to set such blocks aside")
    if problems:
        raise RankingsError(problems, source)

    data = rows[keep].copy()
    if data.empty:
        raise RankingsError(["every block is incomplete: nothing is left to analyse"], source)
    data["k"] = data.groupby(list(BLOCK_COLUMNS))[METHOD].transform("size").astype(int)
    data["points"] = points_from_ranks(data[RANK], data["k"])
    criteria = order_criteria(list(data[CRITERION].unique()))
    dropped_columns = ["participant", "trial", "criterion", "reason", "lines"]
    return CheckedRankings(
        data=data,
        criteria=criteria,
        methods={c: methods[c] for c in criteria},
        dropped_blocks=pd.DataFrame(dropped, columns=dropped_columns),
        superseded=superseded,
        untouched_blocks=untouched_blocks(data),
    )


def untouched_blocks(data: pd.DataFrame) -> pd.DataFrame:
    """Blocks whose final ranking is the order the videos were shown in (a participant who saved
    without ranking, or a coincidence: 1 in k! by chance). Empty without a ``position`` column."""
    if POSITION not in data:
        return pd.DataFrame(columns=list(BLOCK_COLUMNS))
    same = (data[RANK] == data[POSITION]).groupby([data[c] for c in BLOCK_COLUMNS]).all()
    return same[same].reset_index()[list(BLOCK_COLUMNS)]


def load_rankings(path: str | os.PathLike, drop_incomplete: bool = False,
                  study: Study | None = None) -> CheckedRankings:
    """``read_rankings`` then ``check_rankings`` (against ``study`` when given), naming the file in errors."""
    return check_rankings(read_rankings(path), drop_incomplete=drop_incomplete, source=str(path), study=study)


def by_trial(rows: pd.DataFrame) -> pd.DataFrame:
    """One criterion's rankings reduced to one block per trial: each method's mean points over the
    participants who ranked the trial (columns trial, method, points). Friedman on them treats the trials
    (the clips) as the sampled unit: a clip that suits one method counts once, not once per participant
    (with blocks = participant x trial it counts once per participant, and when the clips differ in what
    suits them the test finds differences that are not there; ``userstudy simulate --trial-sd``)."""
    return rows.groupby([TRIAL, METHOD], sort=False)["points"].mean().reset_index()


def mean_points(data: pd.DataFrame, criteria: list[str] | None = None,
                methods: list[str] | None = None) -> pd.DataFrame:
    """The paper's Tables 4/5: mean points per method (rows) and criterion (columns).

    ``data`` needs ``criterion``, ``method`` and ``points`` (as ``CheckedRankings.data`` has).
    """
    table = data.pivot_table(index=METHOD, columns=CRITERION, values="points", aggfunc="mean")
    criteria = criteria if criteria is not None else order_criteria(list(data[CRITERION].unique()))
    methods = methods if methods is not None else sorted(data[METHOD].unique())
    table = table.reindex(index=methods, columns=criteria)
    table.index.name, table.columns.name = METHOD, None
    return table


def points_from_ranks(ranks: pd.Series, k: int | pd.Series) -> pd.Series:
    """Points of the paper: rank 1 of k gets k points, rank k gets 1."""
    return k + 1 - ranks
