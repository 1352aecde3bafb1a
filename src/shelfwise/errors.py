"""Errors shelfwise raises for bad input: each names the file, the line (when there is one) and the reason."""

from __future__ import annotations

from collections.abc import Iterable


class ShelfwiseError(Exception):
    """Base class of the errors shelfwise reports to users (the CLI prints them, exit status 2)."""


class SourceError(ShelfwiseError):
    """A source file cannot be used: missing, unreadable, no header, wrong columns."""

    def __init__(self, file: str, line: int | None, reason: str):
        self.file, self.line, self.reason = file, line, reason
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class ContractViolation(ShelfwiseError):
    """Curated data broke its contract: a bug in cleaning, never the user's fault. The run fails."""


class AccessDenied(ShelfwiseError):
    """The identity is missing, wrong, or its role does not permit the action (exit status 4)."""


class WarehouseBusy(ShelfwiseError):
    """Another process holds the warehouse file (a running `shelfwise serve` absorbing events,
    which takes seconds, or another command): the action stopped where it met the lock; try
    again when that process is done (the CLI exits 3)."""


class WorkdirUnwritable(ShelfwiseError):
    """A run could not write its workdir before it published anything (the warehouse file or a
    folder read-only, a full disk): nothing was published; the CLI prints one line, exit status 1."""


class UnknownName(ShelfwiseError):
    """A name that names nothing the shop has (a table, a product of the bundle, an audience, a
    split protocol...): `kind` says what was looked for, `name` what was given, `known` the
    valid names where they are few enough to list (else empty). A script tells "no such thing"
    from any other refusal by this class; its text is the message the CLI prints."""

    def __init__(self, message: str, *, kind: str = "name", name: object = None, known: Iterable[str] = ()):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(message)


class UnknownVersion(UnknownName):
    """A model registry version that is not registered (`kind` "model version")."""


class UnknownModel(UnknownName):
    """A model name that is neither one shelfwise trains (`train(models=...)`) nor one of the
    bundle's (`recommend(model=...)`, `evaluate([...])`); `known`: the names that are."""


class GateFailed(ShelfwiseError):
    """A version was not promoted: promotion gates failed (approving it changes nothing: train a
    better one). `version`; `failed`: the failed gates' names; `approved`: whether a person had
    approved it (the message says every reason)."""

    def __init__(
        self, message: str, *, version: str = "", failed: Iterable[str] = (), approved: bool = False
    ):
        self.version, self.failed, self.approved = version, list(failed), approved
        super().__init__(message)


class NotApproved(ShelfwiseError):
    """A version was not promoted only for want of a person's approval (its gates pass): once a
    person with an approving role approves it (`Shop.approve`), promoting it again goes through.
    `version`."""

    def __init__(self, message: str, *, version: str = ""):
        self.version = version
        super().__init__(message)


class PersonRevoked(ShelfwiseError):
    """A new API key refused for a revoked (inactive) person (`rotate_key` without
    `reactivate=True`, `users rotate-key` without `--reactivate`): a rotation would make them
    active again. A script rotating every key over `people()` tells such an account, which it
    leaves alone, from any other refusal by this class; `name`: the person. The CLI exits 2, as
    for every refusal that is not an access denial (4) or a busy warehouse (3)."""

    def __init__(self, message: str, *, name: str = ""):
        self.name = name
        super().__init__(message)


class NoSearchIndex(ShelfwiseError):
    """A search asked of a bundle without a search index (its catalog had no text when it was
    trained): the current bundle, or an experiment variant's (`search_pages(served=True)` for a
    shopper that variant serves: /v1/search answers 404, and nothing is logged as served).
    `bundle`: the bundle's version."""

    def __init__(self, message: str, *, bundle: str = ""):
        self.bundle = bundle
        super().__init__(message)


class UnknownContextWarning(UserWarning):
    """A recommendation `context` that starts no category path of the bundle and no rule's
    context: it steered nothing (/v1/recommendations says it in `warnings`)."""


class EmptyRangeWarning(UserWarning):
    """Search filters no product can pass (`price_min` above `price_max`): the page is empty, as
    /v1/search answers it (the request is valid there), and Python says why."""


class AttributeFiltersWarning(UserWarning):
    """Attribute filters (`attributes=`, `--attr`) asked of a bundle trained before attribute
    filters existed: it has no attribute index, so they match nothing (an empty page) until the
    next `train` adds it (/v1/search says it in `warnings`)."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """ " (did you mean 'x'?)" for the closest of `known` to a mistyped `name`, else ""."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def whole_number(value: object, name: str, meaning: str, *, minimum: int, maximum: int | None = None) -> int:
    """`value` as a plain int when it is a whole number in [minimum, maximum] (numpy's integers
    and a float like 90.0 included; a bool is not one), else a ShelfwiseError naming `name`
    and what it means."""
    import operator

    n: int | None = None
    if isinstance(value, float):
        n = int(value) if value.is_integer() else None
    elif not isinstance(value, bool):
        try:
            n = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            n = None
    if n is None or n < minimum or (maximum is not None and n > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ShelfwiseError(f"{name} {value!r}: {meaning}, a whole number {bounds}")
    return int(n)
