"""One root exception and small typed ones, so callers catch what they can handle."""


class SecretwatchError(Exception):
    """Root of every error secretwatch raises on purpose."""


class ConfigError(SecretwatchError):
    """A configuration file is missing, unreadable or invalid; the message names key and fix."""


class InputError(SecretwatchError):
    """An input path cannot be read (missing, a special file, permission denied)."""


class StoreError(SecretwatchError):
    """The store cannot be opened, is locked, or has an incompatible schema."""


class ParseError(SecretwatchError):
    """A record is malformed or not of the expected format; it goes to the dead-letter record."""


class NotSecretAccess(SecretwatchError):  # noqa: N818 - it is a signal, not a failure
    """A well-formed audit record about something other than secrets; counted and skipped."""
