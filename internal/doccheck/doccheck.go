// Package doccheck reads the project's Markdown the way GitHub renders it, so tests can hold the documentation to
// the code: the headings' anchors, the relative links, and the rows of tables. No network, no Markdown library:
// only the subset the docs use (ATX headings, fenced code, inline links, pipe tables).
package doccheck

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Link is one inline link found in a Markdown file.
type Link struct {
	Line   int    // 1-based line of the link
	Target string // what is between the parentheses, without a title
}

// fence reports whether line opens or closes a fenced code block, and with which marker.
func fence(line string) (string, bool) {
	t := strings.TrimLeft(line, " ")
	if len(line)-len(t) > 3 {
		return "", false
	}
	for _, m := range []string{"```", "~~~"} {
		if strings.HasPrefix(t, m) {
			return m, true
		}
	}
	return "", false
}

// Prose returns the lines of md that are not inside fenced code blocks, with their 1-based line numbers. Indented
// code blocks are kept: the docs use them only for shell commands, which hold no links.
func Prose(md string) (lines []string, numbers []int) {
	open := ""
	for i, line := range strings.Split(md, "\n") {
		if m, ok := fence(line); ok {
			switch {
			case open == "":
				open = m
				continue
			case m == open && strings.TrimSpace(strings.TrimLeft(line, " ")[len(m):]) == "":
				open = ""
				continue
			}
		}
		if open == "" {
			lines = append(lines, line)
			numbers = append(numbers, i+1)
		}
	}
	return lines, numbers
}

var (
	headingRe  = regexp.MustCompile(`^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$`)
	codeSpanRe = regexp.MustCompile("`+[^`]*`+")
	// inline links and images: [text](target "title"); the text may hold code spans but no nested brackets.
	linkRe   = regexp.MustCompile(`!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)`)
	anchorRe = regexp.MustCompile(`<a\s+(?:name|id)="([^"]+)"`)
	tagRe    = regexp.MustCompile(`<[^>]+>`)
)

// Slug is GitHub's anchor for a heading's text: rendered text lower-cased, every character that is not a letter,
// digit, space, '-' or '_' dropped, spaces turned into '-'. Markdown markup is rendered first: code spans keep
// their text, links keep their label, emphasis markers go.
func Slug(heading string) string {
	text := linkRe.ReplaceAllString(heading, "$1")
	text = tagRe.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Anchors returns every anchor a file defines: one per heading (a repeated slug gets -1, -2, ... as on GitHub),
// plus explicit <a name=...> or <a id=...>.
func Anchors(md string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	lines, _ := Prose(md)
	for _, line := range lines {
		for _, m := range anchorRe.FindAllStringSubmatch(line, -1) {
			out[m[1]] = true
		}
		m := headingRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := Slug(m[2])
		if n := seen[s]; n > 0 {
			out[s+"-"+strconv.Itoa(n)] = true
		} else {
			out[s] = true
		}
		seen[s]++
	}
	return out
}

// Links returns the inline links of md outside code blocks and code spans.
func Links(md string) []Link {
	var out []Link
	lines, numbers := Prose(md)
	for i, line := range lines {
		line = codeSpanRe.ReplaceAllString(line, "")
		for _, m := range linkRe.FindAllStringSubmatch(line, -1) {
			out = append(out, Link{Line: numbers[i], Target: m[2]})
		}
	}
	return out
}

// TableRows returns the rows of every pipe table in md, each as its trimmed cells, header and separator rows
// left out. A cell may hold `|` only inside a code span.
func TableRows(md string) [][]string {
	var rows [][]string
	lines, _ := Prose(md)
	for i, line := range lines {
		t := strings.TrimSpace(line)
		if !strings.HasPrefix(t, "|") || isSeparator(t) {
			continue
		}
		if i+1 < len(lines) && isSeparator(strings.TrimSpace(lines[i+1])) {
			continue // a header row
		}
		rows = append(rows, splitRow(t))
	}
	return rows
}

func isSeparator(row string) bool {
	if !strings.HasPrefix(row, "|") {
		return false
	}
	return strings.Trim(row, "|-: ") == ""
}

// splitRow splits "| a | `b|c` | d |" into a, `b|c`, d.
func splitRow(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cells []string
	var cur strings.Builder
	inCode := false
	for _, r := range row {
		switch {
		case r == '`':
			inCode = !inCode
			cur.WriteRune(r)
		case r == '|' && !inCode:
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

// FencedBlocks returns the bodies of the fenced code blocks whose info string is exactly info (like
// "sh quickstart-server"), in order.
func FencedBlocks(md, info string) []string {
	var out []string
	var cur []string
	open, capture := "", false
	for _, line := range strings.Split(md, "\n") {
		m, ok := fence(line)
		switch {
		case ok && open == "":
			open = m
			capture = strings.TrimSpace(strings.TrimLeft(line, " ")[len(m):]) == info
			cur = nil
		case ok && m == open && strings.TrimSpace(strings.TrimLeft(line, " ")[len(m):]) == "":
			if capture {
				out = append(out, strings.Join(cur, "\n")+"\n")
			}
			open, capture = "", false
		case open != "" && capture:
			cur = append(cur, line)
		}
	}
	return out
}
