"""Every refusal of the upload service, as one JSON shape with Japanese and English words:

    {"error": {"code", "message_ja", "message_en", "hint_ja", "hint_en", ...}}

Every code, its words and its HTTP status are in the one problem catalogue (``kouiki/problems.yaml``): the codes
of files intake cannot read (``encoding-error`` …) and the service's own for requests (``upload-too-large``,
``bad-file-name``, ``forbidden-city`` …). Readable files whose
rows fail validation are not errors: they are answered 201 with the validation result.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kouiki.problems import DEFAULT_STATUS, Problem, ProblemError, catalogue


class ApiError(ProblemError):
    """A refusal: a :class:`~kouiki.problems.Problem` with its HTTP status (the catalogue's, unless given)."""

    def __init__(self, problem: Problem, *, status: int | None = None, **extra: Any) -> None:
        super().__init__(problem)
        self.status = problem.status if status is None else status
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message_ja": self.message_ja, "message_en": self.message_en,
                          "hint_ja": self.hint_ja, "hint_en": self.hint_en, **self.extra}}


def from_intake(error: dict[str, Any], upload_id: str | None = None) -> ApiError:
    """The API's answer for a file intake refused (``IntakeError.to_dict()``, possibly from the catalog).

    The words are the stored ones (a refusal keeps the words it was given); the status is the catalogue's for
    the code: files that are not tables 415, too large when unpacked 413, another city's rows 403, everything
    else that cannot be read (or is refused, e.g. formulas) 422."""
    extra = {k: error[k] for k in ("line", "byte_offset", "column") if error.get(k) is not None}
    if upload_id:
        extra["upload_id"] = upload_id
    code = str(error.get("code", "unreadable"))
    problem = Problem(code, str(error.get("message_ja", "")), str(error.get("message_en", "")),
                      str(error.get("hint_ja", "")), str(error.get("hint_en", "")))
    status = catalogue()[code].status if code in catalogue() else DEFAULT_STATUS
    return ApiError(problem, status=status, **extra)


def auth_required() -> ApiError:
    return ApiError(Problem.of("auth-required"))


def invalid_token() -> ApiError:
    return ApiError(Problem.of("invalid-token"))


def not_a_member(city_code: str) -> ApiError:
    return ApiError(Problem.of("not-a-member", city_code=city_code))


def forbidden_city(city_code: str) -> ApiError:
    return ApiError(Problem.of("forbidden-city", city_code=city_code))


def csrf_failed() -> ApiError:
    return ApiError(Problem.of("csrf-failed"))


def upload_not_found(upload_id: str) -> ApiError:
    return ApiError(Problem.of("upload-not-found", upload_id=upload_id))


def upload_too_large(limit_bytes: int) -> ApiError:
    return ApiError(Problem.of("upload-too-large", limit_mb=limit_bytes / 1_000_000), limit_bytes=limit_bytes)


def empty_upload(name: str = "") -> ApiError:
    """A 0-byte file: worded like intake's empty and header-only files (name, what is wrong, what to upload)."""
    return ApiError(Problem.of("empty-upload", shown_ja=f"「{name}」" if name else "ファイル",
                               shown_en=name or "the file"))


def missing_file() -> ApiError:
    return ApiError(Problem.of("missing-file"))


def too_many_files() -> ApiError:
    return ApiError(Problem.of("too-many-files"))


def malformed_request(detail_en: str) -> ApiError:
    return ApiError(Problem.of("malformed-request", detail=detail_en))


def bad_file_name(reason_ja: str, reason_en: str) -> ApiError:
    return ApiError(Problem.of("bad-file-name", reason_ja=reason_ja, reason_en=reason_en))


def unsupported_extension(suffix: str, allowed: list[str]) -> ApiError:
    return ApiError(Problem.of("unsupported-extension", suffix_ja=suffix or "拡張子なし", suffix_en=suffix or "none",
                               allowed_ja="・".join(allowed), allowed_en=", ".join(allowed)))


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(Problem.of("unsupported-media-type", content_type=content_type or "none"))


def unknown_dataset(dataset_id: str, known: list[str]) -> ApiError:
    return ApiError(Problem.of("unknown-dataset", dataset=dataset_id[:64]), known=known)


def report_not_ready() -> ApiError:
    return ApiError(Problem.of("report-not-ready"))


# codes of the HTTP errors the framework raises (an unknown route, a wrong method); any other is http-error
_HTTP_CODES = {404: "not-found", 405: "method-not-allowed"}


def _generic(status: int) -> ApiError:
    return ApiError(Problem.of(_HTTP_CODES.get(status, "http-error")), status=status)


def internal_error() -> ApiError:
    return ApiError(Problem.of("internal-error"))


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def error_response(error: ApiError) -> JSONResponse:
    headers = dict(SECURITY_HEADERS)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="kouiki"'
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def handle_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def handle_http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(_generic(exc.status_code))


async def handle_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return error_response(malformed_request(f"{where}: {first.get('msg', 'invalid')}"))


async def handle_unexpected(_request: Request, _exc: Exception) -> JSONResponse:
    return error_response(internal_error())
