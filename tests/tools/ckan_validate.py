"""Run inside a virtual environment where the ``ckan`` package is installed (tests/.venv-ckan): validate
package dicts (JSON lines on stdin) with CKAN's own schema and validators, as ckanext-harvest's import does
(``default_create_package_schema`` with ``id`` kept and ``__junk`` ignored), and with the plain create and
update schemas. Prints one JSON line per package: {"name", "errors": {schema: error dict}}. A line may name
the schemas to use in a "__schemas" key (default: all three).

Validators that ask the database (is the name taken? does the organization exist?) are replaced by
pass-throughs: this checks the dict, not a CKAN site's state.
"""

import json
import sys
import warnings
from typing import Any

warnings.simplefilter("ignore")   # ckan 2.10 imports pkg_resources, which warns on new setuptools

from ckan.lib.navl.dictization_functions import validate  # noqa: E402
from ckan.lib.navl.validators import ignore, ignore_missing, unicode_safe  # noqa: E402
from ckan.logic import schema as ckan_schema  # noqa: E402

DATABASE_VALIDATORS = {"package_name_validator", "owner_org_validator", "package_id_does_not_exist",
                       "package_id_not_changed", "vocabulary_id_exists", "empty_if_not_sysadmin",
                       "group_id_or_name_exists", "package_version_validator", "tag_not_in_vocabulary",
                       "group_id_exists", "user_id_or_name_exists", "object_id_validator",
                       "datasets_with_no_organization_cannot_be_private", "free_tags_only",
                       "resource_id_does_not_exist", "resource_id_exists", "package_id_exists",
                       "package_id_or_name_exists", "group_name_validator", "tag_in_vocabulary_validator"}


def keep(key: Any, data: Any, errors: Any, context: Any) -> None:
    """Stands in for a validator that needs a database."""


def offline(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if isinstance(value, dict):
            out[key] = offline(value)
        elif isinstance(value, list):
            out[key] = [keep if getattr(v, "__name__", "") in DATABASE_VALIDATORS else v for v in value]
        else:
            out[key] = value
    return out


def schemas() -> dict[str, dict[str, Any]]:
    harvest = ckan_schema.default_create_package_schema()
    harvest["id"] = [ignore_missing, unicode_safe]
    harvest["__junk"] = [ignore]
    return {"harvest_import": offline(harvest),
            "package_create": offline(ckan_schema.default_create_package_schema()),
            "package_update": offline(ckan_schema.default_update_package_schema())}


def main() -> None:
    import ckan
    checks = schemas()
    for line in sys.stdin:
        if not line.strip():
            continue
        package = json.loads(line)
        wanted = package.pop("__schemas", list(checks))
        errors = {}
        for name in wanted:
            _, found = validate(json.loads(json.dumps(package)), checks[name],
                                {"model": None, "session": None, "user": "", "ignore_auth": True,
                                 "api_version": 3})
            if found:
                errors[name] = found
        print(json.dumps({"name": package.get("name"), "ckan_version": ckan.__version__, "errors": errors},
                         ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
