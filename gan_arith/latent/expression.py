"""Concept arithmetic: parse `smiling_woman - neutral_woman + neutral_man` into a linear combination.

Grammar (usual precedence: unary minus and `*`, `/` bind tighter than `+`, `-`)::

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := ("+" | "-") unary | primary
    primary    := NUMBER | NAME | "(" expression ")"

Names are identifiers (`[A-Za-z_][A-Za-z0-9_]*`); numbers are decimal floats (`2`, `0.5`, `.5`, `1e-3`).
Every expression must be linear in the concepts: `2 * a`, `a / 2` and `(a + b) * 0.5` are fine,
`a * b`, `2 / a` and a bare constant term such as `a + 1` are rejected.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

import numpy as np

from gan_arith.errors import InputError

_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>[-+*/()]))"
)


class ExpressionError(InputError):
    """A syntax or linearity error, pointing at a character position of the expression."""

    def __init__(self, expression: str, position: int, message: str):
        self.expression = expression
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} at position {position} in concept expression:\n  {expression}\n  {caret}")


@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # "number", "name", "op" or "end"
    text: str
    position: int


@dataclasses.dataclass(frozen=True)
class _Linear:
    """A value during parsing: sum(coefficients[name] * name) + constant."""

    coefficients: dict[str, float]
    constant: float

    @property
    def is_scalar(self) -> bool:
        return not self.coefficients

    def scaled(self, factor: float) -> "_Linear":
        return _Linear({n: c * factor for n, c in self.coefficients.items()}, self.constant * factor)

    def plus(self, other: "_Linear", sign: float) -> "_Linear":
        coefficients = dict(self.coefficients)
        for name, c in other.coefficients.items():
            coefficients[name] = coefficients.get(name, 0.0) + sign * c
        return _Linear(coefficients, self.constant + sign * other.constant)


def _tokenize(expression: str) -> list[_Token]:
    tokens = []
    position = 0
    stripped_end = len(expression.rstrip())
    while position < stripped_end:
        match = _TOKEN.match(expression, position)
        if match is None:
            bad = position + len(expression[position:]) - len(expression[position:].lstrip())
            raise ExpressionError(expression, bad, f"unexpected character {expression[bad]!r}")
        kind = match.lastgroup
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    tokens.append(_Token("end", "", stripped_end))
    return tokens


class _Parser:
    """Recursive descent over the token list; each rule returns a `_Linear`."""

    def __init__(self, expression: str):
        self.expression = expression
        self.tokens = _tokenize(expression)
        self.index = 0

    def error(self, token: _Token, message: str) -> ExpressionError:
        return ExpressionError(self.expression, token.position, message)

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def parse(self) -> _Linear:
        if self.peek().kind == "end":
            raise self.error(self.peek(), "empty expression")
        value = self.expression_rule()
        token = self.peek()
        if token.kind != "end":
            raise self.error(token, f"unexpected {token.text!r}")
        return value

    def expression_rule(self) -> _Linear:
        value = self.term()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            operator = self.take()
            right = self.term()
            if value.is_scalar != right.is_scalar:
                raise self.error(operator, "cannot add a constant to a concept (the expression must be linear)")
            value = value.plus(right, 1.0 if operator.text == "+" else -1.0)
        return value

    def term(self) -> _Linear:
        value = self.unary()
        while self.peek().text in ("*", "/") and self.peek().kind == "op":
            operator = self.take()
            right = self.unary()
            if operator.text == "*":
                if not value.is_scalar and not right.is_scalar:
                    raise self.error(operator, "cannot multiply two concepts (the expression must be linear)")
                value = right.scaled(value.constant) if value.is_scalar else value.scaled(right.constant)
            else:
                if not right.is_scalar:
                    raise self.error(operator, "cannot divide by a concept (the expression must be linear)")
                if right.constant == 0.0:
                    raise self.error(operator, "division by zero")
                value = value.scaled(1.0 / right.constant)
        return value

    def unary(self) -> _Linear:
        token = self.peek()
        if token.kind == "op" and token.text in ("+", "-"):
            self.take()
            value = self.unary()
            return value if token.text == "+" else value.scaled(-1.0)
        return self.primary()

    def primary(self) -> _Linear:
        token = self.take()
        if token.kind == "number":
            return _Linear({}, float(token.text))
        if token.kind == "name":
            return _Linear({token.text: 1.0}, 0.0)
        if token.kind == "op" and token.text == "(":
            value = self.expression_rule()
            closing = self.take()
            if closing.text != ")" or closing.kind != "op":
                raise self.error(closing, f"unclosed '(' from position {token.position}: expected ')'")
            return value
        if token.kind == "end":
            raise self.error(token, "unexpected end of expression")
        raise self.error(token, f"unexpected {token.text!r}")


def parse(expression: str) -> dict[str, float]:
    """Parse a concept expression into {concept name: coefficient}, in order of first appearance.

    Coefficients that cancel (`a - a`) stay in the result with value 0.0, so every name the
    expression mentions must still be defined when it is evaluated.

    Raises:
      ExpressionError (an InputError, so a ValueError) on a syntax error, a non-linear expression, a
      constant term or an expression that names no concept, with the position of the offending character.
    """
    if not isinstance(expression, str):
        raise TypeError(f"expression must be a str, got {type(expression).__name__}")
    value = _Parser(expression).parse()
    if value.is_scalar:
        raise ExpressionError(expression, 0, "expression names no concept")
    return value.coefficients


def format_combination(coefficients: Mapping[str, float]) -> str:
    """Render {name: coefficient} canonically, e.g. `smiling_woman - neutral_woman + 0.5*neutral_man`."""
    parts = []
    for name, c in coefficients.items():
        sign = "-" if c < 0 else "+"
        magnitude = abs(c)
        term = name if magnitude == 1.0 else f"{magnitude:g}*{name}"
        parts.append((sign, term))
    if not parts:
        return "0"
    first_sign, first = parts[0]
    text = ("-" if first_sign == "-" else "") + first
    return text + "".join(f" {sign} {term}" for sign, term in parts[1:])


def evaluate(expression: str | Mapping[str, float], concepts: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate a concept expression on concept vectors.

    Args:
      expression: an expression string, or an already parsed {name: coefficient} mapping.
      concepts: {name: array [..., D]}; all arrays the expression names must share one shape
        (e.g. [D] for one concept vector each, or [M, D] for M random draws evaluated at once).

    Returns:
      sum(coefficient * concepts[name]) as a numpy array of that shape (float, the arrays' dtype
      when they are floating point).

    Raises:
      ValueError: an unknown concept (listing the known ones), an empty concept array, or
        mismatched shapes.
    """
    coefficients = parse(expression) if isinstance(expression, str) else dict(expression)
    if not coefficients:
        raise ValueError("the linear combination names no concept")
    unknown = [name for name in coefficients if name not in concepts]
    if unknown:
        known = ", ".join(sorted(concepts)) or "(none)"
        raise ValueError(f"unknown concept(s) {', '.join(unknown)} in the expression; known concepts: {known}")
    arrays = {}
    for name in coefficients:
        array = np.asarray(concepts[name])
        if array.size == 0:
            raise ValueError(f"concept {name!r} is empty (shape {array.shape}): it has no latent vectors to use")
        arrays[name] = array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"concept vectors must all have the same shape, got {shapes}")
    result = None
    for name, c in coefficients.items():
        term = arrays[name] * arrays[name].dtype.type(c)
        result = term if result is None else result + term
    return result
