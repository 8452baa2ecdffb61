"""Azure's error envelope, as every azuresim route answers a refusal."""

from __future__ import annotations


class ArmError(Exception):
    """An ARM error: the status and `{"error": {"code", "message"}}`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
