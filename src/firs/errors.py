"""Errors a user can act on. The CLI prints their message and exits non-zero."""


class FirsError(Exception):
    """Base class: an error with a message meant for the person running FIRS."""


class CatalogError(FirsError):
    """A catalogue source cannot be read (or, with --strict, has a bad line)."""


class ImageError(FirsError):
    """Bytes that are not a usable image."""


class FetchError(FirsError):
    """An image could not be fetched."""


class IndexFormatError(FirsError):
    """An index directory is missing, corrupt, or was built differently."""


class QueryError(FirsError):
    """A search request that cannot be answered as asked (bad parameter, unknown product)."""
