"""Every refusal of the upload service, as one JSON shape with Japanese and English words:

    {"error": {"code", "message_ja", "message_en", "hint_ja", "hint_en", ...}}

Codes of files intake cannot read come from :mod:`intake.problems` (``encoding-error`` …); the service adds
its own for requests (``upload-too-large``, ``bad-file-name``, ``forbidden-city`` …). Readable files whose
rows fail validation are not errors: they are answered 201 with the validation result.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A refusal with its HTTP status and words for city staff."""

    def __init__(self, status: int, code: str, message_ja: str, message_en: str, *, hint_ja: str = "",
                 hint_en: str = "", **extra: Any) -> None:
        super().__init__(message_en)
        self.status = status
        self.code = code
        self.message_ja = message_ja
        self.message_en = message_en
        self.hint_ja = hint_ja
        self.hint_en = hint_en
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message_ja": self.message_ja, "message_en": self.message_en,
                          "hint_ja": self.hint_ja, "hint_en": self.hint_en, **self.extra}}


# HTTP status of each intake error code: files that are not tables 415, too large when unpacked 413,
# another city's rows 403, everything else that cannot be read (or is refused, e.g. formulas) 422.
INTAKE_STATUS = {
    "unsupported-format": 415,
    "binary-content": 415,
    "corrupt-file": 415,
    "file-too-large": 413,
    "other-city-data": 403,
}


def from_intake(error: dict[str, Any], upload_id: str | None = None) -> ApiError:
    """The API's answer for a file intake refused (``IntakeError.to_dict()``, possibly from the catalog)."""
    extra = {k: error[k] for k in ("line", "byte_offset", "column") if error.get(k) is not None}
    if upload_id:
        extra["upload_id"] = upload_id
    return ApiError(INTAKE_STATUS.get(str(error.get("code")), 422), str(error.get("code", "unreadable")),
                    str(error.get("message_ja", "")), str(error.get("message_en", "")),
                    hint_ja=str(error.get("hint_ja", "")), hint_en=str(error.get("hint_en", "")), **extra)


def auth_required() -> ApiError:
    return ApiError(401, "auth-required", "ログインが必要です。市のトークンを入力してください。",
                    "You must log in with your city's token.",
                    hint_ja="データ推進室から受け取ったトークンでログインしてください。",
                    hint_en="Log in with the token the data office gave you.")


def invalid_token() -> ApiError:
    return ApiError(401, "invalid-token", "トークンが正しくないか、無効化されています。",
                    "The token is wrong or has been revoked.",
                    hint_ja="トークンを確認し、分からない場合はデータ推進室に新しいトークンを依頼してください。",
                    hint_en="Check the token, or ask the data office for a new one.")


def not_a_member(city_code: str) -> ApiError:
    return ApiError(403, "not-a-member", f"市区町村コード {city_code} は構成団体として登録されていません。",
                    f"{city_code} is not a member city of the shared service.",
                    hint_ja="データ推進室に構成団体の登録を確認してください。",
                    hint_en="Ask the data office to check the member registry.")


def forbidden_city(city_code: str) -> ApiError:
    return ApiError(403, "forbidden-city", "ほかの団体のデータには登録も閲覧もできません。",
                    "A city can upload and read only its own data.",
                    hint_ja=f"このトークンで扱えるのは市区町村コード {city_code} のデータだけです。",
                    hint_en=f"This token is for city {city_code} only.")


def csrf_failed() -> ApiError:
    return ApiError(403, "csrf-failed", "この操作はアップロード画面からのみ行えます（確認用トークンが一致しません）。",
                    "This request must come from the upload page (the CSRF token does not match).",
                    hint_ja="画面を再読み込みしてからもう一度操作してください。",
                    hint_en="Reload the page and try again.")


def upload_not_found(upload_id: str) -> ApiError:
    return ApiError(404, "upload-not-found", f"受付番号 {upload_id} の登録はありません。",
                    f"There is no upload {upload_id}.",
                    hint_ja="受付番号を確認してください。一覧は「これまでの登録」にあります。",
                    hint_en="Check the upload id; your uploads are listed on the upload page.")


def upload_too_large(limit_bytes: int) -> ApiError:
    limit_mb = limit_bytes / 1_000_000
    return ApiError(413, "upload-too-large", f"ファイルが大きすぎます（上限 {limit_mb:,.0f} MB）。",
                    f"The file is too large (limit {limit_mb:,.0f} MB).",
                    hint_ja="ファイルを分割するか、不要な列・シートを削除してください。",
                    hint_en="Split the file or remove columns or sheets you do not need.",
                    limit_bytes=limit_bytes)


