"""Config validation errors in the tool's words: one line per problem, each
with its key path (``labels.2.prompts: must not be empty``) or the CLI flag
that set the value (``--mode: must be one of softmax, binary; got 'binay'``),
an unknown key with the keys allowed there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError


def format_errors(ex: ValidationError, root: type[BaseModel], path: str | Path | None,
                  flags: dict[str, str] | None = None) -> str:
    """Pydantic's errors in the tool's words, each blamed on its source: the
    CLI flag that set the value (``--mode: ...``) or the key in the file.
    ``root``: the schema validated (its keys are offered for an unknown one)."""
    by_loc: dict[tuple, list[str]] = {}
    for err in ex.errors():
        loc = tuple(p for p in err["loc"] if not _is_union_tag(p))
        by_loc.setdefault(loc, []).append(_plain_message(err, loc, root))
    from_flags, from_file = [], []
    for loc, messages in by_loc.items():
        msg = _joined(messages)
        dotted = ".".join(str(p) for p in loc)
        flag = next((f for key, f in (flags or {}).items()
                     if dotted == key or dotted.startswith(key + ".")), None)
        if flag is not None:
            from_flags.append(f"{flag}: {msg}")
        else:
            from_file.append(f"{dotted}: {msg}" if dotted else msg)
    parts = from_flags + ([f"{path}: " + "; ".join(from_file)] if path and from_file else from_file)
    return "; ".join(parts)


def _joined(messages: list[str]) -> str:
    """One message per key: a union's alternatives joined with "or", the bad
    value said once (``must be a whole number or one of auto; got 'x'``)."""
    got = {m.partition("; got ")[2] for m in messages}
    if len(messages) > 1 and len(got) == 1 and "" not in got:
        heads = [m.partition("; got ")[0] for m in messages]
        heads = heads[:1] + [h.removeprefix("must be ") for h in heads[1:]]
        return " or ".join(dict.fromkeys(heads)) + f"; got {got.pop()}"
    return " or ".join(dict.fromkeys(messages))


def _is_union_tag(part: Any) -> bool:
    """Pydantic names the union member that failed (``int``, ``literal['auto']``)."""
    return isinstance(part, str) and (part in ("int", "float", "str", "bool", "none") or "[" in part)


_PLAIN = {
    "missing": "is required",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must not be empty",
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "finite_number": "must be a finite number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
}


def _plain_message(err: dict[str, Any], loc: tuple, root: type[BaseModel]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    got = _shown(err.get("input"))
    if kind == "extra_forbidden":
        allowed = _allowed_keys(root, loc[:-1])
        return "unknown key" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    if kind == "literal_error":
        choices = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"must be one of {choices}; got {got}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    template = _PLAIN.get(kind)
    if template is None:
        return str(err["msg"])
    msg = template.format(**ctx) if ctx else template.split(" {")[0]
    return msg if kind in ("missing", "too_short", "too_long", "string_too_short") else f"{msg}; got {got}"


def _shown(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _allowed_keys(root: type[BaseModel], loc: tuple) -> list[str]:
    """The keys the schema ``root`` accepts at ``loc`` (list indices skipped)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = _model_of(field.annotation)
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside ``X``, ``list[X]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
