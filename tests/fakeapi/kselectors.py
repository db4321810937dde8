"""Label and field selectors with the syntax and matching rules of the Kubernetes apiserver.

Label selectors (k8s.io/apimachinery/pkg/labels): comma-separated requirements, all must hold:
  key  !key  key=v  key==v  key!=v  key in (a,b)  key notin (a,b)  key>N  key<N
`!=` and `notin` also match objects that lack the key, as in Kubernetes.

Field selectors (k8s.io/apimachinery/pkg/fields): `field=v`, `field==v`, `field!=v`, comma = AND,
backslash escapes `\\,` `\\=` `\\\\`. Which fields exist is decided per resource (kresources.py); an
unknown field is rejected with the apiserver's own message.
"""

OPERATOR_CHARS = "=!<>"
SPECIAL = " \t,()" + OPERATOR_CHARS


class SelectorError(ValueError):
    """A selector that the apiserver would reject with 400 BadRequest."""


def _tokenize(text):
    """Split a label selector into ('id', s), ('op', s), ('(',), (')',), (',',) tokens."""
    tokens, i = [], 0
    while i < len(text):
        c = text[i]
        if c in " \t":
            i += 1
        elif c in "(),":
            tokens.append((c, c))
            i += 1
        elif c in OPERATOR_CHARS:
            j = i + 1
            while j < len(text) and text[j] in "=" and text[i:j + 1] in ("==", "!="):
                j += 1
            tokens.append(("op", text[i:j]))
            i = j
        else:
            j = i
            while j < len(text) and text[j] not in SPECIAL:
                j += 1
            tokens.append(("id", text[i:j]))
            i = j
    return tokens


class _Parser:
    def __init__(self, text):
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    def peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def take(self):
        tok = self.peek()
        self.pos += 1
        return tok

    def fail(self, why):
        raise SelectorError(f"unable to parse requirement: {why} in label selector {self.text!r}")

    def requirements(self):
        reqs = []
        while self.peek()[0] is not None:
            reqs.append(self.requirement())
            kind, _ = self.peek()
            if kind == ",":
                self.take()
                if self.peek()[0] is None:
                    self.fail("trailing comma")
            elif kind is not None:
                self.fail(f"unexpected {self.peek()[1]!r}")
        return reqs

    def requirement(self):
        kind, val = self.take()
        if kind == "op" and val == "!":
            key = self.key()
            return ("!", key, None)
        if kind != "id":
            self.fail(f"expected a key, found {val!r}")
        key = val
        kind, val = self.peek()
        if kind in (",", None):
            return ("exists", key, None)
        if kind == "id" and val in ("in", "notin"):
            self.take()
            return (val, key, self.value_set())
        if kind == "op" and val in ("=", "==", "!=", ">", "<"):
            self.take()
            value = self.value()
            if val in (">", "<"):
                self.integer(value)
            return ("=" if val == "==" else val, key, value)
        self.fail(f"unexpected {val!r} after key {key!r}")

    def key(self):
        kind, val = self.take()
        if kind != "id":
            self.fail("expected a key after '!'")
        return val

    def value(self):
        kind, val = self.peek()
        if kind == "id":
            self.take()
            return val
        return ""  # `k=` selects the empty value, as in Kubernetes

    def value_set(self):
        if self.take()[0] != "(":
            self.fail("expected '(' after in/notin")
        values = set()
        while True:
            values.add(self.value())
            kind, val = self.take()
            if kind == ")":
                return values
            if kind != ",":
                self.fail(f"expected ',' or ')' in value set, found {val!r}")

    def integer(self, value):
        try:
            int(value)
        except ValueError:
            self.fail(f"for 'Gt', 'Lt' operators, the value must be an integer, not {value!r}")


def parse_labels(text):
    """Parse a labelSelector; None or '' selects everything (returns None)."""
    if not text or not text.strip():
        return None
    return _Parser(text).requirements()


def _match_one(req, labels):
    op, key, value = req
    present = key in labels
    if op == "exists":
        return present
    if op == "!":
        return not present
    if op == "=":
        return present and labels[key] == value
    if op == "!=":
        return not present or labels[key] != value
    if op == "in":
        return present and labels[key] in value
    if op == "notin":
        return not present or labels[key] not in value
    try:
        have = int(labels[key]) if present else None
    except ValueError:
        return False
    return have is not None and (have > int(value) if op == ">" else have < int(value))


def match_labels(reqs, labels):
    """True when `labels` (a dict) satisfies every parsed requirement."""
    return reqs is None or all(_match_one(r, labels) for r in reqs)


def _split_unescaped(text, sep):
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text):
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _field_term(term):
    """Find the first unescaped operator in a field term."""
    i = 0
    while i < len(term):
        if term[i] == "\\":
            i += 2
            continue
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
        i += 1
    raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")


def parse_fields(text, supported):
    """Parse a fieldSelector into [(field, op, value)], checking fields against `supported`."""
    if not text or not text.strip():
        return None
    terms = []
    for term in _split_unescaped(text, ","):
        if not term.strip():
            continue
        field, op, value = _field_term(term.strip())
        field = field.strip()
        if field not in supported:
            raise SelectorError(f'field label not supported: {field}')
        terms.append((field, "!=" if op == "!=" else "=", _unescape(value)))
    return terms or None


def match_fields(terms, fields):
    """True when the object's selectable field values (a dict of strings) satisfy every term."""
    if terms is None:
        return True
    for field, op, value in terms:
        have = fields.get(field, "")
        if (have == value) != (op == "="):
            return False
    return True
