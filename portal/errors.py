"""Errors of the Action API, in CKAN's shape: ``{"success": false, "error": {"__type", "message"}}``."""

from __future__ import annotations

from typing import Any


class ActionError(Exception):
    """An error CKAN clients understand. ``status`` is the HTTP code CKAN uses for it."""

    status = 400
    type_name = "Bad request"

    def __init__(self, message: str, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"__type": self.type_name, "message": self.message}
        error.update(self.fields)
        return error


class BadRequest(ActionError):
    status = 400
    type_name = "Bad request"


class NotFound(ActionError):
    status = 404
    type_name = "Not Found Error"


class ValidationError(ActionError):
    """A parameter is wrong; ``fields`` names it: ``{"sort": ['field "x" not in table']}``."""

    status = 409
    type_name = "Validation Error"

    def __init__(self, fields: dict[str, list[str]]) -> None:
        message = "; ".join(f"{key}: {', '.join(msgs)}" for key, msgs in fields.items())
        super().__init__(message, fields)


class SearchQueryError(ActionError):
    """The query cannot be parsed or answered: a 400, as CKAN's API answers a Search Query Error."""

    status = 400
    type_name = "Search Query Error"