def empty_upload(name: str = "") -> ApiError:
    """A 0-byte file: worded like intake's empty and header-only files (name, what is wrong, what to upload)."""
    shown = f"「{name}」" if name else "ファイル"
    return ApiError(400, "empty-upload", f"{shown}は空です（0 バイト、データの行がありません）。",
                    f"'{name or 'the file'}' is empty (0 bytes, no data rows).",
                    hint_ja="データの行が入ったファイルを登録してください（空の行や見出しだけのファイルは受け付けません）。",
                    hint_en="Upload the file with its data rows (a header alone, or only blank rows, cannot be "
                            "published).")


def missing_file() -> ApiError:
    return ApiError(400, "missing-file", "ファイルが送られていません。", "No file was sent.",
                    hint_ja="フォームの「file」欄にファイルを1つ付けて送ってください。",
                    hint_en="Send one file in the form field 'file'.")


def too_many_files() -> ApiError:
    return ApiError(400, "too-many-files", "一度に登録できるファイルは1つです。", "Upload one file at a time.",
                    hint_ja="ファイルを1つずつ登録してください。", hint_en="Send the files one by one.")


def malformed_request(detail_en: str) -> ApiError:
    return ApiError(400, "malformed-request", "送信内容の形式が正しくありません。",
                    f"The request is malformed: {detail_en}",
                    hint_ja="アップロード画面か、multipart/form-data または PUT で送ってください。",
                    hint_en="Use the upload page, or send multipart/form-data or a PUT body.")


def bad_file_name(reason_ja: str, reason_en: str) -> ApiError:
    return ApiError(400, "bad-file-name", f"ファイル名が使えません：{reason_ja}",
                    f"The file name cannot be used: {reason_en}",
                    hint_ja="ファイル名を「aed.csv」のような普通の名前に変えて登録してください。",
                    hint_en="Rename the file to a plain name such as aed.csv and upload it again.")


def unsupported_extension(suffix: str, allowed: list[str]) -> ApiError:
    return ApiError(415, "unsupported-extension",
                    f"「{suffix or '拡張子なし'}」のファイルは登録できません（{'・'.join(allowed)} のみ）。",
                    f"Files of type '{suffix or 'none'}' cannot be uploaded (only {', '.join(allowed)}).",
                    hint_ja="CSVファイルかExcelブック(.xlsx)を選んでください。",
                    hint_en="Choose a CSV file or an Excel workbook (.xlsx).")


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "unsupported-media-type",
                    "送信形式が違います（multipart/form-data で送ってください）。",
                    f"Content type '{content_type or 'none'}' is not accepted here; send multipart/form-data.",
                    hint_ja="ファイルは POST (multipart/form-data) か PUT で送ってください。",
                    hint_en="POST the file as multipart/form-data, or PUT its bytes.")


def unknown_dataset(dataset_id: str, known: list[str]) -> ApiError:
    return ApiError(400, "unknown-dataset", f"データセット「{dataset_id[:64]}」はありません。",
                    f"There is no dataset '{dataset_id[:64]}'.",
                    hint_ja="一覧から選ぶか、空欄にして自動判定にしてください。",
                    hint_en="Choose one from the list, or leave it empty to detect it.", known=known)


def report_not_ready() -> ApiError:
    return ApiError(404, "report-not-ready", "この登録の報告書はまだありません。",
                    "There is no report for this upload yet.",
                    hint_ja="処理が終わるまでお待ちください。", hint_en="Wait until it has been processed.")


def _generic(status: int) -> ApiError:
    words = {
        404: ("not-found", "ページまたはデータが見つかりません。", "Not found."),
        405: ("method-not-allowed", "この方法では操作できません。", "This method is not allowed here."),
    }
    fallback = ("http-error", "要求を処理できませんでした。", "The request could not be handled.")
    code, ja, en = words.get(status, fallback)
    return ApiError(status, code, ja, en)


def internal_error() -> ApiError:
    return ApiError(500, "internal-error", "サーバーで問題が起きました。登録済みのファイルは失われていません。",
                    "The server failed; files already uploaded are not lost.",
                    hint_ja="しばらくしてからもう一度お試しください。続く場合はデータ推進室に連絡してください。",
                    hint_en="Try again later; if it persists, tell the data office.")


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
