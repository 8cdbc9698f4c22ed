"""Keeping a deletion request out of everything a run writes.

A deletion request names the people (samples) whose data must be forgotten; the artifacts of an
unlearning run — ``config.yaml``, ``hparams.yaml``, checkpoints, the unlearning report, the W&B
run — must prove *that* a request was served without saying *which* samples it named. This module
holds the three pieces that make that so:

* **Keyed fingerprints.** :func:`request_fingerprint` is an HMAC-SHA256, keyed by a secret the data
  controller keeps, over a canonical encoding of the sorted forget indices and the dataset size.
  Without the key nobody can test guesses against it (an unkeyed hash of a 1- or 2-index request
  is recovered by enumerating all requests in a second). The fingerprint reads
  ``hmac-sha256:<key id>:<64 hex digits>``; the key id (8 hex digits, itself an HMAC of a fixed
  label) tells which key made it without revealing the key. :func:`verify_request` (and
  ``lightning-unlearn verify-request``) checks whether a given request matches a report.
* **The key** (:func:`request_key`): the environment variable ``LIGHTNING_UNLEARN_REQUEST_KEY``
  (the secret itself, at least 16 characters), else the file named by
  ``LIGHTNING_UNLEARN_REQUEST_KEY_FILE``, else the per-user key file
  ``$XDG_CACHE_HOME/lightning_unlearn/request.key`` (``~/.cache/...``), generated with 32 random
  bytes and permissions 0600 the first time it is needed (with a warning naming it: keep it, or
  reports made with it cannot be verified later).
* **Redaction** (:func:`redact_config`): in a (nested) config, ``forget_indices``, ``forget_ids`` and
  ``retain_indices`` become ``"<redacted: 3 indices, fingerprint hmac-sha256:…>"``, and the
  ``seed`` next to a ``forget_fraction`` (which regenerates every index) becomes
  ``"<redacted: seed of forget_fraction>"``. The CLI's ``config.yaml``, the config it logs to every
  logger (W&B, ``hparams.yaml``), :class:`~lightning_unlearn.ForgetRetainDataModule`'s saved
  hyperparameters and the W&B logger's hyperparameters all pass through it.

Requests are best given *by reference*: ``forget_indices_file``/``forget_ids_file`` name a file the
user controls (:func:`read_request_file`), so the config names the file, not the samples, and the
saved ``config.yaml`` can be run again as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import secrets
import stat
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Environment variable holding the request key itself.
KEY_ENV = "LIGHTNING_UNLEARN_REQUEST_KEY"
#: Environment variable naming a file that holds the request key.
KEY_FILE_ENV = "LIGHTNING_UNLEARN_REQUEST_KEY_FILE"
#: Shortest key accepted, in bytes.
MIN_KEY_BYTES = 16
#: Prefix of a keyed fingerprint (``hmac-sha256:<key id>:<digest>``).
SCHEME = "hmac-sha256"
#: Keys of a config whose values name samples (redacted when set).
REQUEST_KEYS = {
    "forget_indices": "indices",
    "forget_ids": "sample ids",
    "retain_indices": "retain indices",
    "forget_users": "user ids",
    "forget_items": "item ids",
    "forget_interactions": "interactions",
}

_DOMAIN = b"lightning_unlearn/deletion-request/v1\x00"
_KEY_ID_LABEL = b"lightning_unlearn/request-key-id/v1"
_WARNED: set[str] = set()


# ---------------------------------------------------------------------------------------------- the key
def default_key_path() -> Path:
    """The per-user key file used when neither environment variable is set:
    ``$XDG_CACHE_HOME/lightning_unlearn/request.key`` (``~/.cache/lightning_unlearn/request.key``)."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "lightning_unlearn" / "request.key"


