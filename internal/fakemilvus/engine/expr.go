package engine

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/milvus-io/milvus-proto/go-api/v2/schemapb"
)

// predicate reports whether a row matches a filter expression.
type predicate func(r row) bool

// compileFilter parses the boolean expressions the SDKs send for get, delete
// and filtered query/search: comparisons (== != < <= > >=), [not] in [...],
// like 'prefix%', and/or/not (also && || !), parentheses, and {placeholders}
// bound from expr_template_values. Operands are scalar fields of the schema.
// An empty expression matches every row (nil predicate).
func compileFilter(c *collection, expr string, tmpl map[string]*schemapb.TemplateValue) (predicate, error) {
	if strings.TrimSpace(expr) == "" {
		return nil, nil
	}
	fail := func(err error) error {
		return errInvalid("cannot parse expression: %s, error: %v", expr, err)
	}
	toks, err := tokenize(expr)
	if err != nil {
		return nil, fail(err)
	}
	p := &exprParser{toks: toks, c: c, tmpl: tmpl}
	pred, err := p.parseOr()
	if err != nil {
		return nil, fail(err)
	}
	if t := p.peek(); t.kind != tkEOF {
		return nil, fail(fmt.Errorf("unexpected %q at offset %d", t.text, t.pos))
	}
	return pred, nil
}

func matches(p predicate, r row) bool { return p == nil || p(r) }

type tokKind int

const (
	tkEOF tokKind = iota
	tkIdent
	tkNumber
	tkString
	tkOp
	tkPlaceholder
)

type token struct {
	kind tokKind
	text string // for strings: the unquoted value
	pos  int
}

// tokenize splits an expression. Every loop advances i, so it terminates.
func tokenize(s string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(s) {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
			i++
		case isIdentStart(ch):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			toks = append(toks, token{tkIdent, s[i:j], i})
			i = j
		case ch >= '0' && ch <= '9' || ch == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i + 1
			for j < len(s) && (isIdentPart(s[j]) || s[j] == '.' ||
				(s[j] == '-' || s[j] == '+') && (s[j-1] == 'e' || s[j-1] == 'E')) {
				j++
			}
			toks = append(toks, token{tkNumber, s[i:j], i})
			i = j
		case ch == '"' || ch == '\'':
			val, n, err := unquote(s[i:])
			if err != nil {
				return nil, fmt.Errorf("offset %d: %w", i, err)
			}
			toks = append(toks, token{tkString, val, i})
			i += n
		case ch == '{':
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				return nil, fmt.Errorf("offset %d: unterminated placeholder", i)
			}
			toks = append(toks, token{tkPlaceholder, strings.TrimSpace(s[i+1 : i+j]), i})
			i += j + 1
		default:
			op := ""
			for _, cand := range []string{"==", "!=", "<=", ">=", "&&", "||", "<", ">", "(", ")", "[", "]", ",", "!", "-", "+"} {
				if strings.HasPrefix(s[i:], cand) {
					op = cand
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("offset %d: unexpected character %q", i, ch)
			}
			toks = append(toks, token{tkOp, op, i})
			i += len(op)
		}
	}
	return append(toks, token{kind: tkEOF, pos: len(s)}), nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// unquote reads a quoted string at the start of s and returns its value and
// the number of bytes consumed.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		case c == q:
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

type exprParser struct {
	toks []token
	i    int
	c    *collection
	tmpl map[string]*schemapb.TemplateValue
}

func (p *exprParser) peek() token { return p.toks[p.i] }

func (p *exprParser) next() token {
	t := p.toks[p.i]
	if t.kind != tkEOF {
		p.i++
	}
	return t
}

// keyword reports whether the next token is the given word (any case) or
// one of the given operator spellings, and consumes it if so.
func (p *exprParser) accept(word string, ops ...string) bool {
	t := p.peek()
	if t.kind == tkIdent && word != "" && strings.EqualFold(t.text, word) {
		p.i++
		return true
	}
	if t.kind == tkOp {
		for _, op := range ops {
			if t.text == op {
				p.i++
				return true
			}
		}
	}
	return false
}

func (p *exprParser) expect(op string) error {
	if t := p.next(); t.kind != tkOp || t.text != op {
		return fmt.Errorf("expected %q at offset %d, got %q", op, t.pos, t.text)
	}
	return nil
}

func (p *exprParser) parseOr() (predicate, error) {
	left, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.accept("or", "||") {
		right, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(r row) bool { return l(r) || right(r) }
	}
	return left, nil
}

func (p *exprParser) parseAnd() (predicate, error) {
	left, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.accept("and", "&&") {
		right, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(r row) bool { return l(r) && right(r) }
	}
	return left, nil
}

