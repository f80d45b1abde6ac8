package indexer

import (
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errScanPunt is scanPrimary saying "this input is outside the subset I read; ask encoding/xml". It is never
// returned to a caller of readPrimary: the reference parser (parsePrimary) then reads the file again and gives
// the answer, or the error, it always gave.
var errScanPunt = errors.New("primary.xml outside the scanner's subset")

// scanPrimary is parsePrimary without encoding/xml: a byte-level scanner for the subset of XML that createrepo_c
// writes (an <?xml version="1.0" encoding="UTF-8"?> declaration, elements, attributes in double or single quotes,
// the five predefined entities and character references, UTF-8 text). It returns exactly what parsePrimary returns
// for the same input, or errScanPunt for anything else (comments, CDATA, DOCTYPE, other processing instructions,
// a namespace prefix where parsePrimary would look at the local name, a carriage return in a value it keeps,
// anything parsePrimary might reject). It never accepts what parsePrimary rejects: every syntax or character
// rule it does not check itself makes it punt. FuzzScanPrimary holds it to that against encoding/xml.
//
// parsePrimary costs about 33 µs per package (encoding/xml allocates a token per element and attribute); this
// costs a few, which matters because a ?wait=visible upload parses the whole primary.xml after each publish.
func scanPrimary(r io.Reader) (pkgSet, pkgSums, error) {
	s := &scanner{r: r, buf: make([]byte, 0, 256<<10)}
	return s.run()
}

type scanner struct {
	r   io.Reader
	buf []byte // buf[pos:] is unread
	pos int
	eof bool
	err error // a read error other than io.EOF

	tag   []byte // the current tag's bytes between '<' and '>'
	names []byte // open element names, each followed by 0
	text  []byte // a decoded value
}

// fill reads more input, keeping buf[pos:]; false at the end of the input (or on a read error, kept in s.err).
func (s *scanner) fill() bool {
	if s.eof {
		return false
	}
	if s.pos > 2 { // keep the last two bytes read: text's '>' looks back for "]]"
		n := copy(s.buf, s.buf[s.pos-2:])
		s.buf, s.pos = s.buf[:n], 2
	}
	if len(s.buf) == cap(s.buf) {
		s.buf = append(s.buf, 0)[:len(s.buf)] // grow
	}
	for {
		n, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		if err != nil {
			s.eof = true
			if !errors.Is(err, io.EOF) {
				s.err = err
			}
			return n > 0
		}
		if n > 0 {
			return true
		}
	}
}

// plain marks the bytes that may stand for themselves in text and attribute values: printable ASCII but '<',
// '&' and '>' (text looks at it for "]]>"), plus tab and newline. Everything else needs a closer look.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '<' && c != '&' && c != '>'
	}
	t['\t'], t['\n'] = true, true
	return t
}()

const xmlDecl = `?xml version="1.0" encoding="UTF-8"?`

