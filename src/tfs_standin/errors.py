"""Errors carrying TF Serving's canonical status codes, and their gRPC and HTTP mappings."""

from __future__ import annotations

from collections.abc import Callable

import grpc

# tensorflow/core/protobuf/error_codes.proto numbering, which equals gRPC's.
_HTTP_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}
_CODE_BY_NUMBER: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


class ServingError(Exception):
    """A request or load failure with a canonical status code (as absl::Status in TF Serving)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    @property
    def code_number(self) -> int:
        return int(self.code.value[0])


def http_status(code: grpc.StatusCode) -> int:
    """HTTP status TF Serving's REST server answers for a canonical code (http_server.cc)."""
    return _HTTP_BY_CODE.get(code, 500)


def code_from_number(number: int) -> grpc.StatusCode:
    return _CODE_BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def _with_code(code: grpc.StatusCode) -> Callable[[str], ServingError]:
    """A maker of ServingError with ``code`` and the message it is given."""

    def make(message: str) -> ServingError:
        return ServingError(code, message)

    return make


invalid_argument = _with_code(grpc.StatusCode.INVALID_ARGUMENT)
not_found = _with_code(grpc.StatusCode.NOT_FOUND)
failed_precondition = _with_code(grpc.StatusCode.FAILED_PRECONDITION)
unavailable = _with_code(grpc.StatusCode.UNAVAILABLE)
internal = _with_code(grpc.StatusCode.INTERNAL)
unimplemented = _with_code(grpc.StatusCode.UNIMPLEMENTED)
