"""The JSON Schema of ``report.json``, and :func:`validate_report`.

The schema is a Python dict (no package data to ship). It pins what a report may contain: the
``request`` object allows only its five summary fields, so a report that carried the forget indices
or any sample data would fail validation, and its fingerprint must be keyed (an unkeyed SHA-256 is
accepted only in reports of schema 1.0). ``jsonschema`` is imported lazily (extra ``report``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lightning_unlearn._errors import missing_extra

#: Version of the report format; bump the major number on incompatible changes.
SCHEMA_VERSION = "1.1"

_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
#: A keyed request fingerprint (lightning_unlearn.privacy.request_fingerprint); reports of schema 1.0 hold an unkeyed _SHA256.
_KEYED_FINGERPRINT = {"type": "string", "pattern": "^hmac-sha256:[0-9a-f]{8}:[0-9a-f]{64}$"}
_SCALAR = {"type": ["string", "number", "boolean", "null"]}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
_COUNT = {"type": "integer", "minimum": 0}
_SECONDS = {"type": "number", "minimum": 0}

REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "lightning_unlearn unlearning report",
    "description": "What was unlearned, how, with which result. Never contains sample data or sample indices.",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "schema_version",
        "created",
        "request",
        "method",
        "model",
        "training",
        "data",
        "metrics",
        "mia_roc",
        "loss_curve",
        "attacks",
        "timings",
        "versions",
        "git_commit",
    ],
    "properties": {
        "schema_version": {"type": "string", "pattern": r"^1\.\d+$"},
        "created": {"type": "string", "format": "date-time", "description": "When the report was written (UTC, ISO 8601)."},
        "request": {
            "description": "The deletion request, summarised: never the indices or the samples.",
            "type": "object",
            "additionalProperties": False,
            "required": ["kind", "description", "count", "dataset_size", "fingerprint"],
            "properties": {
                "kind": {
                    "type": "string",
                    "description": "forget_indices, forget_ids, forget_class, forget_predicate, forget_fraction or explicit.",
                },
                "description": {"type": "string"},
                "count": {"type": "integer", "minimum": 1, "description": "Number of training samples unlearned."},
                "dataset_size": {"type": ["integer", "null"], "minimum": 1},
                "fingerprint": {
                    "anyOf": [_KEYED_FINGERPRINT, _SHA256, {"type": "null"}],
                    "description": "HMAC-SHA256, keyed by the data controller's request key, of the sorted forget indices and the "
                    "dataset size: hmac-sha256:<key id>:<digest> (DeletionRequest.fingerprint; check a request against it with "
                    "lightning-unlearn verify-request). Reports of schema 1.0 hold an unkeyed SHA-256.",
                },
            },
        },
        "method": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "class", "hparams"],
            "properties": {
                "name": {"type": "string"},
                "class": {"type": "string"},
                "hparams": {"type": "object", "additionalProperties": _SCALAR},
            },
        },
        "model": {
            "type": "object",
            "additionalProperties": False,
            "required": ["class", "num_parameters", "hash_before", "hash_after", "original", "oracle"],
            "properties": {
                "class": {"type": "string"},
                "num_parameters": _COUNT,
                "hash_before": _SHA256,
                "hash_after": _SHA256,
                "original": {"type": ["string", "null"], "description": "Weights file of the original model, if one was loaded."},
                "oracle": {
                    "type": ["string", "null"],
                    "description": "Weights file of the oracle (retrained without the forget set).",
                },
            },
        },
        "training": {
            "type": "object",
            "additionalProperties": False,
            "required": ["max_epochs", "max_steps", "epochs", "steps", "precision", "accelerator", "world_size", "optimizer"],
            "properties": {
                "max_epochs": {"type": ["integer", "null"]},
                "max_steps": {"type": ["integer", "null"]},
                "epochs": _COUNT,
                "steps": _COUNT,
                "precision": {"type": "string"},
                "accelerator": {"type": "string"},
                "strategy": {"type": "string"},
                "world_size": {"type": "integer", "minimum": 1},
                "accumulate_grad_batches": {"type": "integer", "minimum": 1},
                "gradient_clip_val": _NUMBER_OR_NULL,
                "optimizer": {
                    "anyOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["class", "hparams"],
                            "properties": {
                                "class": {"type": "string"},
                                "hparams": {"type": "object", "additionalProperties": _SCALAR},
                            },
                        },
                    ]
                },
                "lr_schedulers": {"type": "array", "items": {"type": "string"}},
            },
        },
        "data": {
            "type": "object",
            "additionalProperties": False,
            "required": ["sizes", "eval_splits"],
            "properties": {
                "sizes": {"type": "object", "additionalProperties": _COUNT, "description": "Number of samples per split."},
                "eval_splits": {"type": "array", "items": {"enum": ["forget", "retain", "test", "holdout"]}},
            },
        },
        "metrics": {
            "type": "object",
            "additionalProperties": False,
            "required": ["unlearned", "original", "oracle"],
            "properties": {
                "unlearned": {"$ref": "#/$defs/metric_set"},
                "original": {"anyOf": [{"$ref": "#/$defs/metric_set"}, {"type": "null"}]},
                "oracle": {"anyOf": [{"$ref": "#/$defs/metric_set"}, {"type": "null"}]},
            },
        },
        "mia_roc": {
            "description": "ROC curves of the loss-threshold attack (members: forget, non-members: holdout or test).",
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["members", "nonmembers", "curves"],
                    "properties": {
                        "members": {"const": "forget"},
                        "nonmembers": {"enum": ["holdout", "test"]},
                        "curves": {"type": "object", "additionalProperties": {"$ref": "#/$defs/roc"}},
                    },
                },
            ],
        },
        "loss_curve": {
            "type": "object",
            "additionalProperties": False,
            "required": ["step", "series"],
            "properties": {
                "step": {"type": "array", "items": _COUNT},
                "series": {"type": "object", "additionalProperties": {"type": "array", "items": _NUMBER_OR_NULL}},
            },
        },
        "attacks": {
            "description": "Extra attacks added with UnlearningReport.add_attack(name, result).",
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "result"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "description": {"type": ["string", "null"]},
                    "result": {
                        "type": "object",
                        "additionalProperties": {"anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]},
                    },
                },
            },
        },
        "images": {
            "description": (
                "Text-to-image diffusion models only, when asked for (UnlearningReport(image_prompts=...)): per group of "
                "prompts (e.g. erased / kept), a PNG grid (one row per prompt, per_prompt generations each, the same "
                "seeded noise) by the original, the unlearned model and the oracle, as data URIs."
            ),
            "type": "object",
            "additionalProperties": False,
            "required": ["per_prompt", "steps", "guidance", "seed", "groups"],
            "properties": {
                "per_prompt": {"type": "integer", "minimum": 1},
                "steps": {"type": "integer", "minimum": 1},
                "guidance": {"type": "number", "minimum": 0},
                "seed": {"type": "integer", "minimum": 0},
                "groups": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["prompts", "grids"],
                        "properties": {
                            "prompts": {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}},
                            "grids": {
                                "type": "object",
                                "additionalProperties": {"type": "string", "pattern": "^data:image/png;base64,"},
                            },
                        },
                    },
                },
            },
        },
        "ranking": {
            "description": (
                "Recommenders only, when asked for (UnlearningReport(ranking_top_k=...)): the top-k items of forgotten "
                "users before (original), after (unlearned) and for the oracle, the deleted items marked. Users are "
                "numbered, never identified; the item titles are data about them, hence opt-in."
            ),
            "type": "object",
            "additionalProperties": False,
            "required": ["k", "users"],
            "properties": {
                "k": {"type": "integer", "minimum": 1},
                "users": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["label", "deleted", "lists"],
                        "properties": {
                            "label": {"type": "string"},
                            "deleted": _COUNT,
                            "lists": {
                                "type": "object",
                                "additionalProperties": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "additionalProperties": False,
                                        "required": ["title", "deleted"],
                                        "properties": {"title": {"type": "string"}, "deleted": {"type": "boolean"}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "timings": {
            "type": "object",
            "additionalProperties": False,
            "required": ["started_at", "finished_at", "unlearning_s", "evaluation_s"],
            "properties": {
                "started_at": {"type": "string", "format": "date-time"},
                "finished_at": {"type": "string", "format": "date-time"},
                "unlearning_s": _SECONDS,
                "evaluation_s": _SECONDS,
            },
        },
        "versions": {
            "type": "object",
            "required": ["python", "torch", "lightning", "lightning_unlearn", "numpy", "platform"],
            "additionalProperties": {"type": ["string", "null"]},
        },
        "git_commit": {"anyOf": [{"type": "string", "pattern": "^[0-9a-f]{40,64}$"}, {"type": "null"}]},
    },
    "$defs": {
        "metric_set": {"type": "object", "additionalProperties": _NUMBER_OR_NULL},
        "roc": {
            "type": "object",
            "additionalProperties": False,
            "required": ["fpr", "tpr", "auc"],
            "properties": {
                "fpr": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                "tpr": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                "auc": {"type": "number", "minimum": 0, "maximum": 1},
            },
        },
    },
    # Only reports of schema 1.0 (written before fingerprints were keyed) may hold an unkeyed SHA-256.
    "if": {"properties": {"schema_version": {"const": "1.0"}}},
    "else": {"properties": {"request": {"properties": {"fingerprint": {"anyOf": [_KEYED_FINGERPRINT, {"type": "null"}]}}}}},
}


class ReportValidationError(ValueError):
    """A report does not match :data:`REPORT_SCHEMA`; ``path`` is where (e.g. ``"metrics.unlearned.UA"``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def _json_path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate_report(report: Any) -> dict[str, Any]:
    """Check ``report`` against :data:`REPORT_SCHEMA`; return it, or raise :class:`ReportValidationError`.

    The error names where the report is wrong and why, e.g.
    ``"The report is invalid at `metrics.unlearned.UA`: 'high' is not of type 'number', 'null'."``
    """
    try:
        import jsonschema
    except ImportError:
        raise missing_extra("jsonschema", "report") from None
    validator = jsonschema.Draft202012Validator(REPORT_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(report))
    if error is not None:
        path = _json_path(error.absolute_path)
        raise ReportValidationError(f"The report is invalid at `{path}`: {error.message}.", path)
    return report


def load_report(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a ``report.json`` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Report file {str(path)!r} does not exist.")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ReportValidationError(f"{str(path)!r} is not valid JSON: {err}.", "(file)") from None
    return validate_report(report)