func (p *exprParser) parseUnary() (predicate, error) {
	if p.accept("not", "!") {
		inner, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return func(r row) bool { return !inner(r) }, nil
	}
	if p.accept("", "(") {
		inner, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		return inner, p.expect(")")
	}
	return p.parseComparison()
}

var flipped = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

func (p *exprParser) parseComparison() (predicate, error) {
	// literal op field, e.g. "5 < id".
	if t := p.peek(); !p.isField(t) {
		lit, err := p.parseLiteral()
		if err != nil {
			return nil, err
		}
		op := p.next()
		if _, ok := flipped[op.text]; op.kind != tkOp || !ok {
			return nil, fmt.Errorf("expected comparison operator at offset %d, got %q", op.pos, op.text)
		}
		pos, f, err := p.parseField()
		if err != nil {
			return nil, err
		}
		return compare(f, pos, flipped[op.text], lit)
	}
	pos, f, err := p.parseField()
	if err != nil {
		return nil, err
	}
	negate := false
	if p.accept("not") {
		negate = true
		if t := p.peek(); t.kind != tkIdent || !strings.EqualFold(t.text, "in") {
			return nil, fmt.Errorf("expected \"in\" after \"not\" at offset %d", t.pos)
		}
	}
	switch {
	case p.accept("in"):
		list, err := p.parseList()
		if err != nil {
			return nil, err
		}
		return member(f, pos, list, negate)
	case p.accept("like"):
		lit, err := p.parseLiteral()
		if err != nil {
			return nil, err
		}
		return like(f, pos, lit)
	}
	op := p.next()
	if _, ok := flipped[op.text]; op.kind != tkOp || !ok {
		return nil, fmt.Errorf("expected comparison operator at offset %d, got %q", op.pos, op.text)
	}
	lit, err := p.parseLiteral()
	if err != nil {
		return nil, err
	}
	return compare(f, pos, op.text, lit)
}

func (p *exprParser) isField(t token) bool {
	if t.kind != tkIdent {
		return false
	}
	low := strings.ToLower(t.text)
	return low != "true" && low != "false"
}

func (p *exprParser) parseField() (int, *schemapb.FieldSchema, error) {
	t := p.next()
	if !p.isField(t) {
		return 0, nil, fmt.Errorf("expected field name at offset %d, got %q", t.pos, t.text)
	}
	pos, f := p.c.field(t.text)
	if f == nil {
		return 0, nil, fmt.Errorf("field %s not exist", t.text)
	}
	switch f.DataType {
	case schemapb.DataType_JSON, schemapb.DataType_FloatVector:
		return 0, nil, fmt.Errorf("filtering on %s field %s is not supported by fakemilvus", f.DataType, f.Name)
	}
	return pos, f, nil
}

// parseLiteral returns int64, float64, string or bool.
func (p *exprParser) parseLiteral() (any, error) {
	t := p.next()
	switch t.kind {
	case tkNumber:
		return parseNumber(t.text)
	case tkString:
		return t.text, nil
	case tkIdent:
		switch strings.ToLower(t.text) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	case tkOp:
		if t.text == "-" || t.text == "+" {
			n := p.next()
			if n.kind != tkNumber {
				return nil, fmt.Errorf("expected number after %q at offset %d", t.text, t.pos)
			}
			return parseNumber(t.text + n.text)
		}
	case tkPlaceholder:
		v, ok := p.tmpl[t.text]
		if !ok {
			return nil, fmt.Errorf("the value of expression template variable name {%s} is not found", t.text)
		}
		return templateScalar(v)
	}
	return nil, fmt.Errorf("expected a value at offset %d, got %q", t.pos, t.text)
}

func parseNumber(s string) (any, error) {
	if n, err := strconv.ParseInt(s, 0, 64); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("invalid number %q", s)
	}
	return f, nil
}

func (p *exprParser) parseList() ([]any, error) {
	if t := p.peek(); t.kind == tkPlaceholder {
		p.next()
		v, ok := p.tmpl[t.text]
		if !ok {
			return nil, fmt.Errorf("the value of expression template variable name {%s} is not found", t.text)
		}
		return templateList(v)
	}
	if err := p.expect("["); err != nil {
		return nil, err
	}
	var out []any
	if p.accept("", "]") {
		return out, nil
	}
	// Each iteration consumes at least one token or returns, so it ends.
	for {
		lit, err := p.parseLiteral()
		if err != nil {
			return nil, err
		}
		out = append(out, lit)
		if p.accept("", "]") {
			return out, nil
		}
		if err := p.expect(","); err != nil {
			return nil, err
		}
	}
}