func (s *scanner) run() (pkgSet, pkgSums, error) {
	set, sums := pkgSet{}, pkgSums{}
	depth := 0
	inPkg, inSum := false, false
	var href string
	var st stamp
	var sum []byte
	first := true
	for {
		// Text up to the next '<'.
		s.text = s.text[:0]
		keep := inSum && len(sum) < 128
		ws := true // only whitespace so far
		for {
			if s.pos == len(s.buf) && !s.fill() {
				if s.err != nil {
					return nil, nil, s.err
				}
				if depth != 0 || !ws {
					return nil, nil, errScanPunt
				}
				return set, sums, nil
			}
			b := s.buf[s.pos:]
			i := 0
			for i < len(b) && plain[b[i]] {
				if ws && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' {
					ws = false
				}
				i++
			}
			if keep {
				s.text = append(s.text, b[:i]...)
			}
			s.pos += i
			if i == len(b) {
				continue
			}
			c := b[i]
			if c == '<' {
				s.pos++
				break
			}
			ws = false
			var err error
			if c == '>' {
				if s.pos >= 2 && s.buf[s.pos-1] == ']' && s.buf[s.pos-2] == ']' {
					return nil, nil, errScanPunt // "]]>" outside CDATA, which encoding/xml rejects
				}
				if keep {
					s.text = append(s.text, c)
				}
				s.pos++
			} else if c == '&' {
				err = s.entity(keep)
			} else {
				err = s.char(keep)
			}
			if err != nil {
				return nil, nil, err
			}
		}
		if depth == 0 && !ws {
			return nil, nil, errScanPunt
		}
		if keep && len(s.text) > 0 {
			sum = append(sum, s.text...)
		}
		// A tag, up to the '>' outside quotes.
		s.tag = s.tag[:0]
		var quote byte
		for {
			if s.pos == len(s.buf) && !s.fill() {
				if s.err != nil {
					return nil, nil, s.err
				}
				return nil, nil, errScanPunt
			}
			c := s.buf[s.pos]
			s.pos++
			if quote == 0 && c == '>' {
				break
			}
			if c == quote {
				quote = 0
			} else if quote == 0 && (c == '"' || c == '\'') {
				quote = c
			}
			s.tag = append(s.tag, c)
		}
		tag := s.tag
		if first {
			first = false
			if string(tag) == xmlDecl && depth == 0 && len(s.text) == 0 && ws {
				continue
			}
		}
		if len(tag) == 0 {
			return nil, nil, errScanPunt
		}
		if tag[0] == '/' { // end tag
			name := tag[1:]
			for len(name) > 0 && isSpace(name[len(name)-1]) {
				name = name[:len(name)-1]
			}
			if !s.pop(name) {
				return nil, nil, errScanPunt
			}
			if depth == 3 {
				inSum = false
			}
			if depth == 2 && inPkg {
				inPkg = false
				addPackage(set, sums, href, st, sum)
			}
			depth--
			continue
		}
		if !isNameStart(tag[0]) {
			return nil, nil, errScanPunt // '?', '!' (comment, CDATA, DOCTYPE) or worse
		}
		selfClose := tag[len(tag)-1] == '/'
		if selfClose {
			tag = tag[:len(tag)-1]
		}
		n := 1
		for n < len(tag) && isNameByte(tag[n]) {
			n++
		}
		name, rest := tag[:n], tag[n:]
		depth++
		s.names = append(append(s.names, name...), 0)
		colons := strings.Count(string(name), ":")
		local := string(name)
		if colons > 1 || depth <= 3 && colons > 0 {
			return nil, nil, errScanPunt // encoding/xml rejects "a:b:c"; a prefix changes what Local is
		}
		field := false
		switch {
		case depth == 2 && local == "package":
			inPkg, href, st, sum = true, "", stamp{}, nil
		case inPkg && depth == 3:
			field = true
			inSum = false
		}
		// Attributes: each is whitespace, name, '=', a quoted value.
		for {
			sp := 0
			for sp < len(rest) && isSpace(rest[sp]) {
				sp++
			}
			if sp == len(rest) {
				break
			}
			if sp == 0 || !isNameStart(rest[sp]) {
				return nil, nil, errScanPunt
			}
			rest = rest[sp:]
			an := 1
			for an < len(rest) && isNameByte(rest[an]) {
				an++
			}
			aname := rest[:an]
			rest = rest[an:]
			if strings.Count(string(aname), ":") > 1 {
				return nil, nil, errScanPunt
			}
			if len(rest) < 2 || rest[0] != '=' || (rest[1] != '"' && rest[1] != '\'') {
				return nil, nil, errScanPunt
			}
			q := rest[1]
			end := strings.IndexByte(string(rest[2:]), q)
			if end < 0 {
				return nil, nil, errScanPunt
			}
			raw := rest[2 : 2+end]
			rest = rest[3+end:]
			if !field {
				if err := s.checkValue(raw); err != nil {
					return nil, nil, err
				}
				continue
			}
			if strings.IndexByte(string(aname), ':') >= 0 {
				return nil, nil, errScanPunt
			}
			v, err := s.value(raw)
			if err != nil {
				return nil, nil, err
			}
			var perr error
			switch {
			case local == "location" && string(aname) == "href":
				href = v
			case local == "size" && string(aname) == "package":
				st.size, perr = strconv.ParseInt(v, 10, 64)
			case local == "time" && string(aname) == "file":
				st.mtime, perr = strconv.ParseInt(v, 10, 64)
			case local == "checksum" && string(aname) == "type" && v == "sha256":
				inSum = true
			}
			if perr != nil {
				return nil, nil, errScanPunt // parsePrimary's error says which attribute
			}
		}
		if selfClose {
			if depth == 3 {
				inSum = false
			}
			if depth == 2 && inPkg {
				inPkg = false
				addPackage(set, sums, href, st, sum)
			}
			s.names = s.names[:len(s.names)-len(name)-1]
			depth--
		}
	}
}

