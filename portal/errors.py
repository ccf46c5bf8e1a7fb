"""Errors of the Action API, in CKAN's shape: ``{"success": false, "error": {"__type", "message"}}``.

Each kind is a code of the one problem catalogue (``kouiki/problems.yaml``), which gives its HTTP status and its
words; :attr:`ActionError.problem` is the error as a :class:`~kouiki.problems.Problem`. The body CKAN clients
read keeps CKAN's ``__type`` and English ``message``.
"""

from __future__ import annotations

from typing import Any

from kouiki.problems import Problem, entry


class ActionError(Exception):
    """An error CKAN clients understand. ``status`` is the HTTP code CKAN uses for it."""

    code = "bad-request"
    variant: str | None = None     # the catalogue's words for this kind, where the code's own are another's
    status = entry(code).status
    type_name = "Bad request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    @property
    def problem(self) -> Problem:
        return Problem.of(self.code, self.variant, detail=self.message)

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"__type": self.type_name, "message": self.message}
        error.update(self.fields)
        return error


class BadRequest(ActionError):
    code = "bad-request"
    status = entry(code).status
    type_name = "Bad request"


class NotFound(ActionError):
    code = "not-found"
    variant = "api"
    status = entry(code).status
    type_name = "Not Found Error"


class ValidationError(ActionError):
    """A parameter is wrong; ``fields`` names it: ``{"sort": ['field "x" not in table']}``."""

    code = "invalid-parameter"
    status = entry(code).status
    type_name = "Validation Error"

    def __init__(self, fields: dict[str, list[str]]) -> None:
        message = "; ".join(f"{key}: {', '.join(msgs)}" for key, msgs in fields.items())
        super().__init__(message, fields)


class SearchQueryError(ActionError):
    """The query cannot be parsed or answered: a 400, as CKAN's API answers a Search Query Error."""

    code = "search-query-error"
    status = entry(code).status
    type_name = "Search Query Error"