def _check_key(key: bytes, source: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(
            f"The request key from {source} should be at least {MIN_KEY_BYTES} bytes long (e.g. `openssl rand -hex 32`), "
            f"got {len(key)}."
        )
    return key


def read_key_file(path: str | os.PathLike, argument: str = "key_file") -> bytes:
    """The key held in ``path`` (surrounding whitespace stripped, so ``openssl rand -hex 32 > key`` works).

    Warns when the file can be read by other users (POSIX permissions beyond 0600).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"`{argument}` should name an existing key file, got {str(path)!r}.")
    if os.name == "posix" and stat.S_IMODE(path.stat().st_mode) & 0o077:
        warnings.warn(
            f"The request key file {str(path)!r} can be read by other users (mode {oct(stat.S_IMODE(path.stat().st_mode))}); "
            f"`chmod 600 {path}`.",
            stacklevel=3,
        )
    return _check_key(path.read_bytes().strip(), f"{argument}={str(path)!r}")


def _generate_key_file(path: Path) -> None:
    """Create ``path`` with 32 random bytes (hex) and mode 0600, atomically: concurrent processes
    (DDP ranks) that race here all end up reading the same key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process made the key first: then that key is used
        except FileExistsError:
            return
    finally:
        tmp.unlink(missing_ok=True)
    if str(path) not in _WARNED:
        _WARNED.add(str(path))
        warnings.warn(
            f"No request key was set ({KEY_ENV} or {KEY_FILE_ENV}): generated one in {str(path)!r} (mode 0600). Request "
            "fingerprints are keyed by it; keep and back it up, or reports made with it cannot be verified later.",
            stacklevel=4,
        )


def request_key(key: str | bytes | None = None, key_file: str | os.PathLike | None = None) -> bytes:
    """The secret that keys request fingerprints.

    In order: ``key`` (the secret itself), ``key_file`` (a file holding it), the environment variable
    ``LIGHTNING_UNLEARN_REQUEST_KEY``, the file named by ``LIGHTNING_UNLEARN_REQUEST_KEY_FILE``, and
    the per-user key file :func:`default_key_path`, generated (32 random bytes, mode 0600, with a
    warning) when it does not exist. A key is at least 16 bytes.
    """
    if key is not None and key_file is not None:
        raise ValueError("Give the request key as `key` or `key_file`, not both.")
    if key is not None:
        return _check_key(key.encode() if isinstance(key, str) else bytes(key), "`key`")
    if key_file is not None:
        return read_key_file(key_file, "key_file")
    env = os.environ.get(KEY_ENV)
    if env:
        return _check_key(env.encode(), f"the environment variable {KEY_ENV}")
    env_file = os.environ.get(KEY_FILE_ENV)
    if env_file:
        return read_key_file(env_file, KEY_FILE_ENV)
    path = default_key_path()
    if not path.is_file():
        _generate_key_file(path)
    return read_key_file(path, "the default key file")


def key_id(key: bytes) -> str:
    """8 hex digits naming ``key`` (an HMAC of a fixed label: it does not reveal the key)."""
    return hmac.new(key, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:8]


# ---------------------------------------------------------------------------------------------- fingerprints
def _canonical(indices: Sequence[int], dataset_size: int) -> bytes:
    """The bytes the fingerprint is computed over: a domain label, the dataset size, the count, and
    the sorted, de-duplicated indices as little-endian int64."""
    idx = np.asarray(sorted({int(i) for i in indices}), dtype="<i8")
    return _DOMAIN + f"n={int(dataset_size)};k={len(idx)};".encode() + idx.tobytes()


def request_fingerprint(
    indices: Sequence[int], dataset_size: int, *, key: str | bytes | None = None, key_file: str | os.PathLike | None = None
) -> str:
    """``hmac-sha256:<key id>:<digest>``: HMAC-SHA256 keyed by :func:`request_key` of the sorted forget
    indices and the dataset size. The same request and key always give the same fingerprint;
    without the key it cannot be recomputed, so small requests cannot be recovered by enumeration."""
    secret = request_key(key, key_file)
    digest = hmac.new(secret, _canonical(indices, dataset_size), hashlib.sha256).hexdigest()
    return f"{SCHEME}:{key_id(secret)}:{digest}"


def legacy_fingerprint(indices: Sequence[int], dataset_size: int) -> str:
    """The unkeyed SHA-256 that reports and checkpoints of lightning_unlearn < 1.1 recorded. Only ever
    *compared with* (to resume such a checkpoint, or to check such a report), never written."""
    h = hashlib.sha256(f"n={int(dataset_size)};".encode())
    h.update(np.asarray(sorted({int(i) for i in indices}), dtype=np.int64).tobytes())
    return h.hexdigest()


def parse_fingerprint(fingerprint: str) -> tuple[str, str] | None:
    """``(key id, digest)`` of a keyed fingerprint; ``None`` for a legacy unkeyed one."""
    parts = fingerprint.split(":")
    if len(parts) == 3 and parts[0] == SCHEME:
        return parts[1], parts[2]
    return None


def short_fingerprint(fingerprint: str | None) -> str:
    """``hmac-sha256:<key id>:<first 12 digits>…`` for messages and redaction markers."""
    if not fingerprint:
        return "none"
    parsed = parse_fingerprint(fingerprint)
    if parsed is None:
        return f"{fingerprint[:12]}…"
    return f"{SCHEME}:{parsed[0]}:{parsed[1][:12]}…"


def fingerprints_match(saved: str, indices: Sequence[int], dataset_size: int, *, key: bytes | None = None) -> bool:
    """Whether ``saved`` (keyed, or legacy unkeyed) is the fingerprint of this request, in constant time."""
    if parse_fingerprint(saved) is None:
        return hmac.compare_digest(saved, legacy_fingerprint(indices, dataset_size))
    return hmac.compare_digest(saved, request_fingerprint(indices, dataset_size, key=key))


# ---------------------------------------------------------------------------------------------- request files
def read_request_file(path: str | os.PathLike, argument: str = "forget_indices_file") -> list[Any]:
    """The request held in a file the user controls: a list of indices (or sample ids).

    * ``.npy``: a 1-D array (``np.save``; no pickles);
    * ``.json``: a JSON list;
    * anything else: text, values separated by whitespace, commas or newlines; ``#`` starts a
      comment. With ``argument="forget_ids_file"`` each non-empty line is one id (kept as text).

    Integer-looking values of ``forget_indices_file`` become ints; the request itself is validated
    by :func:`~lightning_unlearn.datamodules.resolve_request`.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"`{argument}` should name an existing file of the request, got {str(path)!r}.")
    ids = argument == "forget_ids_file"
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(p, allow_pickle=False)
        except ValueError as err:
            raise ValueError(f"`{argument}` {str(path)!r} should be a numeric .npy array (saved with np.save): {err}") from err
        if values.ndim != 1:
            raise ValueError(f"`{argument}` {str(path)!r} should hold a 1-D array, got shape {tuple(values.shape)}.")
        out = values.tolist()
    elif suffix == ".json":
        try:
            out = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"`{argument}` {str(path)!r} is not valid JSON: {err}.") from err
        if not isinstance(out, list):
            raise ValueError(f"`{argument}` {str(path)!r} should hold a JSON list, got a {type(out).__name__}.")
    else:
        out = []
        for number, line in enumerate(p.read_text().splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if ids:
                out.append(line)
                continue
            for token in line.replace(",", " ").split():
                try:
                    out.append(int(token))
                except ValueError:
                    raise ValueError(
                        f"`{argument}` {str(path)!r} should hold integer indices; line {number} has {token!r}."
                    ) from None
    if not out:
        raise ValueError(f"`{argument}` {str(path)!r} holds no {'ids' if ids else 'indices'}; the request would be empty.")
    return out


def request_from_file(name: str, value: Any, file: str | os.PathLike | None) -> Any:
    """``value`` of the request argument ``name``, or the request read from ``file`` (``name_file``);
    giving both is an error."""
    if file is None:
        return value
    if value is not None:
        raise ValueError(f"Give `{name}` or `{name}_file`, not both; got both ({name}_file={str(file)!r}).")
    return read_request_file(file, f"{name}_file")


# ---------------------------------------------------------------------------------------------- redaction
def redaction_marker(key: str, value: Any, request: Any = None) -> str:
    """``"<redacted: 3 indices, fingerprint hmac-sha256:…>"`` for the request value ``value`` of config key ``key``."""
    what = REQUEST_KEYS.get(key, "values")
    try:
        count = f"{len(value)} {what}"
    except TypeError:
        count = what
    fingerprint = getattr(request, "fingerprint", None) if key != "retain_indices" else None
    return f"<redacted: {count}" + (f", fingerprint {short_fingerprint(fingerprint)}" if fingerprint else "") + ">"


def _last_segment(key: Any) -> Any:
    if not isinstance(key, str):
        return key
    return key.replace("/", ".").rsplit(".", 1)[-1]


def redact_config(config: Any, request: Any = None) -> Any:
    """A copy of ``config`` (nested dicts and lists) with every value that names samples replaced.

    In every mapping: a set ``forget_indices``, ``forget_ids`` or ``retain_indices`` (also as the last
    part of a flattened key, ``data.init_args.forget_indices``) becomes a marker with the count and,
    given the resolved ``request``, its keyed fingerprint; a ``seed`` next to a set ``forget_fraction``
    becomes ``"<redacted: seed of forget_fraction>"`` (with the dataset size, fraction and seed
    regenerate every index). Everything else is kept as it is.
    """
    if isinstance(config, Mapping):
        fraction = any(_last_segment(k) == "forget_fraction" and v is not None for k, v in config.items())
        out = {}
        for k, v in config.items():
            name = _last_segment(k)
            if name in REQUEST_KEYS and v is not None and not (isinstance(v, str) and v.startswith("<redacted")):
                out[k] = redaction_marker(name, v, request)
            elif name == "seed" and fraction and v is not None:
                out[k] = "<redacted: seed of forget_fraction>"
            else:
                out[k] = redact_config(v, request)
        return out
    if isinstance(config, (list, tuple)):
        return type(config)(redact_config(v, request) for v in config)
    return config


# ---------------------------------------------------------------------------------------------- verification
@dataclass(frozen=True)
class Verification:
    """The answer of :func:`verify_request`: ``matches`` (also its truth value) and why."""

    matches: bool
    reason: str

    def __bool__(self) -> bool:
        return self.matches


def _load_report(report: Mapping[str, Any] | str | os.PathLike) -> Mapping[str, Any]:
    if isinstance(report, Mapping):
        return report
    path = Path(report).expanduser()
    if path.is_dir():
        candidates = [path / "report.json", path / "report" / "report.json"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(f"`report` {str(report)!r} is a folder without report.json (looked for {[str(c) for c in candidates]}).")
        path = found[0]
    if not path.is_file():
        raise FileNotFoundError(f"`report` should be a report.json (or its folder), got {str(report)!r}.")
    return json.loads(path.read_text())


def verify_request(
    report: Mapping[str, Any] | str | os.PathLike,
    request: Any,
    *,
    key: str | bytes | None = None,
    key_file: str | os.PathLike | None = None,
) -> Verification:
    """Whether ``request`` is the deletion request an unlearning report was made for.

    Args:
        report: The report (a dict, a ``report.json`` path or its folder) with its ``request``
            fingerprint and ``dataset_size``.
        request: The request to check: a path to a request file (:func:`read_request_file`), a
            sequence of forget indices, or a resolved :class:`~lightning_unlearn.DeletionRequest`.
        key, key_file: The key the report was made with (default: :func:`request_key`'s order).

    Returns a :class:`Verification`, true when the request's keyed fingerprint equals the report's.
    A report made with another key is a mismatch that says so (the key ids differ).
    """
    summary = _load_report(report).get("request") or {}
    saved, size = summary.get("fingerprint"), summary.get("dataset_size")
    if not saved:
        return Verification(False, "the report has no request fingerprint (explicit forget and retain datasets)")
    if hasattr(request, "indices") and hasattr(request, "dataset_size"):
        indices, own_size = list(request.indices), int(request.dataset_size)
        if size is not None and own_size != size:
            return Verification(False, f"the request is over {own_size} samples, the report's over {size}")
        size = own_size
    elif isinstance(request, (str, os.PathLike)):
        indices = [int(i) for i in read_request_file(request, "request")]
    else:
        indices = [int(i) for i in request]
    if size is None:
        return Verification(False, "the report does not record the dataset size the request was resolved against")
    if parse_fingerprint(saved) is None:
        ok = hmac.compare_digest(saved, legacy_fingerprint(indices, size))
        return Verification(ok, "legacy unkeyed SHA-256 fingerprint " + ("matches" if ok else "does not match"))
    secret = request_key(key, key_file)
    saved_key = parse_fingerprint(saved)[0]  # type: ignore[index]
    if saved_key != key_id(secret):
        return Verification(
            False, f"the report was fingerprinted with another key (key id {saved_key}; this key's id is {key_id(secret)})"
        )
    ok = hmac.compare_digest(saved, request_fingerprint(indices, size, key=secret))
    n = len(set(indices))
    return Verification(ok, f"{'matches' if ok else 'does not match'}: {n} indices over {size} samples, key id {saved_key}")


def main(argv: list[str] | None = None) -> None:
    """``lightning-unlearn verify-request --report REPORT --request FILE [--key-file KEY]``: exit 0 when
    the request matches the report's fingerprint, 1 when it does not, 2 when a file is missing or malformed."""
    parser = argparse.ArgumentParser(
        prog="lightning-unlearn verify-request",
        description="Check whether a deletion request (a file of forget indices) is the one an unlearning report was made "
        f"for. The key is taken from --key-file, else ${KEY_ENV}, ${KEY_FILE_ENV} or {default_key_path()}.",
    )
    parser.add_argument("--report", required=True, help="report.json, or the folder holding it")
    parser.add_argument("--request", required=True, help="file of forget indices (.txt, .json or .npy)")
    parser.add_argument("--key-file", default=None, help="file holding the request key the report was made with")
    args = parser.parse_args(argv)
    try:
        result = verify_request(args.report, args.request, key_file=args.key_file)
    except (OSError, ValueError) as err:
        parser.error(str(err))  # exit code 2, with the usage
    print(f"{'MATCH' if result else 'NO MATCH'}: {result.reason}")
    sys.exit(0 if result else 1)


if __name__ == "__main__":
    main()
