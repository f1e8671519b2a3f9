"""Errors a user can cause. The CLI prints them as one line plus the fix, never as a traceback."""


class PlatformError(Exception):
    """A failure with a known cause and a known fix."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


class ConfigError(PlatformError):
    """A setting has a value the platform cannot use."""


class ServiceUnavailable(PlatformError):
    """A service the step needs (S3, MLflow, model server) is not reachable."""


class DataError(PlatformError):
    """Input data is missing or does not meet the contract."""
