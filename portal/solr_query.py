"""A parser for the Solr (Lucene) query syntax that CKAN clients send in ``q``, ``fq`` and ``fq_list``.

    q=避難 AND (title:"避難 場所" OR tags:防災) -res_format:PDF
    fq=organization:city-122033 OR organization:city-222127
    fq=metadata_modified:[2016-01-01T00:00:00Z TO *]   (also {…}, NOW-1DAY, NOW/DAY)

Boolean operators AND / OR / NOT (also ``&&``, ``||``, ``!``, ``+``, ``-``), parentheses, phrases, ``field:``
prefixes (``field:(a OR b)`` too), prefix wildcards (``eva*``), ranges and ``*:*``. Two terms side by side
mean AND (CKAN's Solr schema sets the default operator to AND).

The parser reads the text once, left to right, character by character (no regular expressions, so no
backtracking): its time is linear in the length of the query. Nesting depth and the number of clauses are
capped, so a hostile query cannot exhaust the stack or the index; every mistake is a ``QuerySyntaxError``
saying what and where.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_DEPTH = 16          # parentheses nested deeper than this are refused
MAX_CLAUSES = 256       # Solr's maxBooleanClauses is 1024 per query; fewer here, all of q/fq together
_SPECIAL = set('()"[]{}:\\')
_WILDCARDS = set("*?")


class QuerySyntaxError(ValueError):
    """The query cannot be parsed; the message says what and where (character offset)."""


@dataclass(frozen=True)
class Term:
    """A word (``phrase`` False) or phrase; ``prefix`` when it ended with ``*``. ``field`` None = any field."""

    field: str | None
    text: str
    phrase: bool = False
    prefix: bool = False


@dataclass(frozen=True)
class Range:
    """``field:[low TO high]`` (inclusive) or ``{low TO high}`` (exclusive); None is an open end (``*``)."""

    field: str
    low: str | None
    high: str | None
    include_low: bool = True
    include_high: bool = True


@dataclass(frozen=True)
class Every:
    """``*:*`` (every dataset) or ``field:*`` (every dataset that has a value for ``field``)."""

    field: str | None = None


@dataclass(frozen=True)
class Not:
    node: Node


@dataclass(frozen=True)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    nodes: tuple[Node, ...]


Node = Term | Range | Every | Not | And | Or


def parse(text: str, known_field: set[str] | None = None, max_clauses: int = MAX_CLAUSES) -> Node:
    """The query tree of ``text``; an empty query is ``Every()``. ``known_field`` (when given) is the set of
    field names allowed before ``:``; any other name is an error."""
    return _Parser(text, known_field, max_clauses).parse()


def leaves(node: Node) -> int:
    """How many terms, ranges and wildcards the tree holds."""
    if isinstance(node, And | Or):
        return sum(leaves(n) for n in node.nodes)
    if isinstance(node, Not):
        return leaves(node.node)
    return 1


class _Parser:
    def __init__(self, text: str, known_field: set[str] | None, max_clauses: int) -> None:
        self.text = text
        self.pos = 0
        self.known_field = known_field
        self.clauses = 0
        self.max_clauses = max_clauses

    # ------------------------------------------------------------------------------------------ grammar
    #   query   := or_expr
    #   or_expr := and_expr (("OR" | "||") and_expr)*
    #   and_expr:= unary (("AND" | "&&")? unary)*
    #   unary   := ("NOT" | "!" | "-") unary | "+" unary | primary
    #   primary := "(" query ")" | field ":" value | value
    #   value   := "(" query ")" | phrase | range | word

    def parse(self) -> Node:
        self._skip_space()
        if self.pos >= len(self.text):
            return Every()
        node = self._or_expr(depth=0, field=None)
        self._skip_space()
        if self.pos < len(self.text):
            raise self._error("unexpected ')'" if self.text[self.pos] == ")" else "unexpected text")
        return node

    def _or_expr(self, depth: int, field: str | None) -> Node:
        nodes = [self._and_expr(depth, field)]
        while self._operator("OR", "||"):
            nodes.append(self._and_expr(depth, field))
        return nodes[0] if len(nodes) == 1 else Or(tuple(nodes))

    def _and_expr(self, depth: int, field: str | None) -> Node:
        nodes = [self._unary(depth, field)]
        while True:
            self._skip_space()
            if self.pos >= len(self.text) or self.text[self.pos] == ")" or self._peek_operator("OR", "||"):
                break
            self._operator("AND", "&&")
            nodes.append(self._unary(depth, field))
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def _unary(self, depth: int, field: str | None) -> Node:
        self._skip_space()
        if self._operator("NOT") or self._consume_sign("!") or self._consume_sign("-"):
            return Not(self._unary(depth, field))
        self._consume_sign("+")
        return self._primary(depth, field)

    def _primary(self, depth: int, field: str | None) -> Node:
        self._skip_space()
        if self.pos >= len(self.text):
            raise self._error("a term is missing at the end")
        char = self.text[self.pos]
        if char == "(":
            return self._group(depth, field)
        if char == ")":
            raise self._error("unexpected ')'")
        if char in "[{" and field is not None:
            return self._range(field)
        if char == '"':
            return self._count(Term(field, self._phrase(), phrase=True))
        start = self.pos
        name = self._field_name()
        if name is not None:
            if field is not None:
                raise self._error(f"field {name!r} inside the value of field {field!r}", start)
            return self._field_value(name, depth)
        word = self._word()
        if word == "*":
            return self._count(Every(field))
        prefix = word.endswith("*")
        return self._count(Term(field, word.rstrip("*"), prefix=prefix))

    def _field_value(self, name: str, depth: int) -> Node:
        if self.pos >= len(self.text) or self.text[self.pos].isspace():
            raise self._error(f"field {name!r} has no value after ':'")
        char = self.text[self.pos]
        if char == "(":
            return self._group(depth, name)
        if char in "[{":
            return self._range(name)
        if char == '"':
            return self._count(Term(name, self._phrase(), phrase=True))
        word = self._word()
        if word == "*":
            return self._count(Every(None if name == "*" else name))
        if name == "*":
            raise self._error("only '*:*' may use '*' as the field name")
        prefix = word.endswith("*")
        return self._count(Term(name, word.rstrip("*"), prefix=prefix))

    def _group(self, depth: int, field: str | None) -> Node:
        if depth >= MAX_DEPTH:
            raise self._error(f"parentheses nested deeper than {MAX_DEPTH}")
        self.pos += 1
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == ")":
            raise self._error("empty parentheses")
        node = self._or_expr(depth + 1, field)
        self._skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] != ")":
            raise self._error("a ')' is missing")
        self.pos += 1
        return node

    def _range(self, field: str) -> Node:
        opening = self.text[self.pos]
        self.pos += 1
        low = self._range_end()
        self._skip_space()
        if not self.text.startswith("TO", self.pos):
            raise self._error("a range needs 'TO' between its ends: [low TO high]")
        self.pos += 2
        high = self._range_end()
        self._skip_space()
        if self.pos >= len(self.text) or self.text[self.pos] not in "]}":
            raise self._error("a range must end with ']' or '}'")
        closing = self.text[self.pos]
        self.pos += 1
        return self._count(Range(field, None if low == "*" else low, None if high == "*" else high,
                                 include_low=opening == "[", include_high=closing == "]"))

    def _range_end(self) -> str:
        self._skip_space()
        if self.pos < len(self.text) and self.text[self.pos] == '"':
            return self._phrase()
        start = self.pos
        while self.pos < len(self.text) and not self.text[self.pos].isspace() \
                and self.text[self.pos] not in "[]{}":
            self.pos += 1
        if self.pos == start:
            raise self._error("a range end is missing")
        return self.text[start:self.pos]

    # ------------------------------------------------------------------------------------------ lexing

    def _field_name(self) -> str | None:
        """``name`` when the text here is ``name:`` (the colon is consumed); else None, position unchanged."""
        start = self.pos
        if self.text.startswith("*:", start):
            self.pos += 2
            return "*"
        end = start
        while end < len(self.text) and (self.text[end].isascii() and (self.text[end].isalnum()
                                                                     or self.text[end] in "_-.")):
            end += 1
        if end == start or end >= len(self.text) or self.text[end] != ":" or not self.text[start].isalpha():
            return None
        name = self.text[start:end]
        if self.known_field is not None and name not in self.known_field:
            raise self._error(f"Can not search on field {name!r}", start)
        self.pos = end + 1
        return name

    def _word(self) -> str:
        """A bare word up to a space, a parenthesis or a quote; backslash escapes one character."""
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char.isspace() or char in '()"':
                break
            if char == "\\":
                if self.pos + 1 >= len(self.text):
                    raise self._error("a '\\' escapes nothing at the end")
                chars.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if char in "[]{}" and not chars:
                raise self._error(f"unexpected {char!r}")
            chars.append(char)
            self.pos += 1
        if not chars:
            raise self._error("a term is missing")
        return "".join(chars)

    def _phrase(self) -> str:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text) and self.text[self.pos] != '"':
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            chars.append(self.text[self.pos])
            self.pos += 1
        if self.pos >= len(self.text):
            raise self._error('a \'"\' is missing: the phrase is not closed', start)
        self.pos += 1
        return "".join(chars)

    def _operator(self, *names: str) -> bool:
        self._skip_space()
        for name in names:
            if self._at_operator(name):
                self.pos += len(name)
                return True
        return False

    def _peek_operator(self, *names: str) -> bool:
        return any(self._at_operator(name) for name in names)

    def _at_operator(self, name: str) -> bool:
        end = self.pos + len(name)
        if not self.text.startswith(name, self.pos):
            return False
        if name.isalpha():   # a word operator stands alone: "OR" but not "ORANGE" nor "OR:"
            return end >= len(self.text) or self.text[end].isspace() or self.text[end] in "()\""
        return True

    def _consume_sign(self, sign: str) -> bool:
        if self.text.startswith(sign, self.pos) and self.pos + 1 < len(self.text) \
                and not self.text[self.pos + 1].isspace():
            self.pos += 1
            return True
        return False

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _count(self, node: Node) -> Node:
        self.clauses += 1
        if self.clauses > self.max_clauses:
            raise self._error(f"more than {self.max_clauses} clauses")
        return node

    def _error(self, what: str, at: int | None = None) -> QuerySyntaxError:
        where = self.pos if at is None else at
        place = "at the end" if where >= len(self.text) else f"at character {where + 1} of {len(self.text)}"
        return QuerySyntaxError(f"{what} ({place})")
