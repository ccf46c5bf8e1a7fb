"""The upload service for member cities: a Japanese upload page, an HTTP API and the code path the office's
``kouiki upload`` shares. Each city sees only its own uploads and reports; see docs/upload-service.md."""
