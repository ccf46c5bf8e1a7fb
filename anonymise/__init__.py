"""行政機関等匿名加工情報: synthetic source records, policy-driven anonymisation (optimal generalisation with
local suppression), independent verification, the 加工方法等情報, and small-cell suppression of aggregate
tables."""

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