// pop closes the innermost open element if its name is name.
func (s *scanner) pop(name []byte) bool {
	if len(s.names) == 0 || len(name) == 0 {
		return false
	}
	top := s.names[:len(s.names)-1]
	i := len(top) - 1
	for i >= 0 && top[i] != 0 {
		i--
	}
	if string(top[i+1:]) != string(name) {
		return false
	}
	s.names = s.names[:i+1]
	return true
}

// entity decodes the reference at s.buf[s.pos] ('&'), appending it to s.text when keep.
func (s *scanner) entity(keep bool) error {
	end := -1
	for {
		b := s.buf[s.pos:]
		for i := 1; i < len(b) && i < 12; i++ {
			if b[i] == ';' {
				end = i
				break
			}
		}
		if end >= 0 || len(b) >= 12 || !s.fill() {
			break
		}
	}
	if end < 0 {
		if s.err != nil {
			return s.err
		}
		return errScanPunt
	}
	r, ok := decodeRef(s.buf[s.pos+1 : s.pos+end])
	if !ok {
		return errScanPunt
	}
	if keep {
		s.text = utf8.AppendRune(s.text, r)
	}
	s.pos += end + 1
	return nil
}

// char checks the byte at s.buf[s.pos], which plain does not cover: a valid UTF-8 sequence of an XML character
// (not a control character, not '\r': encoding/xml rewrites "\r\n" and the scanner does not).
func (s *scanner) char(keep bool) error {
	c := s.buf[s.pos]
	if c < 0x80 {
		return errScanPunt
	}
	if !utf8.FullRune(s.buf[s.pos:]) {
		s.fill()
	}
	r, size := utf8.DecodeRune(s.buf[s.pos:])
	if !xmlChar(r, size) {
		return errScanPunt
	}
	if keep {
		s.text = append(s.text, s.buf[s.pos:s.pos+size]...)
	}
	s.pos += size
	return nil
}

// checkValue checks an attribute value the scanner does not keep: the same rules as kept ones.
func (s *scanner) checkValue(raw []byte) error {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case plain[c] || c == '>':
			i++
		case c == '&':
			end := strings.IndexByte(string(raw[i:]), ';')
			if end < 0 {
				return errScanPunt
			}
			if _, ok := decodeRef(raw[i+1 : i+end]); !ok {
				return errScanPunt
			}
			i += end + 1
		case c >= 0x80:
			r, size := utf8.DecodeRune(raw[i:])
			if !xmlChar(r, size) {
				return errScanPunt
			}
			i += size
		default:
			return errScanPunt // '<', control characters, '\r'
		}
	}
	return nil
}

// value decodes an attribute value.
func (s *scanner) value(raw []byte) (string, error) {
	if err := s.checkValue(raw); err != nil {
		return "", err
	}
	if strings.IndexByte(string(raw), '&') < 0 {
		return string(raw), nil
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		if raw[i] != '&' {
			out = append(out, raw[i])
			i++
			continue
		}
		end := strings.IndexByte(string(raw[i:]), ';')
		r, _ := decodeRef(raw[i+1 : i+end])
		out = utf8.AppendRune(out, r)
		i += end + 1
	}
	return string(out), nil
}

// decodeRef decodes the name of an entity reference (between '&' and ';'): one of the five predefined entities
// or a character reference to an XML character.
func decodeRef(name []byte) (rune, bool) {
	switch string(name) {
	case "lt":
		return '<', true
	case "gt":
		return '>', true
	case "amp":
		return '&', true
	case "apos":
		return '\'', true
	case "quot":
		return '"', true
	}
	if len(name) < 2 || name[0] != '#' {
		return 0, false
	}
	base, digits := 10, name[1:]
	if digits[0] == 'x' {
		base, digits = 16, digits[1:]
	}
	if len(digits) == 0 || len(digits) > 6 {
		return 0, false
	}
	for _, d := range digits {
		if !(d >= '0' && d <= '9' || base == 16 && (d >= 'a' && d <= 'f' || d >= 'A' && d <= 'F')) {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(string(digits), base, 32)
	if err != nil {
		return 0, false
	}
	r := rune(n)
	if r == '\r' || !xmlChar(r, 2) {
		return 0, false
	}
	return r, true
}

// xmlChar reports whether r (decoded from size bytes) is a character XML allows, as encoding/xml checks it.
func xmlChar(r rune, size int) bool {
	if r == utf8.RuneError && size <= 1 {
		return false
	}
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' }

func isNameStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == ':'
}

func isNameByte(c byte) bool {
	return isNameStart(c) || c >= '0' && c <= '9' || c == '-' || c == '.'
}
