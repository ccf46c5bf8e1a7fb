"""行政機関等匿名加工情報: synthetic source records, policy-driven anonymisation (optimal generalisation with
local suppression), independent verification, the 加工方法等情報, and small-cell suppression of aggregate
tables.

The names below are imported on first use (PEP 562 ``__getattr__``), not with the package: importing any
``anonymise.<module>`` runs this file first, and the Dagster definitions (loaded by every run, the daemon and
the UI) must not pay for scipy and the lattice search just because they read one small module.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

# public name → the module that defines it
_WHERE = {
    "SuppressedTable": "aggregate", "policy_tables": "aggregate", "publication_table": "aggregate",
    "suppress_small_cells": "aggregate",
    "AnonymisationOutcome": "anonymiser", "anonymise_table": "anonymiser",
    "anonymise_csv": "cli_entry",
    "append_extract_log": "documents", "extract_log_record": "documents",
    "write_processing_information": "documents",
    "Hierarchy": "hierarchy", "hierarchy_from_arx_csv": "hierarchy",
    "PrivacyModel": "lattice", "search_lattice": "lattice",
    "Policy": "policy", "PolicyError": "policy", "load_policy": "policy",
    "PolicyOutcome": "process", "anonymise_records": "process",
    "Reason": "reasons",
    "generate_care_records": "synthetic",
    "VerificationResult": "verify", "verify_policy_release": "verify", "verify_release": "verify",
}

__all__ = [
    "AnonymisationOutcome",
    "Hierarchy",
    "Policy",
    "PolicyError",
    "PolicyOutcome",
    "PrivacyModel",
    "Reason",
    "SuppressedTable",
    "VerificationResult",
    "anonymise_csv",
    "anonymise_records",
    "anonymise_table",
    "append_extract_log",
    "extract_log_record",
    "generate_care_records",
    "hierarchy_from_arx_csv",
    "load_policy",
    "policy_tables",
    "publication_table",
    "search_lattice",
    "suppress_small_cells",
    "verify_policy_release",
    "verify_release",
    "write_processing_information",
]

if TYPE_CHECKING:
    from anonymise.aggregate import SuppressedTable, policy_tables, publication_table, suppress_small_cells
    from anonymise.anonymiser import AnonymisationOutcome, anonymise_table
    from anonymise.cli_entry import anonymise_csv
    from anonymise.documents import append_extract_log, extract_log_record, write_processing_information
    from anonymise.hierarchy import Hierarchy, hierarchy_from_arx_csv
    from anonymise.lattice import PrivacyModel, search_lattice
    from anonymise.policy import Policy, PolicyError, load_policy
    from anonymise.process import PolicyOutcome, anonymise_records
    from anonymise.reasons import Reason
    from anonymise.synthetic import generate_care_records
    from anonymise.verify import VerificationResult, verify_policy_release, verify_release


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'anonymise' has no attribute {name!r}")
    value = getattr(import_module(f"anonymise.{module}"), name)
    globals()[name] = value   # the next access is a plain attribute
    return value