func templateScalar(v *schemapb.TemplateValue) (any, error) {
	switch x := v.GetVal().(type) {
	case *schemapb.TemplateValue_BoolVal:
		return x.BoolVal, nil
	case *schemapb.TemplateValue_Int64Val:
		return x.Int64Val, nil
	case *schemapb.TemplateValue_FloatVal:
		return x.FloatVal, nil
	case *schemapb.TemplateValue_StringVal:
		return x.StringVal, nil
	}
	return nil, fmt.Errorf("unsupported template value %v", v)
}

func templateList(v *schemapb.TemplateValue) ([]any, error) {
	arr := v.GetArrayVal()
	if arr == nil {
		return nil, fmt.Errorf("template value for \"in\" must be an array")
	}
	switch {
	case arr.GetLongData() != nil:
		return toAny(arr.GetLongData().GetData()), nil
	case arr.GetStringData() != nil:
		return toAny(arr.GetStringData().GetData()), nil
	case arr.GetDoubleData() != nil:
		return toAny(arr.GetDoubleData().GetData()), nil
	case arr.GetBoolData() != nil:
		return toAny(arr.GetBoolData().GetData()), nil
	}
	return []any{}, nil
}

// kindOf classifies stored and literal values: 'n' number, 's' string, 'b' bool.
func kindOf(v any) byte {
	switch v.(type) {
	case int64, int32, float32, float64:
		return 'n'
	case string:
		return 's'
	case bool:
		return 'b'
	}
	return 0
}

func fieldKind(f *schemapb.FieldSchema) byte {
	switch f.DataType {
	case schemapb.DataType_VarChar:
		return 's'
	case schemapb.DataType_Bool:
		return 'b'
	}
	return 'n'
}

func checkOperand(f *schemapb.FieldSchema, lit any) error {
	if fieldKind(f) != kindOf(lit) {
		return fmt.Errorf("cannot compare field %s of type %s with value %v", f.Name, f.DataType, lit)
	}
	return nil
}

// cmpValues orders two values of the same kind; integers compare exactly.
func cmpValues(a, b any) int {
	switch x := a.(type) {
	case string:
		return strings.Compare(x, b.(string))
	case bool:
		y := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	}
	ai, aInt := asInt(a)
	bi, bInt := asInt(b)
	if aInt && bInt {
		switch {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	}
	af, bf := asFloat(a), asFloat(b)
	switch {
	case af < bf:
		return -1
	case af > bf:
		return 1
	}
	return 0
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	}
	return 0, false
}

func asFloat(v any) float64 {
	switch x := v.(type) {
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case float32:
		return float64(x)
	case float64:
		return x
	}
	return 0
}

func compare(f *schemapb.FieldSchema, pos int, op string, lit any) (predicate, error) {
	if err := checkOperand(f, lit); err != nil {
		return nil, err
	}
	if kindOf(lit) == 'b' && op != "==" && op != "!=" {
		return nil, fmt.Errorf("operator %s is not supported on bool field %s", op, f.Name)
	}
	test := map[string]func(int) bool{
		"==": func(c int) bool { return c == 0 },
		"!=": func(c int) bool { return c != 0 },
		"<":  func(c int) bool { return c < 0 },
		"<=": func(c int) bool { return c <= 0 },
		">":  func(c int) bool { return c > 0 },
		">=": func(c int) bool { return c >= 0 },
	}[op]
	return func(r row) bool {
		v := r[pos]
		return v != nil && test(cmpValues(v, lit))
	}, nil
}

func member(f *schemapb.FieldSchema, pos int, list []any, negate bool) (predicate, error) {
	for _, lit := range list {
		if err := checkOperand(f, lit); err != nil {
			return nil, err
		}
	}
	return func(r row) bool {
		v := r[pos]
		if v == nil {
			return false
		}
		for _, lit := range list {
			if cmpValues(v, lit) == 0 {
				return !negate
			}
		}
		return negate
	}, nil
}

// like supports the patterns Milvus accepts on VarChar: exact, 'pre%',
// '%suf', '%infix%'.
func like(f *schemapb.FieldSchema, pos int, lit any) (predicate, error) {
	pat, ok := lit.(string)
	if !ok || f.DataType != schemapb.DataType_VarChar {
		return nil, fmt.Errorf("like needs a varchar field and a string pattern")
	}
	pre, suf := strings.HasSuffix(pat, "%"), strings.HasPrefix(pat, "%")
	core := strings.TrimSuffix(strings.TrimPrefix(pat, "%"), "%")
	return func(r row) bool {
		s, ok := r[pos].(string)
		switch {
		case !ok:
			return false
		case pre && suf:
			return strings.Contains(s, core)
		case pre:
			return strings.HasPrefix(s, core)
		case suf:
			return strings.HasSuffix(s, core)
		}
		return s == core
	}, nil
}
